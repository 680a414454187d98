"""What the platform page shows, read live from the platform's stores on every request.

Each section is one function ``(settings) -> dict`` that reads one store. :func:`collect` runs
them side by side, each with its own deadline (``FTI_STATUS_TIMEOUT_S``): a section that fails
or does not answer in time is reported as unavailable with a one-line reason, and the others
are shown as usual. Nothing here writes a file; the only state kept between requests is the
previous ``/metrics`` sample of the service, in memory, to compute a request rate.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fti.ground.settings import Settings

log = logging.getLogger(__name__)

PIPELINES = ("feature_pipeline", "training_pipeline", "inference_pipeline")
#: the validation boundaries, in data-flow order (folders under reports/validation/)
BOUNDARIES = ("raw", "features", "training_set", "predictions")
RUNS_PER_PIPELINE = 5
MONITORING_DAYS = 14
#: one HTTP call of the service's or MLflow's; the section's deadline bounds the total
HTTP_TIMEOUT_S = 0.5

# Sections run in these threads so that a hung store cannot hold the request: the request
# stops waiting at the deadline, and the thread finishes (its own timeouts are short) later.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fti-status")
_metrics_samples: dict[str, tuple[float, float]] = {}
_samples_lock = threading.Lock()


class Unavailable(RuntimeError):
    """A store could not be read; the message is the reason shown on the page."""


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _reason(err: BaseException) -> str:
    """One line naming the failure (never a traceback)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    name = type(err).__name__
    if isinstance(err, Unavailable):
        return text or name
    return f"{name}: {text}" if text else name


def _secrets(settings: Settings) -> list[str]:
    """Secret values a store's error message could echo (passwords in URLs and in Feast's
    Redis connection string)."""
    out = []
    for part in settings.redis_connection_string.get_secret_value().split(",")[1:]:
        key, _, value = part.partition("=")
        if key.strip() == "password" and value:
            out.append(value)
    urls = [
        settings.feast_registry,
        settings.mlflow_tracking_uri,
        settings.serving_url,
        settings.airflow_database_url.get_secret_value() if settings.airflow_database_url else None,
    ]
    for url in urls:
        try:
            password = urllib.parse.urlsplit(url).password if url else None
        except ValueError:
            password = None
        if password:
            plain = urllib.parse.unquote(password)
            out += [password, plain, urllib.parse.quote(plain, safe="")]
    return [x for x in out if len(x) >= 3]


def scrub(text: str, settings: Settings) -> str:
    """``text`` with every secret of the settings replaced by ``***``."""
    for secret in _secrets(settings):
        text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """``url`` without user name or password (a tracking URI may carry credentials)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=host)
    return urllib.parse.urlunsplit(parts)


# ------------------------------------------------------------------ pipelines (Airflow)


def pipelines(settings: Settings) -> dict[str, Any]:
    """The latest runs of each pipeline DAG, newest first, from Airflow's metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out = []
    with create_session() as session:
        for dag_id in PIPELINES:
            runs = session.scalars(
                select(DagRun)
                .where(DagRun.dag_id == dag_id)
                .order_by(DagRun.run_after.desc(), DagRun.id.desc())
                .limit(RUNS_PER_PIPELINE)
            ).all()
            out.append(
                {
                    "dag_id": dag_id,
                    "runs": [
                        {
                            "run_id": r.run_id,
                            "state": str(r.state.value if hasattr(r.state, "value") else r.state),
                            "run_type": str(
                                r.run_type.value if hasattr(r.run_type, "value") else r.run_type
                            ),
                            "logical_date": _iso(r.logical_date),
                            "run_after": _iso(r.run_after),
                            "start_date": _iso(r.start_date),
                            "end_date": _iso(r.end_date),
                            # relative to the Airflow UI's root (the page is served one level below)
                            "ui_path": f"dags/{urllib.parse.quote(dag_id, safe='')}/runs/"
                            f"{urllib.parse.quote(r.run_id, safe='')}",
                        }
                        for r in runs
                    ],
                }
            )
    return {"pipelines": out}


