// Small DOM helpers: elements built with text (never HTML strings, so
// nothing a reply says can become markup), and the page's two message
// lines.

export const $ = (id) => document.getElementById(id);

/** An element with attributes (`class`, `aria-label`, ...) and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

/** Says something went well (polite live region). */
export function notify(text) {
  $("alert").hidden = true;
  $("notice").textContent = text;
}

/** Says something was refused (assertive live region). */
export function warn(text) {
  $("notice").textContent = "";
  const alert = $("alert");
  alert.textContent = text;
  alert.hidden = false;
}

export function clearMessages() {
  $("notice").textContent = "";
  $("alert").hidden = true;
  $("alert").textContent = "";
}

/** Runs `work` with `button` disabled, so a double click sends once. */
export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

/** A timestamp from the API, in the reader's own locale and zone. */
export function when(timestamp) {
  if (!timestamp) return "never";
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? String(timestamp) : date.toLocaleString();
}
