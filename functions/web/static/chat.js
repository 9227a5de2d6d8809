// The conversation on this page, and one reply streamed into it through
// /v1/chat/completions as the model writes it.

import { openAiBase, authorised, refusalOf, ApiError } from "./api.js";
import { events } from "./sse.js";
import { $, el } from "./ui.js";

// /v1 takes at most 100 messages and 32000 characters: the oldest turns
// of a long conversation are left out to stay under both.
const MAX_MESSAGES = 99;
const MAX_CHARACTERS = 30000;
let conversation = [];

/** Forgets the conversation: the next message starts a new one. */
export function startOver() {
  conversation = [];
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

/**
 * Sends `message` after the conversation so far and writes the reply into
 * `reply` as it arrives. A refusal leaves the conversation as it was.
 */
export async function converse(message, reply) {
  conversation.push({ role: "user", content: message });
  try {
    const text = await streamReply(reply);
    conversation.push({ role: "assistant", content: text });
  } catch (error) {
    conversation.pop();
    throw error;
  }
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

