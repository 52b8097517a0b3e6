# ruff: noqa: E501, RUF001 - HTML, CSS and JavaScript, one statement to a line; Greek letters shown
"""The operator's dashboard page (extends :data:`deploy.web._page.BASE` through
:class:`deploy.web.DashboardPage`): tiles, AUC and KS per round as an SVG chart drawn
from the JSON state, and the tables of rounds, banks, refusals, the protocol's stages,
the audit log and the runs. Every value is set as text.
"""

from __future__ import annotations

from deploy.web import DashboardPage

__all__ = ["coordinator_page"]

_TEMPLATE = """\
{% extends "base.html" %}
{% block body %}
<div class="tiles" id="tiles"></div>
<h2>Rounds</h2>
<p class="note" id="run-note"></p>
<div id="chart"></div>
<div id="rounds"></div>
<h2>Banks</h2>
<p class="note">ε spent per the banks' ledgers (as the coordinator's log records it after each round) against each bank's budget.</p>
<div id="banks"></div>
<h2>Secure aggregation</h2>
<div id="secagg"></div>
<h2>Refusals</h2>
<div id="refusals"></div>
<h2>Audit log</h2>
<div id="audit"></div>
<h2>Runs</h2>
<div id="runs"></div>
{% endblock %}
{% block script %}
const STAGES = ["advertise", "train", "consistency", "unmask", "evaluate"];

function list(names) { return names && names.length ? names.join(", ") : "–"; }

function render(state) {
  const run = state.run;
  fill("source", (state.mode === "simulation" ? "simulation " : "consortium ") + (state.consortium ? state.consortium + " · " : "") + state.source);
  renderTiles(state, run);
  if (run === null) {
    fill("run-note", "No run yet.");
    ["chart", "rounds", "secagg", "refusals", "audit"].forEach(id => fill(id));
  } else {
    renderRounds(run);
    fill("secagg", secureAggregation(run));
    fill("refusals", table(["time", "round", "bank", "reason"], run.refusals.map(r => [when(r.time), r.round, r.bank, r.reason]), "No bank refused a request."));
    fill("audit", auditPanel(run.audit));
  }
  fill("banks", table(["bank", "status", "node id", "ε spent / budget", "rounds", "refusals", "dropouts"],
    state.banks.map(b => [b.name, h("span", {class: b.status === "online" || b.status === "simulated" ? "good" : (b.status === "offline" ? "bad" : "")}, b.status), b.node_id, budgetBar(b.epsilon, b.max_epsilon), b.rounds, b.refusals, b.dropouts]),
    "No bank registered yet."));
  fill("runs", table(["run", "status", "rounds", "final AUC", "submitted", "audit log", "report"],
    state.runs.map(r => [r.current ? h("strong", {}, r.name) : r.name, r.status, r.rounds_done + " / " + (r.rounds_planned ?? "?") + (r.progress_unit === "trees" ? " trees" : ""), num(r.final_auc, 4), r.submitted ? when(r.submitted) : "–",
      r.audit === null ? "–" : h("span", {class: r.audit ? "good" : "bad"}, r.audit ? "verified" : "BROKEN"), r.report ? h("a", {href: r.report}, "report.html") : "–"]),
    "No run launched yet."));
}

function renderTiles(state, run) {
  const online = state.banks.filter(b => b.status === "online" || b.status === "simulated").length;
  const registered = state.banks.filter(b => b.status !== "removed" && b.status !== "in run only").length;
  const last = run ? run.rounds.filter(r => r.auc !== null).slice(-1)[0] : undefined;
  const audit = run ? run.audit : null;
  fill("tiles",
    tile("run", run ? run.name : "–"),
    tile("status", run ? run.status : "–", run && run.status === "failed" ? "bad" : ""),
    tile("rounds", run ? run.completed_rounds + " / " + (run.planned_rounds ?? "?") : "–"),
    tile("last AUC", last ? num(last.auc, 4) : "–"),
    tile("last KS", last ? num(last.ks, 4) : "–"),
    tile(state.mode === "simulation" ? "banks simulated" : "banks online / registered", state.mode === "simulation" ? String(registered) : online + " / " + registered),
    tile("audit log", audit === null || !audit.present ? "–" : (audit.verified ? "verified" : "BROKEN"), audit && audit.present ? (audit.verified ? "good" : "bad") : ""));
}

function renderRounds(run) {
  const started = run.started ? "started " + when(run.started) : "";
  const end = run.ended ? " · ended " + when(run.ended.time) + (run.ended.reason ? " (" + run.ended.reason + ")" : "") : "";
  fill("run-note", "Run " + run.name + " · " + started + end + " · secure aggregation " + (run.secure_aggregation ? "on" : "off") + (run.resumed ? " · resumed " + run.resumed + "×" : ""));
  const scored = run.rounds.filter(r => r.auc !== null);
  const series = [{name: "AUC", colour: "#1f77b4", points: scored.map(r => [r.round, r.auc])}];
  const withKs = run.rounds.filter(r => r.ks !== null);
  if (withKs.length) series.push({name: "KS", colour: "#ff7f0e", points: withKs.map(r => [r.round, r.ks])});
  fill("chart", scored.length ? lineChart(series, {label: "AUC and KS per round", xLabel: "round", xMax: run.planned_rounds || 1, yMin: 0, yMax: 1}) : h("p", {class: "empty"}, "No round scored yet."));
  fill("rounds", table(["round", "AUC", "KS", "banks", "refused", "dropped", "aborted", "max ε spent", "logged"],
    run.rounds.map(r => [r.round, num(r.auc, 4), num(r.ks, 4), r.banks.length, list(r.refused), list(r.dropped), r.aborted || "–", num(r.max_epsilon, 3), when(r.time)]),
    "No round completed yet."));
}

function secureAggregation(run) {
  if (run.secure_aggregation === false) return h("p", {class: "empty"}, "Off for this run: updates are summed in the clear.");
  const exchange = run.exchange;
  if (exchange === null) return h("p", {class: "empty"}, "No exchange yet.");
  const steps = h("ul", {class: "steps"}, ...STAGES.map(stage => h("li", {class: stage === exchange.stage ? "now" : (exchange.stages.includes(stage) ? "done" : "")}, stage)));
  return h("div", {}, h("p", {class: "note"}, "Exchange round " + exchange.round + " (0: set-up; past the last training round: the final evaluation): last exchange completed " + when(exchange.time)), steps,
    pairs([["stage", exchange.stage], ["replies", exchange.replied], ["no reply", list(exchange.missing)], ["errors", list(exchange.errors)], ["malformed heads", list(exchange.malformed)]]));
}
{% endblock %}
"""


def coordinator_page(title: str) -> DashboardPage:
    """The operator's dashboard page, titled ``title``."""
    return DashboardPage(title=title, template=_TEMPLATE)