# ------------------------------------------------------------------ feature views (Feast)


def _partition_rows(view_dir: Path) -> tuple[str | None, int | None]:
    """(day, rows) of the latest ``date=`` partition of a view in the offline store."""
    import pyarrow.parquet as pq

    days = sorted(p.name.removeprefix("date=") for p in view_dir.glob("date=*") if p.is_dir())
    if not days:
        return None, None
    latest = view_dir / f"date={days[-1]}"
    rows = sum(
        pq.ParquetFile(f).metadata.num_rows
        for f in latest.glob("*.parquet")
        if not f.name.startswith(".")
    )
    return days[-1], rows


def feature_views(settings: Settings) -> dict[str, Any]:
    """Per feature view: the last materialized interval and its freshness against
    ``FTI_FEATURE_FRESHNESS_HOURS``, and the latest offline partition's row count.

    "Now" follows the service's clock: with ``serving_clock=replay`` it is the end of the latest
    materialized interval of any view (the demo replays 2013), so a view is stale when it lags
    the others by more than the limit; with ``wall`` it is the real clock.
    """
    from fti.ground import featurestore

    store = featurestore.feature_store(settings)
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    ends = [end for v in views for _, end in v.materialization_intervals]
    if settings.serving_clock == "wall":
        now, clock = datetime.now(UTC), "wall clock"
    elif ends:
        now, clock = max(ends), "replay: end of the latest materialized interval"
    else:
        now, clock = None, "replay: nothing materialized yet"
    limit = timedelta(hours=settings.feature_freshness_hours)
    out = []
    for v in views:
        intervals = v.materialization_intervals
        last = max(intervals, key=lambda i: i[1]) if intervals else None
        age = (now - last[1]) if (last is not None and now is not None) else None
        if not v.online:
            freshness = "offline only"
        elif last is None:
            freshness = "stale"  # never materialized
        else:
            freshness = "fresh" if age is not None and age <= limit else "stale"
        day, rows = _partition_rows(settings.offline_dir / v.name)
        out.append(
            {
                "name": v.name,
                "online": bool(v.online),
                "last_interval": [_iso(last[0]), _iso(last[1])] if last else None,
                "age_hours": round(age.total_seconds() / 3600, 2) if age is not None else None,
                "freshness": freshness,
                "latest_partition": day,
                "latest_partition_rows": rows,
            }
        )
    return {
        "now": _iso(now),
        "clock": clock,
        "freshness_limit_hours": settings.feature_freshness_hours,
        "views": out,
    }


def online_store(settings: Settings) -> dict[str, Any]:
    """Whether the online store answers (the service's own check), and entities per view."""
    from fti.ground import featurestore
    from serving import features

    try:
        features.check_online_store(settings)
    except Exception as err:
        raise Unavailable(
            _reason(err) if not isinstance(err, features.OnlineStoreUnavailable) else str(err)
        ) from err
    where = (
        f"Redis {features.redis_address(settings)}"
        if settings.online_store == "redis"
        else f"SQLite {settings.sqlite_online_path}"
    )
    return {
        "type": settings.online_store,
        "where": where,
        "entities": featurestore.online_entity_counts(settings),
    }


# ------------------------------------------------------------------ validations (GX reports)


def _latest_run(folder: Path) -> Path | None:
    """The run folder under ``folder/<day>/`` of the latest day, latest run of that day."""
    days = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)
    for day in reversed(days):
        runs = [p for p in day.iterdir() if (p / "result.json").is_file()]
        if runs:
            return max(runs, key=lambda p: (p / "result.json").stat().st_mtime)
    return None


