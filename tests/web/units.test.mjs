// The page's pure parts, in Node (no browser): the sentence for each
// refusal, the SSE reader, and the usage chart's reading of an answer.
// scripts/web-test.sh runs this with `node --test` before the browser.

import { test } from "node:test";
import assert from "node:assert/strict";

const modules = new URL("../../functions/web/static/", import.meta.url);
const { explain } = await import(new URL("messages.js", modules));
const { events } = await import(new URL("sse.js", modules));
const { usageBars } = await import(new URL("chart.js", modules));
// panels.js reads the page's meta tag only when called.
const { budgetOf } = await import(new URL("panels.js", modules));

test("a spent balance says so, with the figures, in either shape", () => {
  const json = explain(402, { error: "insufficient_tokens", message: "x", tokens: 50, cost: 100 });
  assert.match(json, /too few tokens.*balance 50, this chat costs 100/);
  const openai = explain(429, { error: { code: "insufficient_quota", type: "insufficient_quota", message: "x" } });
  assert.match(openai, /too few tokens/);
  assert.doesNotMatch(openai, /slowed/);
});

test("being slowed down says when to try again", () => {
  const text = explain(429, { error: { code: "rate_limit_exceeded", message: "x" } }, "7");
  assert.match(text, /slowed down.*Try again in 7 seconds/);
  assert.match(explain(429, { error: "rate_limited", message: "x" }, "1"), /in 1 second\./);
});

test("a key's spent budget is named, whatever its exact code", () => {
  assert.match(explain(429, { error: { code: "key_budget_exceeded", message: "x" } }), /key's budget is spent/);
  assert.match(explain(402, { error: "budget_exhausted", message: "x" }), /key's budget is spent/);
});

test("a wrong password is not an ended session, and an ended session is", () => {
  assert.match(explain(401, { error: "invalid_credentials", message: "x" }), /do not match/);
  assert.match(explain(401, { error: { code: "invalid_api_key", message: "x" } }), /log in again/);
  assert.match(explain(401, null), /log in again/);
});

test("no sentence is ever the body itself", () => {
  for (const [status, body] of [[500, { error: "internal_error" }], [418, null], [502, "<html>"], [0, null]]) {
    const text = explain(status, body);
    assert.doesNotMatch(text, /[{}<]/, text);
  }
});

function streamOf(...pieces) {
  const bytes = new TextEncoder();
  return new Response(new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(bytes.encode(piece));
      controller.close();
    },
  }));
}

test("events split across reads and CRLF lines are read whole, up to [DONE]", async () => {
  const seen = [];
  const response = streamOf('data: {"a"', ': 1}\r\n\r\ndata: {"a": 2}\n', '\ndata: [DONE]\n\ndata: {"a": 3}\n\n');
  for await (const event of events(response)) seen.push(event.a);
  assert.deepEqual(seen, [1, 2]);
});

test("usage rows of GET /usage/ become bars of what was charged", () => {
  const body = {
    group_by: "model",
    rows: [{ group: null, charged: 0, granted: 4000 }, { group: "dummy", charged: 300, granted: 0 }],
  };
  assert.deepEqual(usageBars(body), [{ label: "none", tokens: 0 }, { label: "dummy", tokens: 300 }]);
  assert.deepEqual(usageBars({ nothing: true }), []);
});

test("a key's budget reads as spent of its tokens for its period", () => {
  assert.equal(budgetOf({ budget: null }), "none");
  assert.equal(budgetOf({}), "none");
  assert.equal(budgetOf({ budget: { tokens: 5000, period: "day" }, spent: 300 }), "300 of 5000 tokens spent this day");
  assert.equal(budgetOf({ budget: { tokens: 9, period: "total" }, spent: 0 }), "0 of 9 tokens spent in all");
});

test("a key's spent budget says when it renews", () => {
  const text = explain(429, { error: { code: "key_budget_exceeded", resets_at: "2026-12-03T00:00:00Z", message: "x" } });
  assert.match(text, /budget is spent.*renews at/);
  assert.match(explain(403, { error: "model_not_allowed", message: "x" }), /may not use that model/);
});
