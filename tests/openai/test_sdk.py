"""The OpenAI-compatible routes (/v1/models, /v1/chat/completions, with
tools and images, /v1/responses, /v1/embeddings) through
the official `openai` Python SDK, against a running local API.

scripts/openai-sdk.sh runs these (make test does, against a `make run` of
its own); by hand, with `make run` going:

    bash scripts/openai-sdk.sh                                # :3000, DynamoDB Local on :8000
    bash scripts/openai-sdk.sh http://127.0.0.1:3100 8100     # another make run

Environment:
    CHAT_API_URL      the API's base URL (http://127.0.0.1:3000)
    CHAT_DYNAMODB_URL the DynamoDB that API uses (http://127.0.0.1:8000),
                      which `chat-ops audit` reads
    CHAT_OPS          the chat-ops binary (target/debug/chat-ops)

Each test registers a user of its own (4000 tokens), so the tests are
independent of each other and of whatever else the API holds. The model is
`make run`'s dummy: it always answers "AI response" (streamed as "AI" and
" response"), counts the prompt's white-space-separated words as
prompt_tokens and 2 completion tokens, and each completion costs 100
balance tokens. Beside it, `make run` serves the local embedder
`dummy-embedding` (no AWS): a deterministic unit vector per text, one input
token per word, at CHAT_COST (100) balance tokens per 1000 input tokens.
Every test ends by checking the balance, the saved chats and the ledger
(`chat-ops audit <user>`).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import struct
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

# The SDK's own HTTP client: openai 3.x brings httpx2 (httpx's successor,
# same API), earlier releases httpx.
try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

ROOT = Path(__file__).resolve().parents[2]
BASE_URL = os.environ.get("CHAT_API_URL", "http://127.0.0.1:3000").rstrip("/")
DYNAMODB_URL = os.environ.get(
    "CHAT_DYNAMODB_URL", f"http://127.0.0.1:{os.environ.get('DYNAMODB_PORT', '8000')}"
)
CHAT_OPS = os.environ.get("CHAT_OPS") or str(
    Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "chat-ops"
)

MODEL = "dummy"
EMBEDDING_MODEL = "dummy-embedding"
# Balance tokens per 1000 input tokens (words) of the local embedder.
EMBEDDING_PRICE = 100
REPLY = "AI response"
REPLY_PIECES = ["AI", " response"]
HI = [{"role": "user", "content": "Hi"}]
COMPLETION_TOKENS = 2
INITIAL_TOKENS = 4000
COST = 100
# A generous bound for one request (make run starts every function before
# it says it is ready), so that an API that stops answering fails each test
# in seconds rather than hanging it.
TIMEOUT = 30.0

# The SDK reads these; a developer's own must not reach the local API.
for _name in list(os.environ):
    if _name.startswith("OPENAI_"):
        del os.environ[_name]


def words(*texts: str) -> int:
    return sum(len(text.split()) for text in texts)


@dataclass
class User:
    """A registered, logged-in user, with the plain HTTP client used for the
    API's own routes and an SDK client (no retries) for /v1."""

    name: str
    token: str
    http: httpx.Client
    sdk: openai.OpenAI
    requests: list = field(default_factory=list)

    def client(self, *, api_key: str | None = None, max_retries: int | None = 0) -> openai.OpenAI:
        """An SDK client for this API (max_retries None: the SDK's default);
        every request it sends, retries included, is appended to
        self.requests."""
        return sdk_client(api_key or self.token, max_retries, self.requests)

    def balance(self) -> int:
        r = self.http.get("/balance/", headers={"Authorization": f"Token {self.token}"})
        assert r.status_code == 200, r.text
        return r.json()["tokens"]

    def chats(self) -> list[dict]:
        """Every saved chat, through every page of GET /chats/."""
        chats, cursor = [], None
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            r = self.http.get(
                "/chats/", params=params, headers={"Authorization": f"Token {self.token}"}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            chats += page["chats"]
            cursor = page.get("next_cursor")
            if not cursor:
                return chats

    def audit(self) -> str:
        """`chat-ops audit <user>`: exits 0 and reports no difference."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ENDPOINT_URL": DYNAMODB_URL,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            # The tables `make run` creates (scripts/run-local.sh).
            "USERS_TABLE": "users",
            "CREDENTIALS_TABLE": "credentials",
            "CHATS_TABLE": "chats",
        }
        if not os.access(CHAT_OPS, os.X_OK):
            pytest.fail(f"{CHAT_OPS} is missing: cargo build -p chat-ops")
        run = subprocess.run(
            [CHAT_OPS, "audit", self.name],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = run.stdout.strip()
        assert run.returncode == 0, f"chat-ops audit exited {run.returncode}: {out} {run.stderr}"
        assert "DIFFERS" not in out, out
        m = re.fullmatch(
            re.escape(self.name)
            + r": balance (-?\d+), ledger (-?\d+) \((\d+) entries, (\d+) open holds\): ok",
            out,
        )
        assert m, f"unexpected chat-ops audit output: {out!r}"
        assert m[1] == m[2], out
        assert m[4] == "0", f"open holds left after every request ended: {out}"
        return out

    def check_books(self, completions: int, last_message: str | None = None) -> None:
        """Balance, saved chats and ledger after `completions` completions."""
        assert self.balance() == INITIAL_TOKENS - COST * completions
        chats = self.chats()
        assert len(chats) == completions, chats
        assert all(chat["response"] == REPLY for chat in chats), chats
        if last_message is not None:
            # Newest first.
            assert chats[0]["message"] == last_message, chats
        out = self.audit()
        assert f"balance {INITIAL_TOKENS - COST * completions}," in out, out


def sdk_client(api_key: str, max_retries: int | None, requests: list) -> openai.OpenAI:
    retries = {} if max_retries is None else {"max_retries": max_retries}
    return openai.OpenAI(
        base_url=f"{BASE_URL}/v1",
        api_key=api_key,
        **retries,
        timeout=TIMEOUT,
        http_client=openai.DefaultHttpxClient(
            timeout=TIMEOUT,
            trust_env=False,
            event_hooks={"request": [requests.append]},
        ),
    )


@pytest.fixture(scope="session")
def http():
    with httpx.Client(base_url=BASE_URL, timeout=TIMEOUT, trust_env=False) as client:
        yield client


@pytest.fixture
def user(http) -> Iterator[User]:
    """A fresh user per test: registered, logged in, with an SDK client."""
    name = f"sdk-{uuid.uuid4().hex}"
    password = secrets.token_urlsafe(18)
    credentials = {"username": name, "password": password}
    try:
        r = http.post("/register/", json=credentials)
    except httpx.TransportError as e:
        pytest.fail(f"cannot reach the API at {BASE_URL} ({e}): is make run going?")
    assert r.status_code == 201, f"register: {r.status_code} {r.text}"
    r = http.post("/login/", json=credentials)
    assert r.status_code == 200, f"login: {r.status_code} {r.text}"
    token = r.json()["token"]
    requests: list = []
    u = User(name, token, http, sdk_client(token, 0, requests), requests)
    yield u
    u.sdk.close()


def check_error(e: openai.APIStatusError, status: int) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    assert e.status_code == status, (e.status_code, e.response.text)
    body = e.response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    return error


# --- /v1/models --------------------------------------------------------------


def test_models_list(user):
    models = user.sdk.models.list()
    assert [m.id for m in models.data] == [MODEL, EMBEDDING_MODEL]
    model = models.data[0]
    assert model.object == "model"
    assert model.owned_by == "chat-api"
    assert isinstance(model.created, int) and model.created >= 0
    # The exact body, beyond what the SDK's models read.
    r = user.http.get("/v1/models", headers={"Authorization": f"Bearer {user.token}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    # `pricing` is our extension (docs/catalog.md): the SDK keeps it too.
    assert body["data"] == [
        {
            "id": MODEL,
            "object": "model",
            "created": model.created,
            "owned_by": "chat-api",
            "pricing": {"flat": 100},
            "kind": "chat",
        },
        {
            "id": EMBEDDING_MODEL,
            "object": "model",
            "created": model.created,
            "owned_by": "chat-api",
            "pricing": {"price_per_1000": {"input": EMBEDDING_PRICE}},
            "kind": "embedding",
        },
    ]
    assert model.pricing == {"flat": 100}
    user.check_books(0)


# --- completions -------------------------------------------------------------


def test_plain_completion(user):
    message = "Hello, how are you?"
    completion = user.sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": message}]
    )
    assert completion.id.startswith("chatcmpl-"), completion.id
    assert completion.object == "chat.completion"
    assert isinstance(completion.created, int) and completion.created > 0
    assert completion.model == MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == REPLY
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == words(message) == 4
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    assert completion.usage.total_tokens == 4 + COMPLETION_TOKENS
    assert len(user.requests) == 1
    user.check_books(1, last_message=message)


def test_stream_with_usage(user):
    message = "Tell me a story about a lighthouse keeper"
    stream = user.sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": message}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, [c.id for c in chunks]
    assert chunks[0].id.startswith("chatcmpl-"), chunks[0].id
    assert all(c.model == MODEL for c in chunks)

    # Exactly one usage chunk, the last, with no choices.
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1, with_usage
    assert chunks[-1] is with_usage[0]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.prompt_tokens == words(message) == 8
    assert usage.completion_tokens == COMPLETION_TOKENS
    assert usage.total_tokens == 8 + COMPLETION_TOKENS

    content_chunks = chunks[:-1]
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in content_chunks)
    # First the role, with empty content.
    first = content_chunks[0].choices[0]
    assert first.delta.role == "assistant"
    assert first.delta.content == ""
    # Then the pieces of the reply.
    pieces = [c.choices[0].delta.content for c in content_chunks if c.choices[0].delta.content]
    assert pieces == REPLY_PIECES
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == REPLY
    # Then an empty delta that finishes; nothing else finishes.
    last = content_chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    assert not last.delta.content and last.delta.role is None
    assert all(c.choices[0].finish_reason is None for c in content_chunks[:-1])
    assert len(user.requests) == 1
    user.check_books(1, last_message=message)


def test_stream_without_usage(user):
    message = "Hello there"
    stream = user.sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": message}], stream=True
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks), chunks
    assert all(len(c.choices) == 1 for c in chunks), chunks
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    user.check_books(1, last_message=message)


def test_stream_raw_sse(user):
    """The wire format the SDK parses: SSE data lines ending in [DONE]."""
    with user.http.stream(
        "POST",
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {user.token}"},
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].split(";")[0].strip() == "text/event-stream"
        data = [line[len("data:"):].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]", data
    assert "[DONE]" not in data[:-1], data
    user.check_books(1, last_message="Hi")


def test_multi_turn_conversation(user):
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is two plus two?"},
        {"role": "assistant", "content": "Four."},
        {"role": "user", "content": "And three plus three, please?"},
    ]
    completion = user.sdk.chat.completions.create(model=MODEL, messages=messages)
    expected = words(*(m["content"] for m in messages))
    assert expected == 16
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == expected
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    assert completion.usage.total_tokens == expected + COMPLETION_TOKENS
    user.check_books(1, last_message=messages[-1]["content"])


def test_text_content_parts(user):
    """A message's content as a list of text parts, as the SDK allows."""
    text = "Hello from a text part"
    completion = user.sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.usage.prompt_tokens == words(text) == 5
    user.check_books(1, last_message=text)


def test_several_completions_are_each_charged_and_saved(user):
    for i in range(3):
        completion = user.sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"message number {i}"}]
        )
        assert completion.choices[0].message.content == REPLY
    ids = {c["chat_id"] for c in user.chats()}
    assert len(ids) == 3
    assert {c["message"] for c in user.chats()} == {f"message number {i}" for i in range(3)}
    user.check_books(3, last_message="message number 2")


