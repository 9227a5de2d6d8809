"""Schemathesis hooks for this API, loaded through schemathesis.toml.

Authentication. Every request that needs a token gets the token of a user
scripts/schemathesis.sh registered for the run, from a login made here:
one user for the OpenAI-compatible /v1/ operations, another for the rest,
so that each has a balance of its own to spend. A 401 makes new logins and
one retry, since a fuzzed /logout/ ends the token in use. A request that
already carries a token some /login/ answered in this run keeps it: it got
it through an OpenAPI link, as in the stateful phase's register -> log in
-> chat / history / balance / keys / log out, where each user's calls must
go with that user's own token (Schemathesis's own auth settings would
replace it). So does one that carries an API key some POST /keys/ answered
(the links from a new key to chat and balance), except at /keys/: only a
login session manages keys (an API key gets 403 `session_required`), so
the /keys/ operations always go with a login token, a linked one or the
run user's. Nothing here depends on the token's form: it is whatever
string /login/ (or POST /keys/, as `key`) returns, sent alone in
Authorization, or as `Bearer <token>` to the operations that document
`BearerAuth` (the OpenAI-compatible /v1/ ones, as OpenAI's SDKs send their
key).

A served model. A valid completion, and a valid chat that names a model,
names the one scripts/schemathesis.sh read from GET /v1/models
(SCHEMATHESIS_MODEL), and a valid embeddings request the embedding model it
read (SCHEMATHESIS_EMBEDDING_MODEL), so that valid requests reach the model
and are charged: an unknown model's 404 and a model of the other kind's 400
are tested in tests/tests/openapi.rs.

A fresh login works. A 401 to a token the hooks have just logged in for,
before any request took it, fails the run (`fresh_login_accepted`).

The rules no schema can state. POST /v1/chat/completions refuses some
requests its schema allows, for rules over several messages or parts (see
`CompletionRequest` in openapi.yaml, and `beyond_the_schema()` in
tests/tests/openapi.rs, which holds the server to each). Rather than
accept a 400 for every valid completion, which would hide a real refusal
of a valid field, `before_call` puts each valid (positive) completion
request into the shape those rules ask for, changing only what they
concern and keeping it valid against the schema; Schemathesis revalidates
a case a hook changed. Invalid (negative) requests are sent as generated: the schema
allows more than the server takes, never less, so the server must refuse
every one of them.
"""

import hashlib
import json
import os
import re

import requests
import schemathesis

# Login tokens handed out by /login/ responses to this run's requests, and
# API keys by POST /keys/ responses.
_SESSIONS: set[str] = set()
_KEYS: set[str] = set()
# The Authorization each key was made with, by the key's id: a request about
# the key goes with the session that made it, as openapi.yaml's links say.
_KEY_MAKERS: dict[str, str] = {}

# Where each is found: (method, path, status) -> (field, set).
_MINTING = {
    ("POST", "/login/", 200): ("token", _SESSIONS),
    ("POST", "/keys/", 201): ("key", _KEYS),
}


@schemathesis.hook
def after_call(context, case, response):
    minting = _MINTING.get((case.operation.method.upper(), case.operation.path, response.status_code))
    if minting is None:
        return
    field, minted = minting
    try:
        answer = response.json()
        token = answer[field]
    except (ValueError, KeyError, TypeError):
        return  # a malformed answer is for the response checks to report
    if isinstance(token, str):
        minted.add(token)
    if minted is _KEYS and isinstance(answer.get("id"), str):
        maker = response.request.headers.get("Authorization")
        if maker:
            _KEY_MAKERS[answer["id"]] = maker


def _user_of(case, context=None):
    """The environment variable naming the user `case` goes as."""
    if case.operation.path.startswith("/v1/"):
        return "SCHEMATHESIS_OPENAI_USERNAME"
    return "SCHEMATHESIS_USERNAME"


# Tokens a login here has just made, not yet accepted by any request: a
# 401 to one of them is a failure (`fresh_login_accepted`), since nothing
# between the login and its first use could have ended it.
_FRESH: set[str] = set()


