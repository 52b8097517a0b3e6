# ruff: noqa: E501 - the template is HTML, one table row or paragraph to a line
"""The model report's Jinja2 template (autoescaped; rendered by :mod:`.page`).

It is Python source, not an ``.html`` file, because Flower's app bundle (what
``flwr run`` ships to the SuperLink) carries only ``.py``, ``.toml``, ``.md`` and
data-format files: a template file would be missing where the deployed ServerApp
writes the report. Styles are inline; the page has no script and no link out.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="fedcredit">
<title>Model report: {{ c.title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: #1c2833; background: #fff; margin: 0; line-height: 1.45; font-size: 14px; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header { border-bottom: 3px solid #2471a3; padding-bottom: 10px; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 30px 0 6px; padding-top: 6px; border-top: 1px solid #d5dbdb; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #566573; margin: 0; }
.note { color: #566573; margin: 2px 0 10px; max-width: 900px; }
.warning { color: #922b21; font-weight: bold; margin: 2px 0 10px; max-width: 900px; }
nav { margin: 10px 0 0; font-size: 13px; }
nav a { color: #2471a3; margin-right: 14px; text-decoration: none; white-space: nowrap; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.tile { border: 1px solid #d5dbdb; border-radius: 6px; padding: 8px 14px; min-width: 96px; }
.tile .label { color: #566573; font-size: 12px; }
.tile .value { font-size: 20px; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 14px; align-items: start; }
.pair { display: flex; flex-wrap: wrap; gap: 14px 28px; align-items: flex-start; }
.pair > figure { flex: 0 1 380px; }
figure { margin: 0; border: 1px solid #e5e8e8; border-radius: 6px; padding: 6px; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: #566573; font-size: 12px; padding: 2px 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e8e8; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f4f6f6; font-weight: 600; white-space: nowrap; }
td.n, td.nowrap { white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fbfcfc; }
.wide { overflow-x: auto; }
.trained { background: #d5f5e3; } .refused { background: #fdebd0; }
.dropped { background: #e5e8e8; } .aborted { background: #fadbd8; } .absent { color: #aab7b8; }
.flag { color: #c0392b; font-weight: 600; }
code { font-size: 12px; white-space: nowrap; }
code.hash { white-space: normal; word-break: break-all; }
details { margin: 4px 0; } summary { cursor: pointer; }
@media print { nav { display: none; } h2 { break-after: avoid; } figure { break-inside: avoid; } }
</style>
</head>
<body>
<main>
<header>
<h1>Model report: {{ c.title }}</h1>
<p class="meta">
{%- if c.schema_name %}schema <b>{{ c.schema_name }}</b>{% endif %}
{%- if c.status %} · status <b>{{ c.status }}</b>{% endif %}
{%- if c.rounds %} · {{ c.rounds | length }} round{{ "s" if c.rounds | length != 1 }}{% endif %}
{%- if c.boosting %} · {{ c.boosting.trees | length }} tree{{ "s" if c.boosting.trees | length != 1 }}{% endif %}
{%- if c.participation %} · {{ c.participation.banks | length }} banks{% elif c.boosting %} · {{ c.boosting.banks | length }} banks{% endif %}
{%- if c.wall_seconds is not none %} · {{ c.wall_seconds | num(1) }} s{% endif %}
{%- if c.model_card and c.model_card.created %} · model written {{ c.model_card.created }}{% endif %}
</p>
<nav>{% for section in sections %}<a href="#{{ section.anchor }}">{{ section.title }}</a>{% endfor %}</nav>
</header>
{% if "summary" in present and c.final is none %}
<section id="summary">
<h2>Final test metrics</h2>
<p class="flag">Missing: {{ c.final_missing }}.</p>
<p class="note">The run kept its model and wrote every other output; no other round's metrics stand in for the kept model's, and the calibration and fairness sections, which come with the same evaluation, are left out.</p>
</section>
{% elif "summary" in present %}
{% set f = c.final.metrics %}
<section id="summary">
<h2>Final test metrics</h2>
{% if c.boosting %}
<p class="note">Pooled over the held-out customers of {{ c.boosting.final_banks if c.boosting.final_banks is not none else "the" }} of the {{ c.boosting.banks | length }} banks, the finished ensemble of {{ c.boosting.trees | length }} trees.
{% else %}
<p class="note">Pooled over every bank's held-out customers{% if c.final.server_round %}, model of round {{ c.final.server_round }}{% endif %}.
{% endif %}
Computed by the coordinator from the banks' summed score histograms and loss sums: no score left a bank.</p>
<div class="tiles">
{% for label, value in [("AUC", f.auc | num(4)), ("KS", f.ks | num(4)), ("Gini", f.gini | num(4)),
  ("Brier", f.brier | num(4)), ("log loss", f.log_loss | num(4)), ("accuracy at 0.5", f.accuracy | num(4)),
  ("best F1", f.f1 | num(4)), ("F1 cut-off", f.f1_threshold | num(4)), ("rows scored", f.n_rows | count),
  ("default rate", f.default_rate | pct)] %}
<div class="tile"><div class="label">{{ label }}</div><div class="value">{{ value }}</div></div>
{% endfor %}
</div>
</section>
{% endif %}
{% if "performance" in present %}
<section id="performance">
<h2>Discrimination: ROC, KS and score distribution</h2>
<p class="note">From the final evaluation's summed score histograms ({% if c.boosting %}the ensemble of {{ c.scores.server_round }} trees{% else %}round {{ c.scores.server_round }}{% endif %},
{{ c.scores.defaulters | length }} equal-width bins per class on [0, 1]); thresholds are bin edges.</p>
<div class="charts">
<figure><img src="{{ fig.roc }}" alt="ROC curve"><figcaption>ROC: defaulters flagged against non-defaulters flagged, as the cut-off falls.</figcaption></figure>
<figure><img src="{{ fig.ks }}" alt="KS curves"><figcaption>KS: the widest gap between the two classes' cumulative score distributions.</figcaption></figure>
<figure><img src="{{ fig.distribution }}" alt="Score distribution by outcome"><figcaption>Each class's share of rows per score band.</figcaption></figure>
</div>
</section>
{% endif %}
{% if "rounds" in present %}
<section id="rounds">
<h2>Rounds</h2>
<p class="note">Each round's global model, scored on the pooled {{ "validation parts" if c.rounds_scored_on == "validation" else "held-out customers" }}. <i>not evaluated</i>: the run's
cadence skipped it or its evaluation was lost; <i>aborted</i>: too few banks, the model stayed unchanged.</p>
<div class="pair">
{% if fig.rounds %}<figure><img src="{{ fig.rounds }}" alt="AUC and KS per round"><figcaption>{{ "Validation" if c.rounds_scored_on == "validation" else "Test" }} AUC and KS of each scored round's model.</figcaption></figure>{% endif %}
<div class="wide"><table>
<thead><tr><th class="n">round</th><th>status</th><th class="n">AUC</th><th class="n">KS</th><th class="n">{{ "validation" if c.rounds_scored_on == "validation" else "test" }} loss</th>
<th class="n">train loss</th><th class="n">banks trained</th><th class="n">max ε spent</th><th class="n">seconds</th></tr></thead>
<tbody>
{% for r in c.rounds %}
<tr><td class="n">{{ r.server_round }}</td>
<td{% if r.status != "scored" %} class="{{ 'aborted' if r.aborted else 'absent' }}"{% endif %}>{{ r.status }}{% if r.aborted %}: {{ r.aborted }}{% endif %}</td>
<td class="n">{{ r.auc | num(4) }}</td><td class="n">{{ r.ks | num(4) }}</td><td class="n">{{ r.loss | num(4) }}</td>
<td class="n">{{ r.train_loss | num(4) }}</td><td class="n">{{ r.banks | length }}</td>
<td class="n">{{ r.max_epsilon_spent | num(3) }}</td><td class="n">{{ r.seconds | num(1) }}</td></tr>
{% endfor %}
</tbody></table></div>
</div>
</section>
{% endif %}
{% if "trees" in present %}
{% set b = c.boosting %}
<section id="trees">
<h2>Trees</h2>
<p class="note">One exchange per tree level: each of the {{ b.banks | length }} banks ({{ b.banks | join(", ") }}; {{ b.training_rows | count }} training rows)
answered every level with its gradient histograms of the level's open nodes, summed {{ "by secure aggregation" if c.secure_aggregation else "in the clear" }};
the coordinator chose the splits from the sum. A tree's leaves are its splits plus one. Base score {{ b.base_score | num(4) }};
{{ b.trees | sum(attribute="levels") }} levels in {{ b.seconds | num(1) }} s.</p>
<div class="pair">
{% if fig.trees %}<figure><img src="{{ fig.trees }}" alt="Seconds per tree"><figcaption>Each tree's seconds (its levels' summed exchange and split choice), stacked by level.</figcaption></figure>{% endif %}
<details{% if b.trees | length <= 20 %} open{% endif %}><summary>{{ b.trees | length }} trees</summary>
<div class="wide"><table>
<thead><tr><th class="n">tree</th><th class="n">levels</th><th class="n">splits</th><th class="n">leaves</th><th class="n">seconds</th></tr></thead>
<tbody>
{% for t in b.trees %}
<tr><td class="n">{{ t.tree }}</td><td class="n">{{ t.levels }}</td><td class="n">{{ t.splits }}</td><td class="n">{{ t.leaves }}</td><td class="n">{{ t.seconds | num(2) }}</td></tr>
{% endfor %}
</tbody></table></div>
</details>
</div>
</section>
{% endif %}
{% if "importance" in present %}
<section id="importance">
<h2>Feature importance</h2>
<p class="note">Over every split of the ensemble (<code>model/model_card.json</code>, <code>"feature_importance"</code>), most total gain first:
how many splits use the feature, their total gain (the training loss they removed, XGBoost's <i>total_gain</i>) and total cover
(the Hessian sum of the rows they divided, XGBoost's <i>total_cover</i>). The coordinator has these from the summed histograms it chose the splits from: nothing more is released.
{%- if c.privacy and c.privacy.banks %} The banks had privacy budgets: those sums, hence the gains and covers, carry their noise.{% endif %}</p>
<div class="pair">
{% if fig.importance %}<figure><img src="{{ fig.importance }}" alt="Feature importance by total gain"><figcaption>Total gain of each feature the trees split on (at most 25: those with the most).</figcaption></figure>{% endif %}
<div class="wide"><table>
<thead><tr><th>feature</th><th class="n">splits</th><th class="n">total gain</th><th class="n">share of gain</th><th class="n">total cover</th></tr></thead>
<tbody>
{% for f in c.importance %}
<tr{% if not f.splits %} class="absent"{% endif %}><td>{{ f.feature }}</td><td class="n">{{ f.splits }}</td><td class="n">{{ f.total_gain | num(4) }}</td>
<td class="n">{{ f.gain_share | pct }}</td><td class="n">{{ f.total_cover | num(2) }}</td></tr>
{% endfor %}
</tbody></table></div>
</div>
</section>
{% endif %}
{% if "participation" in present %}
{% set p = c.participation %}
<section id="participation">
<h2>Participation per bank</h2>
<p class="note">Which banks' updates are in each round's model: <span class="trained">trained</span>,
<span class="refused">refused</span> (privacy budget), <span class="dropped">dropped</span> (lost, timed out or dropped
out of secure aggregation), <span class="aborted">aborted</span> (the round was).</p>
<div class="wide"><table>
<thead><tr><th>bank</th>{% for n in p.rounds %}<th class="n">{{ n }}</th>{% endfor %}</tr></thead>
<tbody>
{% for bank in p.banks %}
<tr><td>{{ bank }}</td>{% for part in p.cells[loop.index0] %}<td class="{{ part }}">{{ part }}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table></div>
</section>
{% endif %}
{% if "privacy" in present %}
<section id="privacy">
<h2>Privacy spend per bank</h2>
{% if c.privacy.noise %}
<p class="warning">noise: {{ c.privacy.noise }}. Every DP draw of this simulation can be recomputed from its seed:
the ε below is what the noise would give if it were unpredictable; this model is not private.</p>
{% endif %}
{% if c.privacy.banks %}
<p class="note">From the ledger summary each bank last reported (<code>ledgers/&lt;bank&gt;.json</code>; re-check with
<code>fedcredit privacy verify</code>). ε is each bank's total spend over every release of the run.</p>
<table>
<thead><tr><th>bank</th><th class="n">ε spent</th><th class="n">ε maximum</th><th class="n">δ</th><th>accountant</th>
<th class="n">releases</th><th>signed</th></tr></thead>
<tbody>
{% for b in c.privacy.banks %}
<tr><td>{{ b.bank }}</td><td class="n">{{ b.epsilon | num(4) }}</td><td class="n">{{ b.max_epsilon | num(4) }}</td>
<td class="n">{{ b.delta | sci }}</td><td>{{ b.accountant }}</td><td class="n">{{ b.releases }}</td>
<td>{{ "yes" if b.signed else "no" }}</td></tr>
{% endfor %}
</tbody></table>
{% else %}
<p class="note">No bank trained under a privacy budget: no differential privacy in this run.</p>
{% endif %}
{% if c.privacy.refusals %}
<h3>Refusals</h3>
<ul>{% for line in c.privacy.refusals %}<li>{{ line }}</li>{% endfor %}</ul>
{% endif %}
</section>
{% endif %}
{% if "calibration" in present %}
{% set k = c.calibration %}
<section id="calibration">
<h2>Calibration</h2>
<p class="note">Predicted against observed default rates per score bin, from securely summed per-bin counts.
Expected calibration error <b>{{ k.ece | num(4) }}</b>{% if k.brier is not none %}, Brier score <b>{{ k.brier | num(4) }}</b>{% endif %}
{%- if k.n_rows is not none %}, {{ k.n_rows | count }} rows{% endif %}.</p>
<div class="pair"><figure><img src="{{ fig.calibration }}" alt="Reliability diagram"></figure>
<div class="wide"><table>
<thead><tr><th>score bin</th><th class="n">rows</th><th class="n">mean predicted</th><th class="n">observed rate</th></tr></thead>
<tbody>
{% for b in k.bins %}
<tr><td class="nowrap">[{{ b.lower | num(2) }}, {{ b.upper | num(2) }})</td><td class="n">{{ b.count | count }}</td>
<td class="n">{{ b.mean_predicted | num(4) }}</td><td class="n">{{ b.observed_rate | num(4) }}</td></tr>
{% endfor %}
</tbody></table></div></div>
</section>
{% endif %}
{% if "fairness" in present %}
<section id="fairness">
<h2>Fairness by protected group</h2>
<p class="note">At the run's cut-off, from securely summed confusion counts per group. An adverse impact ratio
below 0.8 (the four-fifths rule) is flagged.</p>
{% for col in c.fairness %}
<h3>{{ col.column }}</h3>
<table>
<thead><tr><th>group</th><th class="n">rows</th><th class="n">approval rate</th><th class="n">TPR</th><th class="n">FPR</th><th class="n">AUC</th></tr></thead>
<tbody>
{% for g in col.groups %}
<tr><td>{{ g.group }}</td><td class="n">{{ g.n | count }}</td><td class="n">{{ g.approval_rate | num(4) }}</td>
<td class="n">{{ g.tpr | num(4) }}</td><td class="n">{{ g.fpr | num(4) }}</td><td class="n">{{ g.auc | num(4) }}</td></tr>
{% endfor %}
</tbody></table>
<table>
<tbody>
<tr><th>adverse impact ratio</th><td class="n{{ ' flag' if col.adverse_impact_flag }}">{{ col.adverse_impact_ratio | num(4) }}{% if col.adverse_impact_flag %} (below 0.8){% endif %}</td></tr>
<tr><th>demographic parity difference</th><td class="n">{{ col.demographic_parity_difference | num(4) }}</td></tr>
<tr><th>equal opportunity difference</th><td class="n">{{ col.equal_opportunity_difference | num(4) }}</td></tr>
<tr><th>equalised odds difference</th><td class="n">{{ col.equalized_odds_difference | num(4) }}</td></tr>
</tbody></table>
{% endfor %}
</section>
{% endif %}
{% if "scorecard" in present %}
<section id="scorecard">
<h2>Scorecard</h2>
<p class="note">Points per bin (<code>model/scorecard.csv</code>): an applicant's score is the sum of the points of
their bins; higher is safer.</p>
<div class="wide"><table>
<thead><tr><th>feature</th><th>bin</th><th class="n">WoE</th><th class="n">coefficient</th><th class="n">points</th></tr></thead>
<tbody>
{% for s in c.scorecard %}
<tr><td>{{ s.feature }}</td><td>{{ s.label }}</td><td class="n">{{ s.woe | num(4) }}</td>
<td class="n">{{ s.coefficient | num(4) }}</td><td class="n">{{ s.points }}</td></tr>
{% endfor %}
</tbody></table></div>
</section>
{% endif %}
{% if "woe-iv" in present %}
<section id="woe-iv">
<h2>Weight of evidence and information value</h2>
<p class="note">Per feature and bin, from securely summed event and non-event counts; most informative feature first.
IV below 0.02: not predictive; 0.02 to 0.1 weak; 0.1 to 0.3 medium; 0.3 to 0.5 strong; above: check for leakage.</p>
{% if fig.information_value %}<div class="pair"><figure><img src="{{ fig.information_value }}" alt="Information value per feature"></figure></div>{% endif %}
{% for w in c.woe_iv %}
<details><summary><b>{{ w.feature }}</b>: IV {{ w.iv | num(4) }} ({{ w.iv | iv_strength }})</summary>
<table>
<thead><tr><th>bin</th><th>kind</th><th class="n">rows</th><th class="n">events</th><th class="n">non-events</th>
<th class="n">event rate</th><th class="n">WoE</th><th class="n">IV</th></tr></thead>
<tbody>
{% for b in w.bins %}
<tr><td>{{ b.label }}</td><td>{{ b.kind }}</td><td class="n">{{ b.count | count }}</td><td class="n">{{ b.events | count }}</td>
<td class="n">{{ b.non_events | count }}</td><td class="n">{{ b.event_rate | num(4) }}</td><td class="n">{{ b.woe | num(4) }}</td>
<td class="n">{{ b.iv | num(4) }}</td></tr>
{% endfor %}
</tbody></table>
</details>
{% endfor %}
</section>
{% endif %}
{% if "configuration" in present %}
<section id="configuration">
<h2>Run configuration</h2>
{% if c.boosting %}
<p class="note">The boosting hyperparameters (<code>metrics.json</code>, <code>"params"</code>).</p>
{% else %}
<p class="note">As the run was started (<code>metrics.json</code>, <code>"config"</code>; Flower's run-config keys).</p>
{% endif %}
<div class="pair">
{% if c.config %}<table><thead><tr><th>setting</th><th>value</th></tr></thead><tbody>
{% for key, value in c.config %}<tr><td><code>{{ key }}</code></td><td>{{ value }}</td></tr>{% endfor %}
</tbody></table>{% endif %}
{% if c.secure_aggregation %}<div><h3>Secure aggregation</h3><table><tbody>
{% for key, value in c.secure_aggregation %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}
</tbody></table></div>{% endif %}
</div>
</section>
{% endif %}
{% if "model-card" in present %}
{% set m = c.model_card %}
<section id="model-card">
<h2>Model card</h2>
{% if m.model_kind == "gbdt" %}
<p class="note"><code>model/{{ m.weights_file }}</code> is the ensemble in XGBoost's JSON format; <code>model_card.json</code> says how to build
its input matrix from a bank's CSV (one float32 column per feature) and <code>encoder.json</code> holds the run's bins.
{% if m.package_digest %}<code>manifest.json</code>, signed with the coordinator's audit key, holds every file's hash.{% else %}The folder has no signed manifest.{% endif %}</p>
{% else %}
<p class="note"><code>model/</code> is a signed package: <code>model_card.json</code> holds what scoring needs
(schema, encoder, architecture, the weights' hash) and <code>manifest.json</code>, signed with the coordinator's audit key,
every file's hash. A bank checks it with <code>fedcredit model verify</code> before it scores with it.</p>
{% endif %}
<table><tbody>
<tr><th>format</th><td>{{ m.card_format }}</td></tr>
{% if m.created %}<tr><th>written</th><td>{{ m.created }}</td></tr>{% endif %}
{% if m.package_digest %}<tr><th>package digest</th><td><code class="hash">{{ m.package_digest }}</code></td></tr>
<tr><th>signed by</th><td><code class="hash">{{ m.signer_fingerprint }}</code></td></tr>{% endif %}
<tr><th>schema</th><td>{{ m.schema_name or c.schema_name or "" }} <code class="hash">{{ m.schema_sha256 }}</code></td></tr>
<tr><th>model</th><td>{{ m.model_kind }}{% if m.hidden_sizes %}, hidden layers {{ m.hidden_sizes | join(", ") }}{% endif %}{% if m.trees is not none %}, {{ m.trees }} trees{% endif %}, {{ m.n_inputs }} inputs</td></tr>
{% if m.objective %}<tr><th>objective</th><td>{{ m.objective }}</td></tr>{% endif %}
<tr><th>encoding</th><td>{{ m.encoding }} (feature statistics: {{ m.feature_stats }}){% if m.model_kind == "gbdt" %}: the bin edges are the trees' split candidates{% endif %}</td></tr>
{% for rule, text in m.matrix %}<tr><th>input {{ rule | replace("_", " ") }}</th><td>{{ text }}</td></tr>{% endfor %}
<tr><th>{{ "model file" if m.model_kind == "gbdt" else "weights" }}</th><td>{{ m.weights_file }} <code class="hash">{{ m.weights_sha256 }}</code></td></tr>
</tbody></table>
<details><summary>{{ m.features | length }} input features</summary>
<table><thead><tr><th>feature</th><th>encoding</th><th class="n">model inputs</th></tr></thead><tbody>
{% for feature in m.features %}<tr><td>{{ feature.name }}</td><td>{{ feature.encoding }}</td><td class="n">{{ feature.inputs }}</td></tr>{% endfor %}
</tbody></table>
</details>
</section>
{% endif %}
</main>
</body>
</html>
"""
