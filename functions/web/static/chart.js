// Usage per day and per model as a stacked bar chart in SVG, drawn with
// DOM calls (no library, no inline style: colours come from classes in
// style.css, which the CSP allows).

import { el } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = 6;
const WIDTH = 600;
const HEIGHT = 220;
const AXIS = 24;

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

/**
 * Rows of {day, model, tokens} from whatever list the usage answer holds:
 * `[{day|date, model, tokens|cost|spent|charged}]`, or a day with a map
 * of models (`{day, models: {name: tokens}}`).
 */
export function usageRows(body) {
  const list = Array.isArray(body) ? body
    : [body?.usage, body?.days, body?.rows, body?.items, body?.data].find(Array.isArray) || [];
  const amount = (row) => Number(row.tokens ?? row.cost ?? row.spent ?? row.charged ?? 0);
  const rows = [];
  for (const row of list) {
    const day = String(row.day ?? row.date ?? "").slice(0, 10);
    if (row.models && typeof row.models === "object" && !Array.isArray(row.models)) {
      for (const [model, value] of Object.entries(row.models)) {
        rows.push({ day, model, tokens: Number(typeof value === "object" ? amount(value) : value) });
      }
    } else if (Array.isArray(row.models)) {
      for (const entry of row.models) rows.push({ day, model: String(entry.model ?? "?"), tokens: amount(entry) });
    } else {
      rows.push({ day, model: String(row.model ?? "all"), tokens: amount(row) });
    }
  }
  return rows.filter((row) => row.day && Number.isFinite(row.tokens));
}

/** A figure: the chart, a legend, and the same figures as a table for screen readers. */
export function usageChart(rows) {
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const total = (day) => rows.filter((r) => r.day === day).reduce((sum, r) => sum + r.tokens, 0);
  const most = Math.max(1, ...days.map(total));
  const slot = (WIDTH - AXIS) / Math.max(1, days.length);
  const bar = Math.max(4, slot * 0.7);
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT + AXIS}`, class: "chart", role: "img",
    "aria-label": `Tokens spent per day, ${days[0]} to ${days[days.length - 1]}, at most ${most} a day`,
  });
  days.forEach((day, i) => {
    let top = HEIGHT;
    const x = AXIS + i * slot + (slot - bar) / 2;
    for (const model of models) {
      const tokens = rows.filter((r) => r.day === day && r.model === model).reduce((s, r) => s + r.tokens, 0);
      if (tokens <= 0) continue;
      const height = (tokens / most) * (HEIGHT - 10);
      top -= height;
      chart.append(svg("rect", {
        x, y: top, width: bar, height, class: `fill-${models.indexOf(model) % COLOURS}`,
      }, svg("title", {}, `${day} ${model}: ${tokens} tokens`)));
    }
    if (days.length <= 14 || i % Math.ceil(days.length / 14) === 0) {
      chart.append(svg("text", { x: x + bar / 2, y: HEIGHT + 16, "text-anchor": "middle" }, day.slice(5)));
    }
  });
  chart.append(svg("text", { x: 0, y: 12 }, String(most)));
  const legend = el("ul", { class: "legend" }, ...models.map((model, i) =>
    el("li", {}, el("span", { class: `swatch swatch-${i % COLOURS}`, "aria-hidden": "true" }), model)));
  const table = el("table", { class: "visually-hidden" },
    el("caption", {}, "Tokens spent per day and model"),
    el("tr", {}, el("th", { scope: "col" }, "Day"), el("th", { scope: "col" }, "Model"), el("th", { scope: "col" }, "Tokens")),
    ...rows.map((r) => el("tr", {}, el("td", {}, r.day), el("td", {}, r.model), el("td", {}, String(r.tokens)))));
  return el("figure", {}, chart, legend, table);
}