# One cached token per user (`cache_by_key`).
@schemathesis.auth(retry_on=[401], cache_by_key=_user_of)
class RunUser:
    def get(self, case, context):
        response = requests.post(
            f"{os.environ['SCHEMATHESIS_BASE_URL']}/login/",
            json={
                "username": os.environ[_user_of(case)],
                "password": os.environ["SCHEMATHESIS_PASSWORD"],
            },
            timeout=60,
        )
        response.raise_for_status()
        token = response.json()["token"]
        _FRESH.add(token)
        return token

    def set(self, case, data, context):
        security = case.operation.definition.raw.get("security")
        # Operations that take no token (`security: []`) are sent none.
        if security == []:
            return
        headers = case.headers if case.headers is not None else {}
        given = headers.get("Authorization")
        if given in _SESSIONS:
            return
        if given in _KEYS and not case.operation.path.startswith("/keys/"):
            return
        # A key's change or revocation goes with the session that made it
        # (a stateful step may not carry the link's header): the run's
        # user's token would be told, rightly, that no such key exists.
        maker = _KEY_MAKERS.get(str((case.path_parameters or {}).get("id")))
        if case.operation.path == "/keys/{id}" and maker is not None:
            headers["Authorization"] = maker
            case.headers = headers
            return
        bearer = any("BearerAuth" in requirement for requirement in security or [])
        headers["Authorization"] = f"Bearer {data}" if bearer else data
        case.headers = headers


def _token_sent(response):
    sent = response.request.headers.get("Authorization") or ""
    return sent[len("Bearer "):] if sent.startswith("Bearer ") else sent


@schemathesis.check
def fresh_login_accepted(ctx, response, case):
    """A token the run's user has just logged in for works: the retry after
    a 401 (a fuzzed /logout/ ended the old one) must not be refused too."""
    token = _token_sent(response)
    if token not in _FRESH:
        return None
    if response.status_code == 401:
        raise AssertionError(
            "a token from a login made just before was refused (401): "
            "the re-login after a 401 did not give a working session"
        )
    _FRESH.discard(token)
    return None


@schemathesis.check
def valid_chats_are_paid_for(ctx, response, case):
    """The run's users have a balance that lasts the run, so a valid chat,
    completion or response is never refused for want of tokens. What may
    refuse one: the per-user chat cap, which fuzzing passes (`rate_limited`,
    on /v1 `rate_limit_exceeded`), and the limits of an API key the stateful
    phase made with a budget (`key_budget_exceeded`) or a list of models
    (`model_not_allowed`), which are the key's, not the user's."""
    operation = (case.operation.method.upper(), case.operation.path)
    meta = case.meta
    if operation not in (_COMPLETIONS, _RESPONSES, _CHAT, _EMBEDDINGS) or meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (402, 403, 429):
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = None
    code = error.get("code") if isinstance(error, dict) else error
    allowed = {
        402: {"key_budget_exceeded"},
        403: {"model_not_allowed"},
        429: {"rate_limited", "rate_limit_exceeded", "key_budget_exceeded"},
    }[response.status_code]
    if code not in allowed:
        raise AssertionError(
            f"a valid request was refused with {response.status_code} {code!r}, "
            "though the run's users have tokens for the whole run"
        )
    return None


# The operations whose valid requests are brought within rules no schema
# states (see the module's documentation).
_COMPLETIONS = ("POST", "/v1/chat/completions")
_RESPONSES = ("POST", "/v1/responses")
_EMBEDDINGS = ("POST", "/v1/embeddings")
_CHAT = ("POST", "/chat/")
# The limits of functions/completions/src/request.rs (and of
# chat_core::domain::MESSAGE_MAX_CHARS), as openapi.yaml states them.
_MESSAGE_MAX_CHARS = 8000
_MAX_CONVERSATION_CHARS = 32000
_MAX_BODY_BYTES = 256 * 1024
# Blank as the server's `str::trim` sees it: Unicode's White_Space, the
# characters openapi.yaml's non-blank pattern leaves out.
_BLANK = re.compile(
    "[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*"
)


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = (case.operation.method.upper(), case.operation.path)
    if operation not in (_COMPLETIONS, _RESPONSES, _CHAT, _EMBEDDINGS):
        return
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    body = case.body
    if not isinstance(body, dict):
        return
    if operation == _EMBEDDINGS:
        _embeddings_in_shape(body)
        _key_bound_to_body(case)
        return
    # A valid request names a model the deployment serves (the schema
    # cannot pin one: they differ between deployments), so that it reaches
    # the model and is charged, rather than stopping at 404.
    if operation in (_COMPLETIONS, _RESPONSES) or "model" in body:
        body["model"] = os.environ["SCHEMATHESIS_MODEL"]
    if operation == _COMPLETIONS and isinstance(body.get("messages"), list):
        _in_shape(body)
    if operation == _RESPONSES:
        _response_tools_in_shape(body)
        if isinstance(body.get("input"), list):
            _input_in_shape(body)
    _key_bound_to_body(case)