# --- errors ------------------------------------------------------------------


def test_bad_token(user):
    with user.client(api_key="not-a-valid-token") as bad:
        for stream in (False, True):
            with pytest.raises(openai.AuthenticationError) as info:
                bad.chat.completions.create(model=MODEL, messages=HI, stream=stream)
            error = check_error(info.value, 401)
            assert error["code"] == "invalid_api_key", error
            assert info.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError) as info:
            bad.models.list()
        check_error(info.value, 401)
    user.check_books(0)


def test_absent_token(user):
    r = user.http.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == "invalid_api_key", error
    r = user.http.get("/v1/models")
    assert r.status_code == 401, r.text
    user.check_books(0)


def test_empty_balance(user):
    affordable = INITIAL_TOKENS // COST
    assert affordable == 40
    for i in range(affordable):
        completion = user.sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"paid message {i}"}]
        )
        assert completion.choices[0].message.content == REPLY, i
    assert user.balance() == 0

    # With the SDK's default retries (2), which it would spend on a 429,
    # x-should-retry: false must stop them: exactly one request is sent.
    with user.client(max_retries=None) as client:
        assert client.max_retries == openai.DEFAULT_MAX_RETRIES >= 1
        for stream in (False, True):
            user.requests.clear()
            with pytest.raises(openai.RateLimitError) as info:
                client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "one too many"}],
                    stream=stream,
                )
            error = check_error(info.value, 429)
            assert error["type"] == "insufficient_quota", error
            assert error["code"] == "insufficient_quota", error
            assert info.value.code == "insufficient_quota"
            assert info.value.response.headers.get("x-should-retry") == "false"
            sent = len(user.requests)
            assert sent == 1, f"the SDK sent {sent} requests (stream={stream})"
    user.check_books(affordable, last_message=f"paid message {affordable - 1}")