def validations(settings: Settings) -> dict[str, Any]:
    """Per boundary and table: the latest validation's result, failed expectations and the
    path of its HTML report (relative to the reports folder, served by the page)."""
    root = settings.reports_dir / "validation"
    out = []
    for boundary in BOUNDARIES:
        results = []
        folder = root / boundary
        for table in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
            run = _latest_run(table)
            if run is None:
                continue
            data = json.loads((run / "result.json").read_text())
            report = run / "report.html"
            results.append(
                {
                    "name": table.name,
                    "day": run.parent.name,
                    "run": run.name,
                    "checked": data.get("boundary"),
                    "success": bool(data.get("success")),
                    "evaluated": data.get("evaluated"),
                    "rows": data.get("rows"),
                    "failed": list(data.get("failed") or []),
                    "warned": list(data.get("warned") or []),
                    "report": report.relative_to(settings.reports_dir).as_posix()
                    if report.is_file()
                    else None,
                }
            )
        out.append(
            {
                "boundary": boundary,
                "success": all(r["success"] for r in results) if results else None,
                "results": results,
            }
        )
    from feature_repo.jobs import quarantine

    held = [
        {
            "day": q.day.isoformat(),
            "run": q.run_id,
            "boundary": q.boundary,
            "reason": q.reason.splitlines()[0] if q.reason else "",
            "redeliver": f"make redeliver DAY={q.day.isoformat()}",
        }
        for q in quarantine.open_days(settings).values()
    ]
    return {"boundaries": out, "quarantined": held}


# ------------------------------------------------------------------ models (MLflow) and live


def _probe_http(url: str, what: str) -> None:
    """Raise :class:`Unavailable` unless ``url`` answers within ``HTTP_TIMEOUT_S``."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:
            resp.read(64)
    except urllib.error.HTTPError:
        return  # it answered
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise Unavailable(f"{what} unreachable at {redact_url(url)}: {reason}") from err


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return round(f, 4) if math.isfinite(f) else None


def _gate_metrics(numbers: dict, side: str) -> dict[str, float | None] | None:
    """The metrics the gate compared for ``side`` (candidate, baseline or champion)."""
    m = numbers.get(side)
    if not isinstance(m, dict):
        return None
    return {k: _number(m.get(k)) for k in ("roc_auc", "log_loss", "calibration_error")}


def models(settings: Settings) -> dict[str, Any]:
    """Registered versions with the gate's decision and numbers, and the champion alias."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        # without the URL's credentials (urllib would take them for the host name); /health
        # needs none, and an HTTP error still proves the server answers
        _probe_http(redact_url(uri).rstrip("/") + "/health", "MLflow tracking server")
        # MLflow retries a failed call for minutes by default; the page must not wait on that
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    elif uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        # the MLflow client would create an empty database: say there is none instead
        return {
            "name": settings.model_name,
            "champion": None,
            "versions": [],
            "note": "no MLflow database yet (nothing trained)",
        }
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri)
    name = settings.model_name
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException as err:
        raise Unavailable(f"MLflow registry ({redact_url(uri)}): {_reason(err)}") from err
    try:
        aliases = client.get_registered_model(name).aliases if found else {}
    except MlflowException:
        aliases = {}
    champion = aliases.get("champion")
    challenger = aliases.get("challenger")
    versions = []
    for mv in sorted(found, key=lambda m: int(m.version), reverse=True):
        tags = mv.tags or {}
        try:
            numbers = json.loads(tags.get("gate.numbers") or "{}")
        except json.JSONDecodeError:
            numbers = {}
        versions.append(
            {
                "version": str(mv.version),
                "created": _iso(datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC))
                if mv.creation_timestamp
                else None,
                "champion": str(mv.version) == str(champion),
                "challenger": str(mv.version) == str(challenger),
                "aliases": sorted(a for a, v in aliases.items() if str(v) == str(mv.version)),
                "decision": tags.get("gate.decision"),
                "reasons": tags.get("gate.reasons"),
                "candidate": _gate_metrics(numbers, "candidate"),
                "baseline": _gate_metrics(numbers, "baseline"),
                "champion_then": _gate_metrics(numbers, "champion"),
                "data_interval": tags.get("data_interval"),
                "training_set_hash": tags.get("training_set.hash"),
            }
        )
    return {
        "name": name,
        "champion": str(champion) if champion is not None else None,
        "challenger": str(challenger) if challenger is not None else None,
        "versions": versions,
    }


