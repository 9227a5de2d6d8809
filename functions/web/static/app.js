// The page: log in or register, then chat (streamed through
// /v1/chat/completions), with the balance, history, keys and usage
// beside it.

import { call, session, ApiError } from "./api.js";
import { converse, startOver } from "./chat.js";
import { loadHistory, loadKeys, loadModels, loadUsage } from "./panels.js";
import { $, el, notify, warn, clearMessages, busy } from "./ui.js";

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
    startOver();
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
      const loading = enter();
      // Straight to the message box, before the panels have loaded, so
      // focus never moves under a person who has started to Tab.
      $("message").focus();
      await loading;
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
  startOver();
  $("transcript").replaceChildren();
  showSignedIn(false);
  notify("Logged out.");
  $("username").focus();
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
    input.value = "";
    try {
      await converse(message, reply);
    } catch (error) {
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
  const budget = $("key-budget").value.trim();
  if (budget) json.budget = { tokens: Number(budget), period: $("key-period").value };
  await busy($("key-create"), async () => {
    try {
      const key = await call("/keys/", { method: "POST", json });
      $("new-key-secret").textContent = key.key;
      $("new-key").hidden = false;
      $("key-name").value = "";
      $("key-days").value = "";
      $("key-budget").value = "";
      // A deployment without key budgets ignores the field: say so.
      const unbudgeted = budget && (key.budget === undefined || key.budget === null)
        ? " This deployment has no key budgets: the key spends from your balance without a limit." : "";
      notify(`Key "${key.name}" created. Copy it now: it is shown only once.${unbudgeted}`);
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
    startOver();
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
