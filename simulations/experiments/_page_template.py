# ruff: noqa: E501 - the template is HTML, one table row or paragraph to a line
"""The experiment summary's Jinja2 template (autoescaped; rendered by :mod:`.page`).

Styles are inline and the plots are ``data:`` URIs: the page has no script and no
link out, so it opens from disk (or an e-mail attachment) with no request.
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
<title>Experiment: {{ s.title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: #1c2833; background: #fff; margin: 0; line-height: 1.45; font-size: 14px; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header { border-bottom: 3px solid #2471a3; padding-bottom: 10px; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 30px 0 6px; padding-top: 6px; border-top: 1px solid #d5dbdb; }
.meta { color: #566573; margin: 0; }
.note { color: #566573; margin: 2px 0 10px; max-width: 900px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 14px; align-items: start; }
figure { margin: 0; border: 1px solid #e5e8e8; border-radius: 6px; padding: 6px; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: #566573; font-size: 12px; padding: 2px 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e8e8; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f4f6f6; font-weight: 600; white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfc; }
.wide { overflow-x: auto; }
.failed { color: #c0392b; font-weight: 600; } .absent { color: #aab7b8; }
code { font-size: 12px; }
</style>
</head>
<body>
<main>
<header>
<h1>Experiment: {{ s.title }}</h1>
<p class="meta">{{ s.rows | length }} run{{ "s" if s.rows | length != 1 }} · {{ s.finished }} finished
{%- if s.failed %} · <span class="failed">{{ s.failed }} failed</span>{% endif %}
{%- if s.not_run %} · {{ s.not_run }} not run{% endif %}
{%- if s.wall_seconds %} · {{ s.wall_seconds }} of runs{% endif %}
{%- if s.peak_rss_mb %} · peak {{ s.peak_rss_mb }} a run{% endif %}</p>
<p class="meta">Varied: {% for option in s.varied %}<code>{{ option }}</code>{{ ", " if not loop.last }}{% else %}nothing{% endfor %}.</p>
</header>
<section id="plots">
<h2>AUC against the varied options</h2>
{% if s.plots %}
<p class="note">The kept model's exact AUC on the banks' pooled held-out rows: the mean over the seeds, error bars one sample standard deviation (0 with one seed); one line per combination of the other varied options that take more than one value; a dotted line is the option's <code>none</code> (for <code>epsilon</code>: the run without differential privacy). Finished runs only.</p>
<div class="charts">
{% for plot in s.plots %}
<figure><img src="{{ plot.uri }}" alt="AUC against {{ plot.option }}"><figcaption>AUC against <code>{{ plot.option }}</code> ({{ plot.file }}).</figcaption></figure>
{% endfor %}
</div>
{% else %}
<p class="note">No plot: the grid varies no numeric option but the seed (or each takes one value).</p>
{% endif %}
</section>
<section id="runs">
<h2>Runs</h2>
<p class="note">One row per run, as in <code>results.csv</code>: <i>auc</i> and <i>ks</i> exact on the pooled held-out rows, <i>released</i> the coordinator's from the banks' (under DP, noisy) releases; the run's folder is <code>runs/&lt;run&gt;/</code>.</p>
<div class="wide"><table>
<thead><tr>{% for column in s.columns %}<th{% if column in s.numeric %} class="n"{% endif %}>{{ column }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in s.rows %}
<tr>{% for cell in row %}<td{% if cell.kind %} class="{{ cell.kind }}"{% endif %}>{% if cell.kind == "hash" %}<code>{{ cell.text }}</code>{% else %}{{ cell.text }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table></div>
</section>
</main>
</body>
</html>
"""
