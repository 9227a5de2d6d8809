// What a refusal means to a person: one sentence per error code, from the
// JSON API's shape ({"error": code, "message"}) or OpenAI's on /v1
// ({"error": {"code", "type", "message"}}). Never the body itself.

const SENTENCES = {
  invalid_credentials: "That username and password do not match an account.",
  username_taken: "That username is taken; pick another.",
  registration_closed: "Registration is closed on this deployment.",
  invalid_invite: "Registration needs a valid invite code on this deployment.",
  too_many_attempts: "Too many wrong passwords for this name lately.",
  ip_rate_limited: "Too many attempts from this network.",
  rate_limited: "You are sending messages too fast; you have been slowed down.",
  rate_limit_exceeded: "You are sending messages too fast; you have been slowed down.",
  too_many_open_calls: "You have too many replies being written at once.",
  account_disabled: "This account has been disabled. Contact the operator.",
  session_required: "Only a logged-in session can manage API keys.",
  key_not_found: "That key no longer exists.",
  model_not_allowed: "This key may not use that model.",
  too_many_keys: "You already have the most keys allowed; revoke one first.",
  model_not_found: "That model is not served here any more; pick another.",
  payload_too_large: "That message is too long.",
  idempotency_key_reused: "That retry did not match the first attempt; send it again.",
  idempotency_key_in_progress: "The same message is still being answered.",
  model_error: "The model failed to answer.",
  model_unavailable: "The model is busy or unavailable right now.",
  unavailable: "The service is busy right now.",
  internal_error: "Something went wrong on our side.",
  not_found: "This deployment does not offer that.",
};

/** The refusal in a body, whichever shape it has: {code, message, extra}. */
function refusal(body) {
  if (body && typeof body.error === "object" && body.error !== null) {
    return { code: body.error.code || body.error.type, message: body.error.message, extra: body.error };
  }
  if (body && typeof body.error === "string") {
    return { code: body.error, message: body.message, extra: body };
  }
  return { code: undefined, message: undefined, extra: {} };
}

function later(retryAfter) {
  const seconds = Number.parseInt(retryAfter ?? "", 10);
  return Number.isFinite(seconds) && seconds > 0
    ? ` Try again in ${seconds} second${seconds === 1 ? "" : "s"}.`
    : " Try again in a moment.";
}

/**
 * A sentence for a refused request: its HTTP status, its parsed body (or
 * null), and its Retry-After header.
 */
export function explain(status, body, retryAfter) {
  if (status === 0) return "The service could not be reached. Check your connection and try again.";
  const { code, message, extra } = refusal(body);
  const text = code ? String(code) : "";
  if (text === "insufficient_tokens" || text === "insufficient_quota") {
    const numbers = extra.tokens !== undefined && extra.cost !== undefined
      ? ` (balance ${extra.tokens}, this chat costs ${extra.cost})` : "";
    return `You have too few tokens for this chat${numbers}. Ask the operator for a top-up.`;
  }
  if (text.includes("budget")) {
    const renews = extra.resets_at ? ` It renews at ${new Date(extra.resets_at).toLocaleString()}.` : "";
    return `This key's budget is spent: it cannot pay for this chat.${renews} Raise its budget or use another key.`;
  }
  const sentence = SENTENCES[text];
  // A wrong password is a 401 too, but not an ended session.
  if (status === 401) return sentence || "Your session has expired or was ended. Please log in again.";
  if (status === 413) return SENTENCES.payload_too_large;
  if (status === 400 || text === "invalid_field" || text === "invalid_request_error") {
    // The API's own sentence for a field it refused is written for people.
    return message ? `The request was refused: ${message}` : "The request was refused as invalid.";
  }
  if (status === 429 || status === 503) {
    return (sentence || "The service is busy right now.") + later(retryAfter);
  }
  if (sentence) return sentence;
  if (status >= 500) return "Something went wrong on our side. Try again shortly.";
  return `The request was refused (HTTP ${status}).`;
}

/** Whether a refusal means the session is over (back to log in). */
export function sessionEnded(status) {
  return status === 401;
}