def live(settings: Settings) -> dict[str, Any]:
    """Which model version served from when to when (newest first)."""
    from serving import rollout

    entries = rollout.history(settings)
    return {
        "history": [
            {
                "model_version": str(e.get("model_version")),
                "bento": e.get("bento"),
                "from": e.get("from"),
                "until": e.get("until"),
            }
            for e in reversed(entries)
        ]
    }


# ------------------------------------------------------------------ the service


def _http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, resp.read(1 << 20).decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(4096).decode(errors="replace")


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative histogram buckets (upper bound, count), linearly
    interpolated inside the bucket as Prometheus' ``histogram_quantile`` does."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the highest finite bound, as Prometheus answers
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return None


def parse_metrics(text: str) -> dict[str, Any]:
    """Requests by status, latency (mean, p50, p95) and the served version from the
    service's Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    by_status: dict[str, float] = {}
    buckets: dict[float, float] = {}
    total_sum = total_count = 0.0
    versions: set[str] = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "fti_predict_requests_total":
                key = s.labels.get("status", "?")
                by_status[key] = by_status.get(key, 0.0) + s.value
            elif s.name == "fti_predict_latency_seconds_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == "fti_predict_latency_seconds_sum":
                total_sum += s.value
            elif s.name == "fti_predict_latency_seconds_count":
                total_count += s.value
            elif s.name.startswith("bentoml_service_request") and s.labels.get("service_version"):
                versions.add(s.labels["service_version"])
    pairs = list(buckets.items())
    ms = lambda v: round(v * 1000, 3) if v is not None else None  # noqa: E731
    return {
        "requests": int(sum(by_status.values())),
        "requests_by_status": {k: int(v) for k, v in sorted(by_status.items())},
        "latency_mean_ms": ms(total_sum / total_count) if total_count else None,
        "latency_p50_ms": ms(histogram_quantile(0.5, pairs)),
        "latency_p95_ms": ms(histogram_quantile(0.95, pairs)),
        "bento_versions": sorted(versions),
    }


def service(settings: Settings) -> dict[str, Any]:
    """Readiness, the served model version, request count, rate and latency of the service."""
    from serving import rollout

    url = settings.service_url.rstrip("/")
    try:
        status, body = _http_get(f"{url}/readyz")
    except (OSError, ValueError) as err:
        raise Unavailable(
            f"service unreachable at {redact_url(url)}: {getattr(err, 'reason', err)}"
        ) from err
    ready = status == 200
    reason = None
    if not ready:
        try:
            reason = json.loads(body).get("detail") or body.strip()
        except (json.JSONDecodeError, AttributeError):
            reason = body.strip()[:500]
    out: dict[str, Any] = {"url": redact_url(url), "ready": ready, "not_ready_reason": reason}
    try:
        m_status, text = _http_get(f"{url}/metrics")
        if m_status != 200:
            raise Unavailable(f"/metrics answered {m_status}")
        out.update(parse_metrics(text))
        out["metrics_error"] = None
    except Exception as err:  # readiness is still worth showing
        out["metrics_error"] = scrub(_reason(err), settings)
    entry = rollout.live(settings)
    version = None
    bento = [v for v in out.get("bento_versions", []) if re.fullmatch(r"v\d+", v)]
    if len(bento) == 1:
        version, source = bento[0][1:], "the service's metrics (Bento version)"
    elif entry is not None:
        version, source = str(entry["model_version"]), "the live history"
    else:
        source = None
    out["model_version"], out["model_version_source"] = version, source
    out["rate_per_s"], out["rate_over"] = _rate(url, out.get("requests"), entry)
    return out


def _rate(url: str, requests: int | None, entry: dict | None) -> tuple[float | None, str | None]:
    """Requests per second since this process last read the service's metrics; on the first
    read, the mean since the live version started (from the live history)."""
    if requests is None:
        return None, None
    now = time.time()
    with _samples_lock:
        previous = _metrics_samples.get(url)
        _metrics_samples[url] = (now, requests)
    if previous is not None and now > previous[0] and requests >= previous[1]:
        return round(
            (requests - previous[1]) / (now - previous[0]), 3
        ), f"the last {now - previous[0]:.0f} s"
    if entry is not None and entry.get("from"):
        try:
            since = datetime.fromisoformat(entry["from"]).timestamp()
        except ValueError:
            return None, None
        if now > since:
            return round(requests / (now - since), 3), f"since {entry['from']}"
    return None, None


# ------------------------------------------------------------------ monitoring


def monitoring(settings: Settings) -> dict[str, Any]:
    """The latest day's drift per feature with the threshold, realised accuracy by day, and
    the shadow challenger against the champion on the labelled days."""
    folder = settings.monitoring_dir
    days = (
        sorted(
            p.name
            for p in folder.iterdir()
            if not p.name.startswith(".") and (p / "metrics.json").is_file()
        )
        if folder.is_dir()
        else []
    )
    if not days:
        return {
            "threshold": settings.drift_psi_threshold,
            "latest": None,
            "performance": [],
            "challenger": [],
            "promote_after_days": settings.challenger_promote_after_days,
            "alarms": _alarms(settings),
        }
    latest = json.loads((folder / days[-1] / "metrics.json").read_text())
    ignored = set(latest.get("ignored") or [])
    threshold = latest.get("threshold", settings.drift_psi_threshold)
    psi = latest.get("feature_psi") or {}
    features = [
        {
            "feature": f,
            "psi": v,
            "drifted": v is not None and v > threshold and f not in ignored,
            "ignored": f in ignored,
        }
        for f, v in sorted(psi.items(), key=lambda kv: -(kv[1] or 0))
    ]
    performance, challenger = [], []
    for day in days[-MONITORING_DAYS:]:
        m = json.loads((folder / day / "metrics.json").read_text())
        shadow = m.get("challenger") or {}
        pairs = (shadow.get("pairs") or []) if shadow.get("labels") == "landed" else []
        for pair in pairs:
            champ, chall = pair.get("champion") or {}, pair.get("challenger") or {}
            challenger.append(
                {
                    "day": day,
                    "champion_version": pair["champion_version"],
                    "challenger_version": pair["challenger_version"],
                    "rows": pair["rows"],
                    "champion_roc_auc": champ.get("roc_auc"),
                    "challenger_roc_auc": chall.get("roc_auc"),
                    "champion_log_loss": champ.get("log_loss"),
                    "challenger_log_loss": chall.get("log_loss"),
                    "winner": pair.get("winner"),
                    "verdict": pair.get("verdict"),
                }
            )
        p = m.get("performance") or {}
        performance.append(
            {
                "day": day,
                "model_version": m.get("model_version"),
                "promised_roc_auc": m.get("promised_roc_auc"),
                "roc_auc": p.get("roc_auc"),
                "log_loss": p.get("log_loss"),
                "calibration_error": p.get("calibration_error"),
                "labelled": p.get("labelled"),
                "labels": m.get("labels"),
                "prediction_psi": m.get("prediction_psi"),
            }
        )
    return {
        "threshold": threshold,
        "latest": {
            "day": days[-1],
            "model_version": latest.get("model_version"),
            "features": features,
            "prediction_psi": latest.get("prediction_psi"),
            "prediction_drifted": bool(latest.get("prediction_drifted")),
            "report": f"monitoring/{days[-1]}/index.html",
        },
        "performance": performance,
        "challenger": challenger,
        "promote_after_days": settings.challenger_promote_after_days,
        "alarms": _alarms(settings),
    }


def _alarms(settings: Settings) -> list[dict[str, Any]]:
    """The latest alarms raised (serving.alarms' history), newest first."""
    path = settings.monitoring_dir / "alarms.jsonl"
    if not path.is_file():
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return list(reversed(lines))[:MONITORING_DAYS]


# ------------------------------------------------------------------ all of them

SECTIONS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "pipelines": pipelines,
    "feature_views": feature_views,
    "online_store": online_store,
    "validations": validations,
    "models": models,
    "live": live,
    "service": service,
    "monitoring": monitoring,
}


