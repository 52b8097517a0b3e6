# ruff: noqa: E501, RUF001 - HTML, CSS and JavaScript, one statement to a line; Greek letters shown
"""The bank's dashboard page (extends :data:`deploy.web._page.BASE`): its spend against its
budget, drawn as an SVG from the JSON state, its ledger, refusals, runs, audit log and
latest activity. Every value is set as text."""

from __future__ import annotations

__all__ = ["TEMPLATE"]

TEMPLATE = """\
{% extends "base.html" %}
{% block body %}
<div class="tiles" id="tiles"></div>
<h2>Privacy budget</h2>
<div id="budget"></div>
<div id="chart"></div>
<h2>Requests refused</h2>
<div id="refusals"></div>
<h2>Ledger</h2>
<p class="note" id="ledger-note"></p>
<div id="ledger"></div>
<h2>Runs</h2>
<div id="runs"></div>
<h2>Audit log</h2>
<div id="audit"></div>
<h3>Latest entries</h3>
<div id="activity"></div>
{% endblock %}
{% block script %}
function render(state) {
  fill("source", "bank " + state.bank + " · node folder " + state.source);
  const spent = state.ledger.spent;
  const budget = state.budget;
  const audit = state.audit;
  const guard = state.services.guard !== null, supernode = state.services.supernode !== null;
  const node = guard && supernode ? "running" : (guard ? "guard only" : "stopped");
  fill("tiles",
    tile("ε spent", spent ? num(spent.epsilon, 3) : (budget ? "0.000" : "no DP")),
    tile("budget", budget ? "ε " + num(budget.max_epsilon, 3) : "none"),
    tile("ε left", budget ? num(Math.max(budget.max_epsilon - (spent ? spent.epsilon : 0), 0), 3) : "–", budget && spent && spent.epsilon >= budget.max_epsilon ? "bad" : ""),
    tile("releases", String(state.ledger.events.length)),
    tile("requests refused", String(state.refusals.length), state.refusals.length ? "warn" : ""),
    tile("guard and SuperNode", node, node === "running" ? "good" : "bad"),
    tile("audit log", audit === null || !audit.present ? "–" : (audit.verified ? "verified" : "BROKEN"), audit && audit.present ? (audit.verified ? "good" : "bad") : ""));
  if (budget === null) {
    fill("budget", h("p", {class: "empty"}, "This bank trains without differential privacy (no budget, no ledger)."));
    fill("chart");
  } else {
    const delta = spent ? spent.delta : budget.delta;
    fill("budget", pairs([
      ["spent", budgetBar(spent ? spent.epsilon : 0, budget.max_epsilon)],
      ["delta", delta === null || delta === undefined ? "–" : Number(delta).toExponential(2)],
      ["by row set", spent ? Object.entries(spent.by_rows).map(([rows, eps]) => rows + " " + num(eps, 3)).join(" · ") : "nothing spent"],
      ["ledger", state.ledger.file + (state.ledger.problem ? " — " + state.ledger.problem : "")],
    ]));
    const points = state.ledger.events.map(e => [e.index, e.epsilon_after]);
    fill("chart", points.length ? lineChart([{name: "ε spent", colour: "#1f77b4", points}],
      {label: "ε spent after each release", xLabel: "release (ledger order)", xMin: 1, yMin: 0, yMax: Math.max(budget.max_epsilon * 1.1, ...points.map(p => p[1])), rules: [{name: "budget ε " + num(budget.max_epsilon, 2), colour: "#c0392b", y: budget.max_epsilon}]})
      : h("p", {class: "empty"}, "No release yet."));
  }
  fill("refusals", table(["time", "run", "round", "kind", "reason"], state.refusals.map(r => [when(r.time), r.run, r.round, r.kind, r.reason]), "No request refused."));
  fill("ledger-note", state.ledger.plans.length ? "Plans: " + state.ledger.plans.map(p => p.run + " (" + p.kind + ", σ " + num(p.noise_multiplier, 3) + ", " + p.planned_rounds + " releases)").join("; ") : "");
  fill("ledger", table(["#", "run", "round", "kind", "rows", "steps", "σ", "q", "ε after"],
    state.ledger.events.slice().reverse().map(e => [e.index, e.run || "–", e.round, e.kind, e.rows, e.steps, num(e.noise_multiplier, 3), num(e.sample_rate, 4), num(e.epsilon_after, 4)]),
    "No release recorded."));
  fill("runs", table(["run", "joined", "trained", "evaluated", "refused", "last round", "ended"],
    state.runs.map(r => [r.run, r.joined ? when(r.joined) : "–", r.trained, r.evaluated, r.refused, r.last_round, r.ended ? "yes" : "no"]), "No run joined yet."));
  fill("audit", audit === null ? h("p", {class: "empty"}, "This node keeps no audit log.") : auditPanel(audit));
  fill("activity", table(["time", "event", "run", "round"], state.activity.map(a => [when(a.time), a.event, a.run, a.round]), "No entry yet."));
}
{% endblock %}
"""