def _key_bound_to_body(case):
    """A generated Idempotency-Key comes back with many bodies (the few
    short values the coverage phase tries), and each after the first is a
    422 by design, so most valid chats would never reach the model. The
    key gets the body's hash at its end (still 1-64 printable characters):
    the same body under the same key still replays, another body is
    another chat. A reused key's 422 is held by tests/tests/openapi.rs."""
    headers = case.headers or {}
    name = next((h for h in headers if h.lower() == "idempotency-key"), None)
    if name is None:
        return
    digest = hashlib.sha256(json.dumps(case.body, sort_keys=True).encode()).hexdigest()[:16]
    headers[name] = f"{str(headers[name]).strip()[:47]}-{digest}"


def _response_tools_in_shape(body):
    """A Responses request's tools as completions takes them: each name
    once, a named choice among the tools, `required` only with tools."""
    tools = body.get("tools")
    names = set()
    if isinstance(tools, list):
        tools[:] = [t for t in tools if t["name"] not in names and not names.add(t["name"])]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice["name"] not in names:
        body["tool_choice"] = "auto" if names else None
    elif choice == "required" and not names:
        body["tool_choice"] = None


def _embeddings_in_shape(body):
    """A valid embeddings request names the served embedding model, and its
    inputs (each within the schema's 50000 characters, up to 32 of them)
    are cut to fit the body's 256 KiB, a limit over several inputs that no
    schema states."""
    model = os.environ.get("SCHEMATHESIS_EMBEDDING_MODEL")
    if model:
        body["model"] = model
    texts = body.get("input")
    if not isinstance(texts, list):
        texts = [texts] if isinstance(texts, str) else []
    while len(json.dumps(body).encode()) > _MAX_BODY_BYTES and texts:
        longest = max(range(len(texts)), key=lambda i: len(texts[i]))
        texts[longest] = texts[longest][: max(1, len(texts[longest]) // 2)]
        body["input"] = texts if isinstance(body.get("input"), list) else texts[0]


def _input_in_shape(body):
    """Brings a schema-valid Responses request's `input` within the rules
    no schema states (functions/responses/src/request.rs reads it into a
    completion request, whose rules apply), in place, keeping it valid."""
    messages = body["input"]
    # Function calls and their outputs must pair up, in order, with the
    # tools given: generated ones rarely do, so they go (a round trip is
    # held by tests/tests/responses.rs and the SDK tests).
    messages[:] = [m for m in messages if "role" in m] or [{"role": "user", "content": "x"}]
    instructions = body.get("instructions")
    has_instructions = isinstance(instructions, str) and not _BLANK.fullmatch(instructions)
    # The instructions are the completion's first message, of 100 at most.
    del messages[100 - has_instructions:]
    # The turns (user and assistant messages) start and end with a user
    # message; with no turn at all, the last message becomes one.
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    for message in (turns[0], turns[-1]) if turns else (messages[-1],):
        message["role"] = "user"
    for message in messages:
        # An earlier answer's id and status come only with an answer.
        if message["role"] != "assistant":
            message.pop("id", None)
            message.pop("status", None)
        parts = message["content"]
        if isinstance(parts, list):
            _parts_in_shape(message["role"], parts)
    # At most 32000 characters in all, the instructions' included, and the
    # body within its size: the earliest messages go, then the turns are
    # brought to order again.
    limit = _MAX_CONVERSATION_CHARS - (len(instructions) if has_instructions else 0)
    while len(messages) > 1 and (
        sum(len(_input_text(m)) for m in messages) > limit
        or len(json.dumps(body).encode()) > _MAX_BODY_BYTES
    ):
        messages.pop(0)
        first = next((m for m in messages if m["role"] in ("user", "assistant")), messages[-1])
        if first["role"] != "user":
            first["role"] = "user"
            first.pop("id", None)
            first.pop("status", None)
            if isinstance(first["content"], list):
                _parts_in_shape("user", first["content"])


def _parts_in_shape(role, parts):
    """A message's parts as its role takes them: an answer's as output
    text, images only from a user (as a real PNG); then the text joined
    within its limits, not blank unless beside an image."""
    for i, part in enumerate(parts):
        text = part.get("text", "")
        if role == "assistant":
            parts[i] = {"type": "output_text", "text": text}
        elif part["type"] == "input_image" and role == "user":
            part["image_url"] = _PNG_URL
        else:
            parts[i] = {"type": "input_text", "text": text}

    def joined():
        return "".join(part.get("text", "") for part in parts)

    while len(parts) > 1 and len(joined()) > _MESSAGE_MAX_CHARS:
        parts.pop()
    if _BLANK.fullmatch(joined()) and not any(p["type"] == "input_image" for p in parts):
        parts[:] = [{"type": "output_text" if role == "assistant" else "input_text", "text": "x"}]


def _input_text(message):
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def _in_shape(body):
    """Brings a schema-valid completion request within the rules no schema
    states, in place, keeping it schema-valid."""
    messages = body["messages"]
    # Tool calls and results must pair up, in order, with the tools given:
    # generated ones rarely do, so they go (a tool round trip is held by
    # tests/tests/completions_tools.rs and the SDK tests), and so does a
    # message left with nothing to say.
    messages[:] = [m for m in messages if _plain(m)] or [{"role": "user", "content": "x"}]
    _tools_in_shape(body)
    # Text parts join into one text: not blank, at most 8000 characters.
    for message in messages:
        parts = message.get("content")
        if isinstance(parts, list) and parts:
            _join_within_limits(parts)
    # At most 32000 characters in all, and the body within its size: the
    # earliest messages go (each is within the limit, so some stay).
    while len(messages) > 1 and (
        sum(len(_text(m)) for m in messages) > _MAX_CONVERSATION_CHARS
        or len(json.dumps(body).encode()) > _MAX_BODY_BYTES
    ):
        messages.pop(0)
    # The turns (all but system and developer messages) start and end with
    # a user message; with no turn at all, the last message becomes one.
    turns = [m for m in messages if m.get("role") in ("user", "assistant")]
    for message in (turns[0], turns[-1]) if turns else (messages[-1],):
        message["role"] = "user"


def _plain(message):
    """A message without tool calls or results, with text to say."""
    if message.get("role") == "tool" or message.get("tool_calls"):
        return False
    return message.get("content") not in (None, "")


def _tools_in_shape(body):
    """Each tool name once, and a named choice among the tools."""
    tools = body.get("tools")
    if isinstance(tools, list):
        seen = set()
        tools[:] = [
            t for t in tools
            if t["function"]["name"] not in seen and not seen.add(t["function"]["name"])
        ]
        names = seen
    else:
        names = set()
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice["function"]["name"] not in names:
        body["tool_choice"] = "auto" if names else None


# A 1x1 PNG: generated image parts hold a data: URL of the right shape
# whose bytes are rarely an image of the type it names.
_PNG_URL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _join_within_limits(parts):
    for part in parts:
        if part.get("type") == "image_url":
            part["image_url"]["url"] = _PNG_URL

    def joined():
        return "".join(part.get("text", "") for part in parts)

    while len(parts) > 1 and len(joined()) > _MESSAGE_MAX_CHARS:
        parts.pop()
    # Blank text is taken beside an image; otherwise a text part says "x".
    if _BLANK.fullmatch(joined()) and not any(p.get("type") == "image_url" for p in parts):
        parts[0] = {"type": "text", "text": "x"}
        while len(parts) > 1 and len(joined()) > _MESSAGE_MAX_CHARS:
            parts.pop()


def _text(message):
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)