BAD_REQUESTS = {
    "unknown field": ({"messages": HI, "extra_body": {"frobnicate": True}}, "frobnicate"),
    "n 2": ({"messages": HI, "n": 2}, "n"),
    "a tool with a bad name": (
        {
            "messages": HI,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get weather",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ],
        },
        "tools",
    ),
    "a tool result without tools": (
        {
            "messages": HI
            + [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
        },
        "tools",
    ),
    "a remote image": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                }
            ]
        },
        "messages",
    ),
    "an image that is not what it says": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/gif;base64,iVBORw0KGgo="}},
                    ],
                }
            ]
        },
        "messages",
    ),
    "empty messages": ({"messages": []}, "messages"),
    "temperature 3": ({"messages": HI, "temperature": 3}, "temperature"),
    "ends with assistant": (
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ]
        },
        "messages",
    ),
    "ends with system": ({"messages": [{"role": "system", "content": "Be brief."}]}, "messages"),
    "max_tokens above the cap": ({"messages": HI, "max_tokens": 1_000_000_000}, "max_tokens"),
}


# --- tools -------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


def test_a_tool_round_trip(user):
    """The dummy calls the first tool (arguments {}, id call_dummy_0), then
    answers as always once given the result; each call is charged and
    saved, the call itself with no text."""
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    first = user.sdk.chat.completions.create(model=MODEL, messages=ask, tools=[WEATHER, CLOCK])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id == "call_dummy_0"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == "{}"
    assert first.usage.prompt_tokens == words("Weather in Oslo?")
    assert first.usage.completion_tokens == 1
    # The SDK's own message object goes back as the assistant's turn.
    conversation = ask + [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = user.sdk.chat.completions.create(
        model=MODEL, messages=conversation, tools=[WEATHER, CLOCK]
    )
    assert second.choices[0].message.content == REPLY
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].finish_reason == "stop"
    # The result and the call's arguments are words of the prompt.
    assert second.usage.prompt_tokens == words("Weather in Oslo?", "{}", "sunny, 21 C")
    assert user.balance() == INITIAL_TOKENS - 2 * COST
    chats = user.chats()
    assert [c["response"] for c in chats] == [REPLY, ""], chats
    assert [c["message"] for c in chats] == ["sunny, 21 C", "Weather in Oslo?"], chats
    user.audit()


