# ruff: noqa: E501, RUF001 - HTML, CSS and JavaScript, one statement to a line; Greek letters shown
"""The dashboards' base page: a Jinja2 template (autoescaped) with inline styles and script.

Each dashboard's page extends it (``{% extends "base.html" %}``) with its ``body``
and its ``render(state)`` function (block ``script``). The script here fetches
``api/state`` every ``poll_ms`` milliseconds and hands the JSON to ``render``; its
helpers build every element with ``textContent`` (never ``innerHTML``), so nothing a
bank or a log put into the state can become markup. The page requests nothing but
itself and ``api/state``: no font, no icon, no library (the icon is an empty data
URI), and its Content-Security-Policy lets the browser load nothing else.
"""

from __future__ import annotations

__all__ = ["BASE"]

BASE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="fedcredit">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style nonce="{{ nonce }}">
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1c2833; background: #fff; margin: 0; line-height: 1.45; font-size: 14px; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 28px 48px; }
header { border-bottom: 3px solid #2471a3; padding-bottom: 8px; margin-bottom: 8px; display: flex; justify-content: space-between; align-items: flex-end; gap: 16px; flex-wrap: wrap; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 18px; margin: 26px 0 6px; padding-top: 6px; border-top: 1px solid #d5dbdb; }
.meta { color: #566573; margin: 0; word-break: break-all; }
.note { color: #566573; margin: 2px 0 8px; max-width: 900px; }
.live { font-size: 13px; padding: 3px 10px; border-radius: 12px; white-space: nowrap; }
.live.ok { background: #d5f5e3; color: #145a32; } .live.down { background: #fadbd8; color: #78281f; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.tile { border: 1px solid #d5dbdb; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.tile .label { color: #566573; font-size: 12px; }
.tile .value { font-size: 19px; font-weight: 600; }
.good { color: #1e8449; } .bad { color: #c0392b; } .warn { color: #b9770e; } .muted { color: #aab7b8; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e8e8; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f4f6f6; font-weight: 600; white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfc; }
.wide { overflow-x: auto; }
.empty { color: #808b96; font-style: italic; margin: 4px 0 10px; }
code { font-size: 12px; } code.hash { word-break: break-all; }
progress { width: 160px; height: 12px; vertical-align: middle; }
.chart { border: 1px solid #e5e8e8; border-radius: 6px; padding: 6px; max-width: 720px; }
.chart svg { width: 100%; height: auto; display: block; }
.chart text { font-size: 11px; fill: #566573; }
.steps { display: flex; gap: 6px; flex-wrap: wrap; margin: 6px 0; padding: 0; list-style: none; }
.steps li { border: 1px solid #d5dbdb; border-radius: 14px; padding: 2px 12px; color: #808b96; }
.steps li.done { background: #d6eaf8; color: #1b4f72; border-color: #aed6f1; }
.steps li.now { background: #2471a3; color: #fff; border-color: #2471a3; }
dl.pairs { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.pairs dt { color: #566573; } dl.pairs dd { margin: 0; word-break: break-all; }
</style>
</head>
<body>
<main>
<header>
<div><h1>{{ title }}</h1><p class="meta" id="source"></p></div>
<span class="live down" id="live">connecting</span>
</header>
{% block body %}{% endblock %}
</main>
<script nonce="{{ nonce }}">
"use strict";
const POLL_MS = {{ poll_ms }};
const SVG = "http://www.w3.org/2000/svg";

function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function s(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function fill(id, ...children) {
  document.getElementById(id).replaceChildren(...children.filter(c => c !== null && c !== undefined));
}

function num(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function when(time) {
  return time ? String(time).replace("T", " ").slice(0, 19) + " UTC" : "–";
}

function cell(value) {
  if (value instanceof Node) return h("td", {}, value);
  if (typeof value === "number") return h("td", {class: "n"}, String(value));
  return h("td", {}, value === null || value === undefined ? "–" : String(value));
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h("p", {class: "empty"}, empty);
  const head = h("tr", {}, ...headers.map(name => h("th", {}, name)));
  const body = h("tbody", {}, ...rows.map(row => h("tr", {}, ...row.map(cell))));
  return h("div", {class: "wide"}, h("table", {}, h("thead", {}, head), body));
}

function tile(label, value, tone) {
  return h("div", {class: "tile"}, h("div", {class: "label"}, label), h("div", {class: "value " + (tone || "")}, value));
}

function pairs(entries) {
  const list = h("dl", {class: "pairs"});
  for (const [label, value] of entries) list.append(h("dt", {}, label), h("dd", {}, value instanceof Node ? value : String(value)));
  return list;
}

function budgetBar(spent, maximum) {
  if (spent === null || spent === undefined) return h("span", {class: "muted"}, "–");
  if (maximum === null || maximum === undefined) return h("span", {}, "ε " + num(spent, 3));
  const bar = h("progress", {max: String(maximum), value: String(Math.min(spent, maximum))});
  const tone = spent >= maximum ? "bad" : (spent >= 0.8 * maximum ? "warn" : "");
  return h("span", {}, bar, " ", h("span", {class: tone}, "ε " + num(spent, 3) + " of " + num(maximum, 3)));
}

function auditPanel(audit) {
  if (!audit.present) return h("p", {class: "empty"}, "no audit log yet: " + audit.file);
  const status = audit.verified
    ? h("span", {class: "good"}, "verified: every signature and the hash chain check out" + (audit.closed ? " (closed)" : " (open: still being written)"))
    : h("span", {class: "bad"}, "NOT verified: " + audit.problem);
  return pairs([
    ["status", status], ["file", audit.file], ["key", audit.key],
    ["fingerprint", h("code", {class: "hash"}, audit.fingerprint || "–")],
    ["entries", audit.entries], ["head", h("code", {class: "hash"}, audit.head || "–")],
    ["last entry", (audit.last_event || "–") + " at " + when(audit.last_time)],
  ]);
}

// A line chart of series [{name, colour, points: [[x, y], ...]}] as an SVG element.
function lineChart(series, options) {
  const width = 700, height = 250, left = 48, right = 16, top = 14, bottom = 40;
  const xs = series.flatMap(line => line.points.map(p => p[0]));
  const ys = series.flatMap(line => line.points.map(p => p[1]));
  const xMax = Math.max(options.xMax || 1, ...xs, 1), xMin = Math.min(options.xMin ?? 1, ...xs);
  let yMin = options.yMin ?? Math.min(...ys, 0), yMax = options.yMax ?? Math.max(...ys, 1);
  if (yMax <= yMin) yMax = yMin + 1;
  const x = v => left + (xMax === xMin ? 0.5 : (v - xMin) / (xMax - xMin)) * (width - left - right);
  const y = v => top + (1 - (v - yMin) / (yMax - yMin)) * (height - top - bottom);
  const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": options.label});
  for (let i = 0; i <= 4; i++) {
    const value = yMin + (yMax - yMin) * i / 4;
    svg.append(s("line", {x1: left, x2: width - right, y1: y(value), y2: y(value), stroke: "#e5e8e8"}));
    svg.append(s("text", {x: left - 6, y: y(value) + 4, "text-anchor": "end"}, value.toFixed(2)));
  }
  const step = Math.max(1, Math.ceil((xMax - xMin) / 10));
  for (let v = xMin; v <= xMax; v += step) svg.append(s("text", {x: x(v), y: height - bottom + 16, "text-anchor": "middle"}, String(v)));
  svg.append(s("text", {x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle"}, options.xLabel));
  for (const line of options.rules || []) {
    svg.append(s("line", {x1: left, x2: width - right, y1: y(line.y), y2: y(line.y), stroke: line.colour, "stroke-dasharray": "6 4"}));
    svg.append(s("text", {x: width - right, y: y(line.y) - 4, "text-anchor": "end"}, line.name));
  }
  series.forEach((line, index) => {
    const points = line.points.map(p => `${x(p[0])},${y(p[1])}`).join(" ");
    if (line.points.length > 1) svg.append(s("polyline", {points, fill: "none", stroke: line.colour, "stroke-width": 2}));
    for (const p of line.points) svg.append(s("circle", {cx: x(p[0]), cy: y(p[1]), r: 3.5, fill: line.colour}));
    svg.append(s("rect", {x: left + 10 + index * 90, y: top, width: 12, height: 12, fill: line.colour}));
    svg.append(s("text", {x: left + 27 + index * 90, y: top + 10}, line.name));
  });
  return h("div", {class: "chart"}, svg);
}

function setLive(ok, text) {
  const badge = document.getElementById("live");
  badge.className = "live " + (ok ? "ok" : "down");
  badge.textContent = text;
}

async function poll() {
  try {
    const reply = await fetch("api/state", {cache: "no-store"});
    const state = await reply.json();
    if (!reply.ok) throw new Error(state.error || reply.statusText);
    render(state);
    setLive(true, "live · read " + new Date().toLocaleTimeString());
  } catch (problem) {
    setLive(false, "not updating: " + problem.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}
{% block script %}{% endblock %}
poll();
</script>
</body>
</html>
"""