_libraries_lock = threading.Lock()
_libraries_loaded = False


def _load_libraries() -> None:
    """Import what the sections need, once, in one thread: sections running side by side would
    otherwise import Feast's and MLflow's modules concurrently, which some of them do not
    survive (a half-initialised module seen by another thread)."""
    global _libraries_loaded
    with _libraries_lock:
        if _libraries_loaded:
            return
        import feast  # noqa: F401
        import feast.infra.offline_stores.dask  # noqa: F401  (the file offline store's config)
        import mlflow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        from mlflow import MlflowClient  # noqa: F401
        from prometheus_client import parser  # noqa: F401

        from fti.ground import featurestore  # noqa: F401
        from serving import features, rollout  # noqa: F401

        _libraries_loaded = True


#: sections that need Feast, MLflow, pyarrow or prometheus_client (the others read files)
NEEDS_LIBRARIES = frozenset({"feature_views", "online_store", "models", "service"})


def _run(name: str, fn: Callable[[Settings], dict], settings: Settings) -> dict[str, Any]:
    t0 = time.perf_counter()
    reason = None
    try:
        if name in NEEDS_LIBRARIES:
            _load_libraries()
        out = {"available": True, "reason": None, "data": fn(settings)}
    except Exception as err:
        reason = scrub(_reason(err), settings)
        out = {"available": False, "reason": reason, "data": None}
    if reason is not None:
        log.warning("platform page: section %s unavailable: %s", name, reason)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