def test_a_streamed_tool_call_with_a_named_choice(user):
    stream = user.sdk.chat.completions.create(
        model=MODEL,
        messages=HI,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert calls[0].index == 0 and calls[0].id == "call_dummy_0"
    assert calls[0].function.name == "get_time"
    assert "".join(tc.function.arguments or "" for tc in calls) == "{}"
    assert all(tc.index == 0 for tc in calls)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens == 1
    # The SDK's stream helper puts the deltas back together.
    with user.sdk.chat.completions.stream(
        model=MODEL, messages=HI, tools=[WEATHER], tool_choice="required"
    ) as helper:
        final = helper.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", "{}")
    assert user.balance() == INITIAL_TOKENS - 2 * COST
    user.audit()


def test_tool_choice_none_offers_no_tools(user):
    completion = user.sdk.chat.completions.create(
        model=MODEL, messages=HI, tools=[WEATHER], tool_choice="none"
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    user.check_books(1, last_message="Hi")


# --- images ------------------------------------------------------------------

# A 1x1 PNG.
PNG_URL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_an_inline_image(user):
    """The dummy takes images (each one word of the prompt) and answers as
    always; the chat is saved with the message's text."""
    message = "What is in this picture?"
    completion = user.sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": message},
                    {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.usage.prompt_tokens == words(message) + 1
    user.check_books(1, last_message=message)


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request(user, case):
    kwargs, param = BAD_REQUESTS[case]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            user.sdk.chat.completions.create(model=MODEL, stream=stream, **kwargs)
        error = check_error(info.value, 400)
        # A field of a message may be named by its path (messages[0].content...).
        if param == "messages":
            assert error["param"] and error["param"].startswith("messages"), error
        else:
            assert error["param"] == param, error
        assert info.value.param == error["param"]
    user.check_books(0)


def test_unknown_model(user):
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as info:
            user.sdk.chat.completions.create(
                model="no-such-model", messages=HI, stream=stream
            )
        error = check_error(info.value, 404)
        assert error["code"] == "model_not_found", error
        assert info.value.code == "model_not_found"
    user.check_books(0)


# --- retries -----------------------------------------------------------------


class LoseFirstAnswer(httpx.BaseTransport):
    """Sends every request on, then loses the first answer, as a dropped
    connection would: the server did the work and charged for it, and the
    SDK sees a timeout, which it retries on its own."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0

    def handle_request(self, request):
        response = self.inner.handle_request(request)
        if self.lost == 0:
            self.lost += 1
            response.read()
            response.close()
            raise httpx.ReadTimeout("the answer was lost on the way", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("stream", [False, True])
def test_the_sdks_own_retry_with_an_idempotency_key_charges_once(user, stream):
    requests: list = []
    client = openai.OpenAI(
        base_url=f"{BASE_URL}/v1",
        api_key=user.token,
        max_retries=2,
        timeout=TIMEOUT,
        http_client=openai.DefaultHttpxClient(
            timeout=TIMEOUT,
            trust_env=False,
            transport=LoseFirstAnswer(),
            event_hooks={"request": [requests.append]},
        ),
    )
    key = f"sdk-retry-{uuid.uuid4()}"
    with client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": "charge me once"}],
            stream=stream,
            extra_headers={"Idempotency-Key": key},
        )
        parsed = raw.parse()
        text = (
            "".join(chunk.choices[0].delta.content or "" for chunk in parsed if chunk.choices)
            if stream
            else parsed.choices[0].message.content
        )
    assert text == REPLY
    # The SDK sent the request twice, under the same key; the second was
    # answered from the first.
    assert len(requests) == 2, requests
    assert {r.headers["idempotency-key"] for r in requests} == {key}
    assert raw.headers.get("idempotent-replayed") == "true"
    user.check_books(1, last_message="charge me once")


def test_a_key_reused_for_another_request_is_refused(user):
    key = f"sdk-reuse-{uuid.uuid4()}"
    first = user.sdk.chat.completions.create(
        model=MODEL, messages=HI, extra_headers={"Idempotency-Key": key}
    )
    again = user.sdk.chat.completions.create(
        model=MODEL, messages=HI, extra_headers={"Idempotency-Key": key}
    )
    assert again.id == first.id
    with pytest.raises(openai.UnprocessableEntityError) as info:
        user.sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "another"}],
            extra_headers={"Idempotency-Key": key},
        )
    error = check_error(info.value, 422)
    assert error["code"] == "idempotency_key_reused", error
    user.check_books(1)


# --- /v1/responses -----------------------------------------------------------


def test_a_response(user):
    message = "Hello, how are you?"
    response = user.sdk.responses.create(
        model=MODEL, instructions="Answer briefly.", input=message
    )
    assert response.id.startswith("resp_"), response.id
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.instructions == "Answer briefly."
    # The SDK's own joining of the output's text parts.
    assert response.output_text == REPLY
    item = response.output[0]
    assert item.type == "message" and item.role == "assistant"
    assert item.content[0].type == "output_text"
    assert response.usage.input_tokens == words("Answer briefly.", message) == 6
    assert response.usage.output_tokens == COMPLETION_TOKENS
    assert response.usage.total_tokens == 6 + COMPLETION_TOKENS
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    user.check_books(1, last_message=message)


def test_a_response_from_messages_with_input_text_parts(user):
    response = user.sdk.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello!"},
            {"type": "message", "role": "user", "content": "How are you?"},
        ],
    )
    assert response.output_text == REPLY
    assert response.usage.input_tokens == words("Be kind.", "Hi", "Hello!", "How are you?")
    user.check_books(1, last_message="How are you?")


def test_a_streamed_response_sends_openais_events(user):
    stream = user.sdk.responses.create(model=MODEL, input="Tell me a story", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(REPLY_PIECES),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ], kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == REPLY_PIECES
    done = events[-1].response
    assert done.status == "completed"
    assert done.output_text == REPLY
    assert done.usage.output_tokens == COMPLETION_TOKENS
    user.check_books(1, last_message="Tell me a story")


def test_the_sdks_response_stream_helper(user):
    with user.sdk.responses.stream(model=MODEL, input="Stream this") as stream:
        text = "".join(
            event.delta for event in stream if event.type == "response.output_text.delta"
        )
        final = stream.get_final_response()
    assert text == REPLY
    assert final.output_text == REPLY
    assert final.usage.input_tokens == words("Stream this")
    user.check_books(1, last_message="Stream this")


RESPONSE_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def test_a_response_tool_round_trip(user):
    """Function tools in the Responses shape: the dummy calls the first
    (arguments {}, call id call_dummy_0) as a function_call item; the
    SDK's own output items go back with a function_call_output, and the
    dummy answers. Each request is charged and saved."""
    first = user.sdk.responses.create(
        model=MODEL, input="Weather in Oslo?", tools=[RESPONSE_WEATHER]
    )
    assert first.status == "completed"
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == ("call_dummy_0", "get_weather", "{}")
    assert call.id.startswith("fc_"), call.id
    assert first.output_text == ""
    assert first.tools[0].name == "get_weather"
    assert first.usage.output_tokens == 1
    conversation = [
        {"role": "user", "content": "Weather in Oslo?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ]
    second = user.sdk.responses.create(model=MODEL, input=conversation, tools=[RESPONSE_WEATHER])
    assert second.output_text == REPLY
    assert [item.type for item in second.output] == ["message"]
    assert second.usage.input_tokens == words("Weather in Oslo?", "{}", "sunny, 21 C")
    assert user.balance() == INITIAL_TOKENS - 2 * COST
    chats = user.chats()
    assert [c["response"] for c in chats] == [REPLY, ""], chats
    user.audit()


def test_a_streamed_response_calls_a_named_function(user):
    with user.sdk.responses.stream(
        model=MODEL,
        input="What time is it?",
        tools=[RESPONSE_WEATHER, {"type": "function", "name": "get_time", "parameters": None,
                                  "strict": None}],
        tool_choice={"type": "function", "name": "get_time"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ], kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    (call,) = final.output
    assert (call.type, call.name, call.arguments) == ("function_call", "get_time", "{}")
    assert final.tool_choice.name == "get_time"
    assert user.balance() == INITIAL_TOKENS - COST
    user.audit()


@pytest.mark.parametrize(
    "field,value",
    [
        ("previous_response_id", "resp_123"),
        ("store", True),
        ("background", True),
        ("tools", [{"type": "web_search"}]),
        ("tool_choice", "required"),
    ],
)
def test_what_a_response_cannot_do_is_refused_by_name(user, field, value):
    with pytest.raises(openai.BadRequestError) as info:
        user.sdk.responses.create(model=MODEL, input="Hi", **{field: value})
    error = check_error(info.value, 400)
    assert error["param"] == field, error
    assert error["code"] == "invalid_field", error
    user.check_books(0)


@pytest.mark.parametrize("stream", [False, True])
def test_the_sdks_own_retry_of_a_response_with_an_idempotency_key_charges_once(user, stream):
    requests: list = []
    client = openai.OpenAI(
        base_url=f"{BASE_URL}/v1",
        api_key=user.token,
        max_retries=2,
        timeout=TIMEOUT,
        http_client=openai.DefaultHttpxClient(
            timeout=TIMEOUT,
            trust_env=False,
            transport=LoseFirstAnswer(),
            event_hooks={"request": [requests.append]},
        ),
    )
    key = f"sdk-retry-{uuid.uuid4()}"
    with client:
        raw = client.responses.with_raw_response.create(
            model=MODEL,
            input="charge me once",
            stream=stream,
            extra_headers={"Idempotency-Key": key},
        )
        parsed = raw.parse()
        text = (
            "".join(e.delta for e in parsed if e.type == "response.output_text.delta")
            if stream
            else parsed.output_text
        )
    assert text == REPLY
    assert len(requests) == 2, requests
    assert {r.headers["idempotency-key"] for r in requests} == {key}
    assert raw.headers.get("idempotent-replayed") == "true"
    user.check_books(1, last_message="charge me once")


# --- /v1/embeddings ----------------------------------------------------------


def embedding_cost(*texts: str) -> int:
    """What embedding `texts` costs: their words at EMBEDDING_PRICE per
    1000, rounded up once per request."""
    return -(-words(*texts) * EMBEDDING_PRICE // 1000)


def as_float32(values: list[float]) -> list[float]:
    """Each number as the 32-bit float the server made: JSON's shortest
    decimal for it reads back as that float, not as the double base64's
    bytes widen to."""
    return [struct.unpack("<f", struct.pack("<f", v))[0] for v in values]


def check_embedding_books(user: User, charged: int, calls: int) -> None:
    """Balance, the saved calls (each a line in the history) and ledger."""
    assert user.balance() == INITIAL_TOKENS - charged
    chats = user.chats()
    assert len(chats) == calls, chats
    assert all(chat["message"].startswith("embeddings of ") for chat in chats), chats
    assert all(re.fullmatch(r"\d+ embeddings? of \d+ numbers", chat["response"]) for chat in chats), chats
    out = user.audit()
    assert f"balance {INITIAL_TOKENS - charged}," in out, out


def test_embeddings_of_a_string_in_the_sdks_default_base64(user):
    text = "The food was delicious and the waiter friendly"
    result = user.sdk.embeddings.create(model=EMBEDDING_MODEL, input=text)
    # Unless told otherwise the SDK asks for base64 and decodes it itself.
    sent = json.loads(user.requests[-1].content)
    assert sent == {"model": EMBEDDING_MODEL, "input": text, "encoding_format": "base64"}
    assert result.object == "list"
    assert result.model == EMBEDDING_MODEL
    assert [(d.object, d.index) for d in result.data] == [("embedding", 0)]
    vector = result.data[0].embedding
    assert len(vector) == 1024 and all(isinstance(x, float) for x in vector)
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-4)
    assert result.usage.prompt_tokens == result.usage.total_tokens == words(text)
    check_embedding_books(user, embedding_cost(text), 1)


def test_embeddings_of_a_list_as_floats_and_as_base64_are_the_same_vectors(user):
    texts = ["one two three", "four five", "six"]
    floats = user.sdk.embeddings.create(
        model=EMBEDDING_MODEL, input=texts, encoding_format="float", dimensions=256
    )
    assert json.loads(user.requests[-1].content)["encoding_format"] == "float"
    packed = user.sdk.embeddings.create(model=EMBEDDING_MODEL, input=texts, dimensions=256)
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert all(len(d.embedding) == 256 for d in floats.data)
    assert [as_float32(d.embedding) for d in floats.data] == [d.embedding for d in packed.data]
    # The same text gives the same vector; another text another.
    again = user.sdk.embeddings.create(model=EMBEDDING_MODEL, input="six", dimensions=256)
    assert again.data[0].embedding == packed.data[2].embedding
    assert packed.data[0].embedding != packed.data[1].embedding
    assert floats.usage.prompt_tokens == words(*texts)
    check_embedding_books(user, 2 * embedding_cost(*texts) + embedding_cost("six"), 3)


def test_a_model_of_the_other_kind_is_refused_on_each_route(user):
    with pytest.raises(openai.BadRequestError) as info:
        user.sdk.embeddings.create(model=MODEL, input="Hi")
    error = check_error(info.value, 400)
    assert (error["code"], error["param"]) == ("wrong_model_kind", "model"), error
    with pytest.raises(openai.BadRequestError) as info:
        user.sdk.chat.completions.create(model=EMBEDDING_MODEL, messages=HI)
    assert check_error(info.value, 400)["code"] == "wrong_model_kind"
    with pytest.raises(openai.BadRequestError) as info:
        user.sdk.embeddings.create(model=EMBEDDING_MODEL, input=[[1212, 318]])
    error = check_error(info.value, 400)
    assert (error["code"], error["param"]) == ("invalid_field", "input"), error
    with pytest.raises(openai.NotFoundError):
        user.sdk.embeddings.create(model="text-embedding-3-small", input="Hi")
    check_embedding_books(user, 0, 0)


def test_the_sdks_own_retry_of_embeddings_with_an_idempotency_key_charges_once(user):
    requests: list = []
    client = openai.OpenAI(
        base_url=f"{BASE_URL}/v1",
        api_key=user.token,
        max_retries=2,
        timeout=TIMEOUT,
        http_client=openai.DefaultHttpxClient(
            timeout=TIMEOUT,
            trust_env=False,
            transport=LoseFirstAnswer(),
            event_hooks={"request": [requests.append]},
        ),
    )
    key = f"sdk-retry-{uuid.uuid4()}"
    texts = ["charge me once", "and only once"]
    with client:
        raw = client.embeddings.with_raw_response.create(
            model=EMBEDDING_MODEL, input=texts, extra_headers={"Idempotency-Key": key}
        )
        replayed = raw.parse()
    assert len(requests) == 2, requests
    assert {r.headers["idempotency-key"] for r in requests} == {key}
    assert raw.headers.get("idempotent-replayed") == "true"
    assert raw.headers.get("tokens-charged") == "0"
    # The replay is the first answer's vectors, as a fresh call makes them.
    fresh = user.sdk.embeddings.create(model=EMBEDDING_MODEL, input=texts)
    assert [d.embedding for d in replayed.data] == [d.embedding for d in fresh.data]
    assert replayed.usage.prompt_tokens == words(*texts)
    check_embedding_books(user, 2 * embedding_cost(*texts), 2)
