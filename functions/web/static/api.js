// The API as the page uses it: JSON requests with the session's token, and
// refusals turned into ApiError with a sentence for a person.

import { explain, sessionEnded } from "./messages.js";

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(explain(status, body, retryAfter));
    this.status = status;
    this.body = body;
  }

  get sessionEnded() {
    return sessionEnded(this.status);
  }
}

/** Where /v1 is: this origin's, or the deployment's OpenAI API (a meta tag). */
export function openAiBase() {
  const meta = document.querySelector('meta[name="openai-base-url"]');
  const base = meta?.content || "/v1";
  return base.endsWith("/") ? base.slice(0, -1) : base;
}

async function bodyOf(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// The token lives in sessionStorage: it survives a reload of this tab,
// is gone when the tab closes, and is never sent by the browser on its
// own (no cookie, so no CSRF). docs/web.md says why.
const TOKEN = "chat-token";
const USER = "chat-user";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get user() { return sessionStorage.getItem(USER); },
  start(user, token) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, user);
  },
  end() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
  },
};

/** Headers with the session's token, for the JSON API and /v1 alike. */
export function authorised(headers = {}) {
  const token = session.token;
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

/**
 * A request to the API: the parsed JSON answer (null for 204), or an
 * ApiError. `path` is on this origin unless it is absolute.
 */
export async function call(path, { method = "GET", json, auth = true } = {}) {
  const headers = {};
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: auth ? authorised(headers) : headers,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (!response.ok) {
    throw new ApiError(response.status, await bodyOf(response), response.headers.get("Retry-After"));
  }
  return response.status === 204 ? null : bodyOf(response);
}

/** A refusal from a response that was not ok. */
export async function refusalOf(response) {
  return new ApiError(response.status, await bodyOf(response), response.headers.get("Retry-After"));
}
