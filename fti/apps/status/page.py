"""The platform page's HTML: one Jinja2 template, autoescaped, with relative links only (the
page works under any ``[api] base_url`` sub-path) and no external asset."""

from __future__ import annotations

import functools
from typing import Any

CHART_W, CHART_H, PAD = 420, 140, 28

# The template lives here rather than in a package-data file so the page ships with the code
# wherever the package is installed (images, Bentos) without packaging configuration.
TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FTI platform</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 12px 18px; color: #1b1f24; }
 h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 18px 0 6px; }
 h3 { font-size: 14px; margin: 10px 0 4px; }
 .meta { color: #57606a; font-size: 12px; }
 table { border-collapse: collapse; margin: 4px 0 8px; }
 th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: left; vertical-align: top; }
 th { background: #f6f8fa; font-weight: 600; }
 td.num { text-align: right; font-variant-numeric: tabular-nums; }
 .ok, .fresh, .success, .ready, .promoted { background: #dafbe1; }
 .bad, .stale, .failed, .not-ready, .drifted, .rejected { background: #ffd8d3; }
 .running, .queued, .up_for_retry, .warned { background: #fff4c5; }
 .unavailable { background: #ffd8d3; padding: 4px 8px; border-left: 4px solid #cf222e; }
 ul.failed, ul.warned { margin: 2px 0; padding-left: 18px; background: none; }
 section { border-top: 1px solid #d0d7de; }
 .champion { font-weight: 600; }
 .columns { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; }
</style>
</head>
<body>
<h1>FTI platform</h1>
<div class="meta">read live from the platform's stores at {{ generated_at }} in {{ seconds }} s
 &middot; <a href="api/status">JSON</a></div>

{% macro unavailable(s) %}<p class="unavailable" data-unavailable="{{ s.reason }}">unavailable: {{ s.reason }}</p>{% endmacro %}

<section id="pipelines"><h2>Pipelines</h2>
{% set s = sections.pipelines %}{% if not s.available %}{{ unavailable(s) }}{% else %}
{% for p in s.data.pipelines %}
<h3>{{ p.dag_id }}</h3>
{% if p.runs %}<table><tr><th>run</th><th>state</th><th>type</th><th>logical date</th><th>started</th><th>ended</th></tr>
{% for r in p.runs %}<tr data-dag="{{ p.dag_id }}" data-run="{{ r.run_id }}">
<td><a href="../{{ r.ui_path }}" target="_top">{{ r.run_id }}</a></td>
<td class="{{ r.state }}">{{ r.state }}</td><td>{{ r.run_type }}</td>
<td>{{ r.logical_date or "" }}</td><td>{{ r.start_date or "" }}</td><td>{{ r.end_date or "" }}</td></tr>
{% endfor %}</table>{% else %}<p>no runs yet</p>{% endif %}
{% endfor %}{% endif %}
</section>

<section id="feature-views"><h2>Feature views</h2>
{% set s = sections.feature_views %}{% if not s.available %}{{ unavailable(s) }}{% else %}
<div class="meta">now = {{ s.data.now or "n/a" }} ({{ s.data.clock }}); freshness limit {{ s.data.freshness_limit_hours }} h</div>
<table><tr><th>view</th><th>last materialized interval</th><th>age (h)</th><th>freshness</th><th>latest partition</th><th>rows</th></tr>
{% for v in s.data.views %}<tr data-view="{{ v.name }}">
<td>{{ v.name }}</td>
<td>{% if v.last_interval %}{{ v.last_interval[0] }} &rarr; {{ v.last_interval[1] }}{% else %}never{% endif %}</td>
<td class="num">{{ v.age_hours if v.age_hours is not none else "" }}</td>
<td class="freshness {{ v.freshness if v.freshness in ('fresh', 'stale') else '' }}">{{ v.freshness }}</td>
<td>{{ v.latest_partition or "none" }}</td>
<td class="num rows">{{ v.latest_partition_rows if v.latest_partition_rows is not none else "" }}</td></tr>
{% endfor %}</table>{% endif %}
<h3>Online store</h3>
{% set s = sections.online_store %}{% if not s.available %}{{ unavailable(s) }}{% else %}
<p class="ok">{{ s.data.type }} answers ({{ s.data.where }})</p>
<table><tr><th>view</th><th>entities online</th></tr>
{% for name, n in s.data.entities.items() %}<tr data-online-view="{{ name }}"><td>{{ name }}</td><td class="num">{{ n }}</td></tr>{% endfor %}
</table>{% endif %}
</section>

<section id="validations"><h2>Validations</h2>
{% set s = sections.validations %}{% if not s.available %}{{ unavailable(s) }}{% else %}
<table><tr><th>boundary</th><th>table</th><th>day</th><th>result</th><th>failed expectations</th><th>report</th></tr>
{% for b in s.data.boundaries %}
{% if not b.results %}<tr data-boundary="{{ b.boundary }}"><td>{{ b.boundary }}</td><td colspan="5">no validation yet</td></tr>{% endif %}
{% for r in b.results %}<tr data-boundary="{{ b.boundary }}" data-table="{{ r.name }}">
<td>{{ b.boundary }}</td><td>{{ r.name }}</td><td>{{ r.day }}</td>
<td class="result {{ ('warned' if r.warned else 'success') if r.success else 'failed' }}">{{ ("passed with warnings" if r.warned else "passed") if r.success else "failed" }} ({{ r.evaluated }} expectations, {{ r.rows }} rows)</td>
<td>{% if r.failed %}<ul class="failed">{% for f in r.failed %}<li>{{ f }}</li>{% endfor %}</ul>{% endif %}{% if r.warned %}<ul class="warned">{% for f in r.warned %}<li>{{ f }}</li>{% endfor %}</ul>{% endif %}</td>
<td>{% if r.report %}<a href="reports/{{ r.report }}">report</a>{% endif %}</td></tr>
{% endfor %}{% endfor %}</table>
{% for q in s.data.quarantined %}<div class="failed" data-quarantined="{{ q.day }}">quarantined: {{ q.day }} ({{ q.boundary }}, run {{ q.run }}): {{ q.reason }}; the days after it wait until it is re-delivered: <code>{{ q.redeliver }}</code></div>{% endfor %}{% endif %}
</section>

<section id="models"><h2>Models</h2>
{% set s = sections.models %}{% if not s.available %}{{ unavailable(s) }}{% else %}
{% if s.note %}<p class="meta" data-stale="{{ s.stale_s }}">{{ s.note }}</p>{% endif %}
<div class="meta">registered model {{ s.data.name }}; champion: <span id="champion">{{ ("v" ~ s.data.champion) if s.data.champion else "none" }}</span>; shadow challenger: <span id="challenger">{{ ("v" ~ s.data.challenger) if s.data.challenger else "none" }}</span>{% if s.data.note %}; {{ s.data.note }}{% endif %}</div>
{% if s.data.versions %}<table><tr><th>version</th><th>registered</th><th>gate</th><th>ROC AUC</th><th>log loss</th><th>calibration error</th><th>baseline ROC AUC</th><th>champion's ROC AUC then</th><th>data interval</th><th>reasons</th></tr>
{% for v in s.data.versions %}<tr data-version="{{ v.version }}" class="{{ 'champion' if v.champion else '' }}">
<td>v{{ v.version }}{% if v.champion %} (champion){% endif %}{% if v.challenger %} (challenger){% endif %}</td><td>{{ v.created or "" }}</td>
<td class="{{ v.decision or '' }}">{{ v.decision or "no decision" }}</td>
{% set c = v.candidate or {} %}
<td class="num">{{ c.roc_auc if c.roc_auc is not none else "" }}</td>
<td class="num">{{ c.log_loss if c.log_loss is not none else "" }}</td>
<td class="num">{{ c.calibration_error if c.calibration_error is not none else "" }}</td>
<td class="num">{{ v.baseline.roc_auc if v.baseline and v.baseline.roc_auc is not none else "" }}</td>
<td class="num">{{ v.champion_then.roc_auc if v.champion_then and v.champion_then.roc_auc is not none else "" }}</td>
<td>{{ v.data_interval or "" }}</td><td>{{ v.reasons or "" }}</td></tr>
{% endfor %}</table>{% endif %}{% endif %}
<h3>Live history</h3>
{% set s = sections.live %}{% if not s.available %}{{ unavailable(s) }}{% else %}
{% if s.data.history %}<table><tr><th>model version</th><th>Bento</th><th>from</th><th>until</th></tr>
{% for e in s.data.history %}<tr data-live="{{ e.model_version }}"><td>v{{ e.model_version }}</td><td>{{ e.bento }}</td><td>{{ e.from }}</td><td>{{ e.until or "now (live)" }}</td></tr>{% endfor %}
</table>{% else %}<p>no model has been rolled out yet</p>{% endif %}{% endif %}
</section>

<section id="service"><h2>Service</h2>
{% set s = sections.service %}{% if not s.available %}{{ unavailable(s) }}{% else %}{% set d = s.data %}
<table>
<tr><th>url</th><td>{{ d.url }}</td></tr>
<tr><th>readiness</th><td id="readiness" class="{{ 'ready' if d.ready else 'not-ready' }}">{{ "ready" if d.ready else "not ready: " ~ (d.not_ready_reason or "") }}</td></tr>
<tr><th>model version</th><td id="served-version">{{ ("v" ~ d.model_version) if d.model_version else "unknown" }}{% if d.model_version_source %} <span class="meta">(from {{ d.model_version_source }})</span>{% endif %}</td></tr>
{% if d.metrics_error %}<tr><th>metrics</th><td class="unavailable">unavailable: {{ d.metrics_error }}</td></tr>{% else %}
<tr><th>/predict requests</th><td id="requests" class="num">{{ d.requests }}{% for k, n in d.requests_by_status.items() %} <span class="meta">{{ k }}: {{ n }}</span>{% endfor %}</td></tr>
<tr><th>request rate</th><td class="num">{% if d.rate_per_s is not none %}{{ d.rate_per_s }}/s <span class="meta">({{ d.rate_over }})</span>{% else %}n/a (after the next refresh){% endif %}</td></tr>
<tr><th>latency</th><td class="num">mean {{ d.latency_mean_ms if d.latency_mean_ms is not none else "n/a" }} ms &middot; p50 {{ d.latency_p50_ms if d.latency_p50_ms is not none else "n/a" }} ms &middot; p95 {{ d.latency_p95_ms if d.latency_p95_ms is not none else "n/a" }} ms</td></tr>
{% endif %}</table>{% endif %}
</section>

<section id="monitoring"><h2>Monitoring</h2>
{% set s = sections.monitoring %}{% if not s.available %}{{ unavailable(s) }}{% else %}{% set d = s.data %}
{% if not d.latest %}<p>no monitoring report yet (PSI threshold {{ d.threshold }})</p>{% else %}
<div class="meta">drift on {{ d.latest.day }} (model v{{ d.latest.model_version }}), PSI threshold {{ d.threshold }} &middot; <a href="reports/{{ d.latest.report }}">report</a></div>
<div class="columns"><div>
<table><tr><th>feature</th><th>PSI</th><th>threshold</th><th></th></tr>
{% for f in d.latest.features %}<tr data-feature="{{ f.feature }}"><td>{{ f.feature }}</td><td class="num">{{ f.psi }}</td><td class="num">{{ d.threshold }}</td>
<td class="{{ 'drifted' if f.drifted else 'ok' }}">{{ "drifted" if f.drifted else ("ignored" if f.ignored else "stable") }}</td></tr>{% endfor %}
<tr><td>prediction (probability)</td><td class="num">{{ d.latest.prediction_psi }}</td><td class="num">{{ d.threshold }}</td><td class="{{ 'drifted' if d.latest.prediction_drifted else 'ok' }}">{{ "drifted" if d.latest.prediction_drifted else "stable" }}</td></tr>
</table></div>
<div><h3>Realised accuracy by day</h3>
{{ chart }}
<table><tr><th>day</th><th>model</th><th>promised ROC AUC</th><th>ROC AUC</th><th>calibration error</th><th>labelled flights</th></tr>
{% for p in d.performance %}<tr data-day="{{ p.day }}"><td>{{ p.day }}</td><td>v{{ p.model_version }}</td>
<td class="num">{{ p.promised_roc_auc if p.promised_roc_auc is not none else "" }}</td>
<td class="num">{{ p.roc_auc if p.roc_auc is not none else p.labels }}</td><td class="num">{{ p.calibration_error if p.calibration_error is not none else "" }}</td><td class="num">{{ p.labelled if p.labelled is not none else "" }}</td></tr>{% endfor %}
</table></div></div>{% endif %}
<h3>Alarms</h3>
{% if d.alarms %}<table><tr><th>day</th><th>alarm</th><th>why</th></tr>
{% for a in d.alarms %}<tr data-alarm="{{ a.kind }}"><td>{{ a.day }}</td><td class="drifted">{{ a.kind }}</td><td>{{ a.why }}</td></tr>{% endfor %}
</table>{% else %}<p>no drift or performance alarm raised</p>{% endif %}
<h3>Champion vs shadow challenger on live traffic (labelled days)</h3>
{% if d.challenger %}<table><tr><th>day</th><th>champion</th><th>challenger</th><th>labelled requests</th><th>champion ROC AUC</th><th>challenger ROC AUC</th><th>champion log loss</th><th>challenger log loss</th><th>winner</th></tr>
{% for c in d.challenger %}<tr data-challenger-day="{{ c.day }}" class="{{ c.winner or '' }}"><td>{{ c.day }}</td><td>v{{ c.champion_version }}</td><td>v{{ c.challenger_version }}</td><td class="num">{{ c.rows }}</td>
<td class="num">{{ c.champion_roc_auc if c.champion_roc_auc is not none else "" }}</td><td class="num">{{ c.challenger_roc_auc if c.challenger_roc_auc is not none else "" }}</td>
<td class="num">{{ c.champion_log_loss if c.champion_log_loss is not none else "" }}</td><td class="num">{{ c.challenger_log_loss if c.challenger_log_loss is not none else "" }}</td>
<td>{{ c.winner or "none" }}: {{ c.verdict }}</td></tr>{% endfor %}
</table>{% else %}<p>no challenger has shadowed the champion on a labelled day{% if d.promote_after_days %}; a challenger that wins {{ d.promote_after_days }} labelled days in a row is promoted{% endif %}</p>{% endif %}{% endif %}
</section>
<script>
// Airflow shows this page in an iframe sandboxed without top navigation or pop-ups, but of
// the same origin: a link to one of Airflow's own pages (target=_top) asks the UI's router to
// show it. Opened on its own (no parent) or where the parent is not reachable, the link
// navigates as usual.
document.addEventListener("click", function (event) {
  var link = event.target.closest("a[target=_top]");
  if (!link || window.top === window) return;
  try {
    var url = new URL(link.href);
    window.top.history.pushState(null, "", url.pathname + url.search + url.hash);
    window.top.dispatchEvent(new PopStateEvent("popstate"));
    event.preventDefault();
  } catch (err) {}
});
</script>
</body>
</html>
"""


@functools.cache
def _template():
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    return env.from_string(TEMPLATE)


def accuracy_chart(performance: list[dict[str, Any]]) -> str:
    """A small SVG line chart of realised ROC AUC by day (numbers only; labels escaped)."""
    from markupsafe import Markup, escape

    points = [(p["day"], p["roc_auc"]) for p in performance if p.get("roc_auc") is not None]
    if not points:
        return Markup("<p>no labelled day yet</p>")
    lo = min(0.5, *(v for _, v in points))
    hi = 1.0
    w, h = CHART_W - 2 * PAD, CHART_H - 2 * PAD
    step = w / max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return PAD + i * step, PAD + h * (1 - (v - lo) / (hi - lo))

    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    parts = [
        f'<svg class="chart" width="{CHART_W}" height="{CHART_H}" role="img" '
        f'aria-label="realised ROC AUC by day" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in (lo, (lo + hi) / 2, hi):
        _, y = xy(0, tick)
        parts.append(
            f'<line x1="{PAD}" x2="{PAD + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="2" y="{y + 4:.1f}" font-size="10">{tick:.2f}</text>'
        )
    parts.append(
        '<polyline fill="none" stroke="#0969da" stroke-width="2" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        + '"/>'
    )
    for (day, v), (x, y) in zip(points, coords, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#0969da">'
            f"<title>{escape(day)}: ROC AUC {v:.3f}</title></circle>"
        )
    parts.append(f'<text x="{PAD}" y="{CHART_H - 6}" font-size="10">{escape(points[0][0])}</text>')
    if len(points) > 1:
        parts.append(
            f'<text x="{PAD + w}" y="{CHART_H - 6}" font-size="10" text-anchor="end">'
            f"{escape(points[-1][0])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def render(status: dict[str, Any]) -> str:
    """The page for :func:`fti.apps.status.sections.collect`'s result."""
    mon = status["sections"].get("monitoring") or {}
    perf = (mon.get("data") or {}).get("performance") or [] if mon.get("available") else []
    return _template().render(**status, chart=accuracy_chart(perf))
