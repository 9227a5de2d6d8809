// The page: log in or register, then chat (streamed through
// /v1/chat/completions), with the balance, history, keys and usage
// beside it.

import { call, openAiBase, authorised, refusalOf, session, ApiError } from "./api.js";
import { events } from "./sse.js";
import { loadHistory, loadKeys, loadModels, loadUsage } from "./panels.js";
import { $, el, notify, warn, clearMessages, busy } from "./ui.js";

// /v1 takes at most 100 messages and 32000 characters: the oldest turns
// of a long conversation are left out to stay under both.
const MAX_MESSAGES = 99;
const MAX_CHARACTERS = 30000;
let conversation = [];

function showSignedIn(signedIn) {
  $("auth").hidden = signedIn;
  $("app").hidden = !signedIn;
  $("account").hidden = !signedIn;
  $("who").textContent = signedIn ? session.user : "";
}

/** Any refusal: ended sessions go back to log in, the rest are said. */
function report(error) {
  if (error instanceof ApiError && error.sessionEnded && session.token) {
    session.end();
    conversation = [];
    showSignedIn(false);
    $("password").value = "";
    $("username").focus();
  }
  warn(error instanceof ApiError ? error.message : "Something went wrong in this page. Reload it and try again.");
  if (!(error instanceof ApiError)) console.error(error);
}

async function refreshBalance() {
  const body = await call("/balance/");
  $("balance").textContent = String(body.tokens);
}

const quietly = (work) => work().catch(report);

async function enter() {
  showSignedIn(true);
  $("balance").textContent = "…";
  await Promise.all([
    quietly(refreshBalance), quietly(loadModels), quietly(() => loadHistory()),
    quietly(() => loadKeys(revokeKey)), quietly(loadUsage),
  ]);
}

function credentials() {
  return { username: $("username").value, password: $("password").value };
}

async function logIn(event) {
  event.preventDefault();
  clearMessages();
  await busy($("login"), async () => {
    try {
      const body = await call("/login/", { method: "POST", json: credentials(), auth: false });
      session.start(credentials().username, body.token);
      $("password").value = "";
      notify(`Logged in as ${session.user}.`);
      await enter();
      $("message").focus();
    } catch (error) {
      report(error);
    }
  });
}

async function register() {
  clearMessages();
  await busy($("register"), async () => {
    try {
      await call("/register/", { method: "POST", json: credentials(), auth: false });
      notify("Registered. Now log in.");
      $("login").focus();
    } catch (error) {
      report(error);
    }
  });
}

async function logOut() {
  clearMessages();
  try {
    await call("/logout/", { method: "POST" });
  } catch (error) {
    // Already ended (401) or unreachable: the page forgets it all the same.
    if (!(error instanceof ApiError && error.sessionEnded)) report(error);
  }
  session.end();
  conversation = [];
  $("transcript").replaceChildren();
  showSignedIn(false);
  notify("Logged out.");
  $("username").focus();
}

/** The conversation's latest turns that /v1 will take. */
function recentTurns() {
  const turns = [];
  let characters = 0;
  for (let i = conversation.length - 1; i >= 0 && turns.length < MAX_MESSAGES; i--) {
    characters += conversation[i].content.length;
    if (characters > MAX_CHARACTERS && turns.length > 0) break;
    turns.unshift(conversation[i]);
  }
  // The turns must begin with the user's.
  while (turns.length && turns[0].role !== "user") turns.shift();
  return turns;
}

async function streamReply(reply) {
  const response = await fetch(`${openAiBase()}/chat/completions`, {
    method: "POST",
    headers: authorised({
      "Content-Type": "application/json",
      // A retry of this very request is never charged twice.
      "Idempotency-Key": crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random(),
    }),
    body: JSON.stringify({ model: $("model").value || undefined, stream: true, messages: recentTurns() }),
  }).catch(() => { throw new ApiError(0, null); });
  if (!response.ok) throw await refusalOf(response);
  let text = "";
  for await (const chunk of events(response)) {
    if (chunk.error) throw new ApiError(502, chunk);
    const delta = chunk.choices?.[0]?.delta?.content;
    if (delta) {
      text += delta;
      reply.textContent = text;
    }
    if (chunk.choices?.[0]?.finish_reason === "length") {
      reply.after(el("span", { class: "meta" }, "The reply was cut short."));
    }
  }
  return text;
}

async function send(event) {
  event.preventDefault();
  const input = $("message");
  const message = input.value;
  if (!message.trim()) {
    warn("Write a message first.");
    input.focus();
    return;
  }
  clearMessages();
  await busy($("send"), async () => {
    const reply = el("span", { class: "text" });
    const item = el("li", { class: "assistant", "aria-busy": "true" },
      el("span", { class: "visually-hidden" }, "Reply: "), reply);
    $("transcript").append(el("li", { class: "user" }, el("span", { class: "visually-hidden" }, "You: "), message), item);
    conversation.push({ role: "user", content: message });
    input.value = "";
    try {
      const text = await streamReply(reply);
      conversation.push({ role: "assistant", content: text });
    } catch (error) {
      conversation.pop();
      item.remove();
      $("transcript").lastElementChild?.remove();
      // A refused message is given back to edit or resend.
      if (!input.value) input.value = message;
      report(error);
    } finally {
      item.removeAttribute("aria-busy");
      $("transcript").scrollTop = $("transcript").scrollHeight;
    }
    if (session.token) {
      await Promise.all([quietly(refreshBalance), quietly(() => loadHistory()), quietly(loadUsage)]);
    }
  });
}

async function createKey(event) {
  event.preventDefault();
  clearMessages();
  const days = $("key-days").value.trim();
  const json = { name: $("key-name").value.trim() };
  if (days) json.expires_in_days = Number(days);
  await busy($("key-create"), async () => {
    try {
      const key = await call("/keys/", { method: "POST", json });
      $("new-key-secret").textContent = key.key;
      $("new-key").hidden = false;
      $("key-name").value = "";
      $("key-days").value = "";
      notify(`Key "${key.name}" created. Copy it now: it is shown only once.`);
      await loadKeys(revokeKey);
      $("new-key-done").focus();
    } catch (error) {
      report(error);
    }
  });
}

function hideNewKey() {
  $("new-key-secret").textContent = "";
  $("new-key").hidden = true;
  $("key-name").focus();
}

async function revokeKey(key, button) {
  clearMessages();
  await busy(button, async () => {
    try {
      await call(`/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
      notify(`Key "${key.name}" revoked.`);
    } catch (error) {
      report(error);
    }
    await quietly(() => loadKeys(revokeKey));
    $("key-name").focus();
  });
}

function start() {
  $("auth-form").addEventListener("submit", logIn);
  $("register").addEventListener("click", register);
  $("logout").addEventListener("click", logOut);
  $("chat-form").addEventListener("submit", send);
  // Enter sends, Shift+Enter starts a new line, as in most chat apps.
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("new-conversation").addEventListener("click", () => {
    conversation = [];
    $("transcript").replaceChildren();
    $("message").focus();
  });
  $("history-more").addEventListener("click", () => quietly(() => loadHistory(true)));
  $("key-form").addEventListener("submit", createKey);
  $("new-key-done").addEventListener("click", hideNewKey);
  // Keys used elsewhere spend the same balance: read it again whenever
  // the person comes back to this tab.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && session.token) quietly(refreshBalance);
  });
  if (session.token) enter();
  else showSignedIn(false);
}

start();