#: sections whose last answer the page shows, saying how old it is, while their store is too
#: busy to answer in time (the registry's SQLite while a training registers a model, seen in
#: Chromium during replayed days as "Models: unavailable: no answer within 0.8 s")
STALE_OK = frozenset({"models"})
#: the last available answer of those sections, per configuration
_last_good: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


def _remember(key: tuple[str, str], future) -> None:
    try:
        out = future.result()
    except Exception:  # _run catches everything; nothing to keep otherwise
        return
    if out.get("available"):
        _last_good[key] = (time.time(), out)


def collect(settings: Settings, timeout_s: float | None = None) -> dict[str, Any]:
    """Every section, each read within ``timeout_s`` (``FTI_STATUS_TIMEOUT_S``) from the start;
    a section that does not answer in time shows its last answer, with its age, when it had
    one (the late read still completes and becomes the next page's last answer)."""
    timeout_s = settings.status_timeout_s if timeout_s is None else timeout_s
    started = time.monotonic()
    futures = {name: _pool.submit(_run, name, fn, settings) for name, fn in SECTIONS.items()}
    sections = {}
    config = settings.model_dump_json()
    for name, future in futures.items():
        key = (name, config)
        if name in STALE_OK:
            future.add_done_callback(lambda f, key=key: _remember(key, f))
        try:
            sections[name] = future.result(timeout=max(0.0, started + timeout_s - time.monotonic()))
        except FutureTimeout:
            if key in _last_good:
                at, last = _last_good[key]
                age = time.time() - at
                sections[name] = {
                    **last,
                    "stale_s": round(age, 1),
                    "note": f"as of {age:.0f} s ago: no answer within {timeout_s:g} s now",
                }
                continue
            reason = f"no answer within {timeout_s:g} s"
            if name in NEEDS_LIBRARIES and not _libraries_loaded:
                reason += (
                    " (loading Feast and MLflow, once after the API server starts: "
                    "refresh in a few seconds)"
                )
            sections[name] = {"available": False, "data": None, "seconds": None, "reason": reason}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 3),
        "sections": sections,
    }


def warm_up() -> None:
    """Import the libraries the sections use (in the calling thread), so that the first page
    after the API server starts does not spend its deadline importing them."""
    try:
        _load_libraries()
    except Exception as err:  # the sections will report it on the page
        log.warning("platform page: loading libraries failed: %s", _reason(err))
