// The panels beside the chat: the model picker, history, API keys and
// usage. Each loads on its own, so one refused request leaves the others
// working.

import { call, openAiBase, ApiError } from "./api.js";
import { dayChart, modelChart, usageBars } from "./chart.js";
import { $, el, when } from "./ui.js";

const HISTORY_PAGE = 10;

/** A model's price in words, from the `pricing` extension of /v1/models. */
export function priceOf(model) {
  const pricing = model.pricing;
  if (!pricing) return "";
  if (pricing.flat !== undefined) return `${pricing.flat} tokens a chat`;
  const per = pricing.price_per_1000;
  if (per) return `${per.input} in, ${per.output} out per 1000 model tokens`;
  return "";
}

export async function loadModels() {
  const body = await call(`${openAiBase()}/models`);
  const select = $("model");
  const chosen = select.value;
  // The chat answers with chat models; an embedding model is /v1/embeddings' alone.
  const chats = (body?.data || []).filter((model) => (model.kind ?? "chat") === "chat");
  select.replaceChildren(...chats.map((model) => {
    const price = priceOf(model);
    const option = el("option", { value: model.id }, price ? `${model.id} (${price})` : model.id);
    if (model.pricing) option.dataset.flat = model.pricing.flat ?? "";
    return option;
  }));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

let historyCursor = null;

/** The newest page of history, or (`older`) the page after the last one shown. */
export async function loadHistory(older = false) {
  const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (older && historyCursor) query.set("cursor", historyCursor);
  const body = await call(`/chats/?${query}`);
  const list = $("history");
  const items = (body?.chats || []).map((chat) => el("li", {},
    el("span", { class: "meta" }, `${when(chat.timestamp)} · ${chat.cost} tokens${chat.model ? ` · ${chat.model}` : ""}`),
    el("span", { class: "visually-hidden" }, "You: "), el("strong", {}, chat.message), el("br"),
    el("span", { class: "visually-hidden" }, "Reply: "), chat.response || "(no reply)"));
  if (older) list.append(...items);
  else list.replaceChildren(...items);
  historyCursor = body?.next_cursor ?? null;
  $("history-more").hidden = historyCursor === null;
  $("history-empty").hidden = list.children.length > 0;
}

export async function loadKeys(onRevoke) {
  const body = await call("/keys/");
  const keys = body?.keys || [];
  const budgets = keys.some((key) => key.budget !== undefined && key.budget !== null);
  $("budget-col").hidden = !budgets;
  $("keys").replaceChildren(...keys.map((key) => {
    const revoke = el("button", { type: "button", "aria-label": `Revoke ${key.name}` }, "Revoke");
    revoke.addEventListener("click", () => onRevoke(key, revoke));
    return el("tr", {},
      el("td", {}, key.name),
      el("td", {}, el("code", {}, `${key.prefix}…`)),
      el("td", {}, when(key.created_at)),
      el("td", {}, key.expires_at ? when(key.expires_at) : "never"),
      el("td", {}, key.last_used ? String(key.last_used) : "never"),
      budgets ? el("td", {}, budgetOf(key)) : null,
      el("td", {}, revoke));
  }));
  $("key-table").hidden = keys.length === 0;
  $("keys-empty").hidden = keys.length > 0;
}

/** A key's budget as GET /keys/ gives it: `budget` {tokens, period}, `spent`, `resets_at`. */
export function budgetOf(key) {
  const budget = key.budget;
  if (budget === undefined || budget === null) return "none";
  const limit = typeof budget === "object" ? budget.tokens : budget;
  const period = budget.period && budget.period !== "total" ? ` this ${budget.period}` : " in all";
  const spent = key.spent ?? budget.spent;
  const renews = key.resets_at ? `, renews ${when(key.resets_at)}` : "";
  return spent !== undefined && spent !== null
    ? `${spent} of ${limit} tokens spent${period}${renews}`
    : `${limit} tokens${period}`;
}

export async function loadUsage() {
  const panel = $("usage");
  try {
    const [days, models] = await Promise.all([
      call("/usage/?group_by=day"), call("/usage/?group_by=model"),
    ]);
    const perDay = usageBars(days).filter((bar) => bar.tokens > 0);
    const perModel = usageBars(models).filter((bar) => bar.tokens > 0);
    panel.replaceChildren(...(perDay.length
      ? [el("p", {}, "The last 30 days."), dayChart(perDay), perModel.length ? modelChart(perModel) : null]
      : [el("p", {}, "No tokens spent in the last 30 days.")]).filter(Boolean));
  } catch (error) {
    // A deployment without the usage endpoint answers 404 (or 405).
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) {
      panel.replaceChildren(el("p", {}, "Usage is not available on this deployment."));
      return;
    }
    throw error;
  }
}
