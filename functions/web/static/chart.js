// Usage as bar charts in SVG, drawn with DOM calls (no library, no inline
// style: colours come from classes in style.css, which the CSP allows).
// GET /usage/ groups the ledger by one thing at a time (`group_by=day`,
// `model` or `key`, rows of {group, charged, ...}): the page asks twice
// and draws tokens per day, then tokens per model.

import { el } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = 6;
const WIDTH = 600;
const HEIGHT = 200;
const AXIS = 24;
const ROW = 22;

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

/**
 * Bars of {label, tokens} from a usage answer: its `rows` of
 * `{group, charged}` (a null group is what names no model or key), or a
 * plainer list of `{day|date|model, tokens|cost|spent}`.
 */
export function usageBars(body, unnamed = "none") {
  const list = Array.isArray(body) ? body
    : [body?.rows, body?.usage, body?.days, body?.items, body?.data].find(Array.isArray) || [];
  return list
    .map((row) => ({
      label: String(row.group ?? row.day ?? row.date ?? row.model ?? unnamed).slice(0, 64),
      tokens: Number(row.charged ?? row.tokens ?? row.cost ?? row.spent ?? 0),
    }))
    .filter((bar) => Number.isFinite(bar.tokens));
}

/** Tokens per day: a column for each day, oldest first. */
export function dayChart(bars) {
  const days = [...bars].sort((a, b) => a.label.localeCompare(b.label));
  const most = Math.max(1, ...days.map((d) => d.tokens));
  const slot = (WIDTH - AXIS) / Math.max(1, days.length);
  const width = Math.max(3, slot * 0.7);
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT + AXIS}`, class: "chart", role: "img",
    "aria-label": `Tokens spent per day: at most ${most} a day`,
  });
  days.forEach((day, i) => {
    const height = (day.tokens / most) * (HEIGHT - 10);
    const x = AXIS + i * slot + (slot - width) / 2;
    chart.append(svg("rect", { x, y: HEIGHT - height, width, height, class: "fill-0" },
      svg("title", {}, `${day.label.slice(0, 10)}: ${day.tokens} tokens`)));
    if (days.length <= 14 || i % Math.ceil(days.length / 14) === 0) {
      chart.append(svg("text", { x: x + width / 2, y: HEIGHT + 16, "text-anchor": "middle" }, day.label.slice(5, 10)));
    }
  });
  chart.append(svg("text", { x: 0, y: 12 }, String(most)));
  return figure("Tokens spent per day", chart, days);
}

/** Tokens per model: a bar for each, the largest first. */
export function modelChart(bars) {
  const models = [...bars].sort((a, b) => b.tokens - a.tokens);
  const most = Math.max(1, ...models.map((m) => m.tokens));
  const left = 160;
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${models.length * ROW + 4}`, class: "chart", role: "img",
    "aria-label": `Tokens spent per model: ${models.length} models`,
  });
  models.forEach((model, i) => {
    const width = Math.max(1, (model.tokens / most) * (WIDTH - left - 60));
    const y = i * ROW + 2;
    chart.append(
      svg("text", { x: left - 6, y: y + 14, "text-anchor": "end" }, model.label.slice(0, 24)),
      svg("rect", { x: left, y, width, height: ROW - 6, class: `fill-${i % COLOURS}` },
        svg("title", {}, `${model.label}: ${model.tokens} tokens`)),
      svg("text", { x: left + width + 4, y: y + 14 }, String(model.tokens)));
  });
  return figure("Tokens spent per model", chart, models);
}

/** A chart with its caption, and its figures as a table for screen readers. */
function figure(caption, chart, bars) {
  const table = el("table", { class: "visually-hidden" },
    el("caption", {}, caption),
    ...bars.map((bar) => el("tr", {}, el("th", { scope: "row" }, bar.label), el("td", {}, `${bar.tokens} tokens`))));
  return el("figure", {}, el("figcaption", {}, caption), chart, table);
}
