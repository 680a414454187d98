"""Monitoring of a scored day: feature drift, prediction drift, realised performance.

``monitor_day`` is one DAG task's work. The reference is the train split of the training set
the predictions' model was trained on (found through the ``training_set.hash`` tag of its
registered version), re-joined as of the start of each flight's day as batch scoring sees a day
(``reference_as_scored``), and the reference predictions are that model's scores on it. The day's
side is the day's predictions file, which holds every input the model was given.

Population stability index, per feature, between reference ``e`` and day ``a``::

    PSI = sum over bins i of (a_i - e_i) * ln(a_i / e_i)

where ``e_i`` and ``a_i`` are the shares of rows in bin ``i``, each floored at ``EPSILON`` so
that an empty bin counts as a small share instead of an infinite log. Numeric features use
fixed bins from the reference: the edges are its deciles (duplicates merged, so a feature that
is mostly zero has few bins), bins are right-closed ``(edge_k, edge_k+1]`` with open ends, and
missing values are one more bin, so a change in the null rate is drift too. Categorical
features (the model's embedded inputs) use one bin per category seen on either side, plus
missing. Identical distributions give 0; the usual reading is < 0.1 stable, 0.1-0.25 a
moderate shift, > 0.25 a large one. Prediction drift is the PSI of the probabilities.

Realised performance (ROC AUC, log loss, calibration error) is computed once the day's
``flight_labels`` partition is in the offline store; until then the report says the labels
have not landed. The report (``index.html``, PNG plots, ``metrics.json``) goes to
``monitoring/<day>/`` and a rerun replaces it.
"""

from __future__ import annotations

import html
import json
import logging
import math
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fti.ground import files
from fti.ground.contract import contract
from fti.ground.dates import as_day
from fti.ground.settings import Settings, get_settings
from serving.batch import predictions_path

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

#: floor of a bin's share in the PSI (an empty bin would make ln(a/e) infinite)
EPSILON = 1e-4
#: quantile bins of a numeric feature (deciles of the reference)
BINS = 10
LABELS_NOT_LANDED = "labels not landed yet"


# ------------------------------------------------------------------ population stability index


def quantile_edges(reference: pd.Series | np.ndarray, bins: int = BINS) -> np.ndarray:
    """Interior bin edges: the reference's quantiles at 1/bins .. (bins-1)/bins, deduplicated."""
    import numpy as np

    x = _floats(reference)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.array([])
    return np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_shares(values: pd.Series | np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of ``values`` in the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` and missing."""
    import numpy as np

    x = _floats(values)
    missing = np.isnan(x)
    counts = np.bincount(np.searchsorted(edges, x[~missing], side="left"), minlength=len(edges) + 1)
    counts = np.append(counts, missing.sum())
    return counts / max(len(x), 1)


def category_shares(
    reference: pd.Series, actual: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Categories seen on either side (plus missing, last) and each side's shares of them."""
    import numpy as np

    ref, cur = _category_labels(reference), _category_labels(actual)
    cats = sorted(set(ref.dropna()) | set(cur.dropna()))

    def shares(s: pd.Series) -> np.ndarray:
        counts = s.value_counts()
        out = np.array([counts.get(c, 0) for c in cats] + [s.isna().sum()], dtype=np.float64)
        return out / max(len(s), 1)

    return [*cats, "<missing>"], shares(ref), shares(cur)


def _category_labels(values: pd.Series) -> pd.Series:
    """Categories as text; integer codes read the same whether stored as int or float."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):
        x = pd.to_numeric(values, errors="coerce")
        if (x.dropna() % 1 == 0).all():
            return x.astype("Int64").astype("string")
    return values.astype("string")


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, eps: float = EPSILON) -> float:
    """``sum((a - e) * ln(a / e))`` over bins, shares floored at ``eps``."""
    import numpy as np

    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(
    reference: pd.Series | np.ndarray,
    actual: pd.Series | np.ndarray,
    *,
    categorical: bool = False,
    bins: int = BINS,
    eps: float = EPSILON,
) -> float:
    """Population stability index of ``actual`` against ``reference`` (see the module's doc)."""
    import pandas as pd

    if categorical:
        _, e, a = category_shares(pd.Series(reference), pd.Series(actual))
    else:
        edges = quantile_edges(reference, bins)
        e, a = bin_shares(reference, edges), bin_shares(actual, edges)
    return psi_from_shares(e, a, eps)


def _floats(values) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(pd.Series(values), errors="coerce").astype("float64").to_numpy()


# ------------------------------------------------------------------ reference: the champion's data


def _reference(settings: Settings, version: str, model_dir: Path) -> tuple[pd.DataFrame, dict]:
    """The train split of the training set of model ``version``, and the version's lineage."""
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import registry

    try:
        mv = MlflowClient(tracking_uri=settings.tracking_uri).get_model_version(
            settings.model_name, version
        )
    except MlflowException as e:
        raise LookupError(
            f"the predictions' model {settings.model_name} version {version!r} is not in the "
            f"registry at {settings.tracking_uri}, so its training set (the drift reference) "
            f"is unknown: {e.message}"
        ) from e
    digest = (mv.tags or {}).get("training_set.hash")
    if not digest:
        raise LookupError(
            f"model {settings.model_name} version {version} has no training_set.hash tag: "
            "its training set, the drift reference, cannot be found"
        )
    snapshot = settings.data_dir / "training_sets" / f"{digest[:16]}.parquet"
    if not snapshot.exists():
        raise FileNotFoundError(
            f"the training set of model version {version} (hash {digest[:16]}) is gone: {snapshot}"
        )
    registry.download(mv, model_dir, settings)
    df = pd.read_parquet(snapshot)
    if "split" in df.columns:
        df = df[df["split"] == "train"].reset_index(drop=True)
    return reference_as_scored(df, snapshot, settings), {
        "training_set": str(snapshot),
        "training_set_hash": digest,
    }


def reference_as_scored(train: pd.DataFrame, snapshot: Path, settings: Settings) -> pd.DataFrame:
    """The training flights with their features as of the start of their day, the instant batch
    scoring uses (``serving.batch.features_as_of``).

    Training rows are stamped 2 h before departure, but a day is scored as of its midnight: the
    same flights seen that way are the like-for-like reference. Against the training rows
    themselves every day would drift (all of a day's flights share the 23:00 weather, and
    evening values differ from afternoon ones) and drift would stop meaning anything. Computed
    once per training set and kept beside it (write-then-rename).
    """
    import pandas as pd

    from training.dataset import SPINE_COLUMNS, point_in_time_join

    cache = snapshot.with_name(f"{snapshot.stem}.reference-day-start.parquet")
    if cache.exists():
        return pd.read_parquet(cache)
    spine = train[[*SPINE_COLUMNS, contract(settings).label]].copy()
    midnight = (
        spine["sched_dep_ts"].dt.tz_convert(settings.timezone).dt.normalize().dt.tz_convert("UTC")
    )
    # one microsecond before midnight, as batch scoring looks (its docstring says why)
    spine["event_timestamp"] = (midnight - pd.Timedelta(microseconds=1)).astype(
        "datetime64[us, UTC]"
    )
    out = point_in_time_join(spine, settings).drop(columns="event_timestamp")
    files.write_frame(out, cache)
    return out


def _model_inputs(model_dir: Path) -> tuple[list[str], list[str]]:
    """The (categorical, numeric) inputs the saved model reads, from its fitted preprocessing."""
    import torch

    from training.model import Preprocessor

    saved = torch.load(_model_file(model_dir), weights_only=False)
    pre = Preprocessor.from_json(saved["preprocessor"])
    return list(pre.categorical), list(pre.numeric)


def _model_file(model_dir: Path) -> Path:
    found = sorted(model_dir.rglob("model.pt"))
    if not found:
        raise FileNotFoundError(f"no model.pt under {model_dir}")
    return found[0]


# ------------------------------------------------------------------ the day's report


def labels_path(settings: Settings, day: date) -> Path:
    """The label view's partition of ``day`` in the offline store."""
    return files.day_partition(settings.offline_dir, contract(settings).label_view, day)


def realised_performance(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    """ROC AUC, log loss and calibration error of the day's predictions on its departed flights
    (cancelled flights have no label and are left out)."""
    from training.train import metrics

    label = contract().label
    joined = predictions[["flight_id", "probability"]].merge(
        labels[["flight_id", label]], on="flight_id", how="inner"
    )
    out = metrics(joined[label].to_numpy(), joined["probability"].to_numpy())
    out["scored"] = len(predictions)
    out["labelled"] = len(joined)
    return out


def monitor_day(day: date | str, run_id: str = "manual", settings: Settings | None = None) -> dict:
    """Drift and realised performance of the predictions of ``day``; writes the day's report.

    Returns per-feature PSI, ``drifted`` (features whose PSI exceeds
    ``settings.drift_psi_threshold``, largest first), the prediction PSI, the realised
    performance or ``"labels not landed yet"``, and the report's location.
    """
    import pandas as pd

    from serving import alarms, challenger
    from training.gate import score

    settings = settings or get_settings()
    day = as_day(day)
    path = predictions_path(settings, day)
    if not path.exists():
        raise FileNotFoundError(f"no predictions for {day} at {path}: score the day first")
    current = pd.read_parquet(path)
    versions = sorted(current["model_version"].astype(str).unique())
    if len(versions) != 1:
        raise ValueError(f"predictions of {day} mix model versions {versions}")
    version = versions[0]

    with tempfile.TemporaryDirectory(prefix="fti-monitor-") as tmp:
        model_dir = Path(tmp)
        reference, lineage = _reference(settings, version, model_dir)
        categorical, numeric = _model_inputs(model_dir)
        reference_scores = score(_model_file(model_dir).parent, reference)

    threshold = settings.drift_psi_threshold
    feature_psi = {}
    for c in [*numeric, *categorical]:
        if c in reference.columns and c in current.columns:
            feature_psi[c] = psi(reference[c], current[c], categorical=c in categorical)
    ignored = settings.drift_ignored_features
    drifted = sorted(
        (c for c, v in feature_psi.items() if v > threshold and c not in ignored),
        key=lambda c: -feature_psi[c],
    )
    prediction_psi = psi(reference_scores, current["probability"])

    labels_file = labels_path(settings, day)
    labels = pd.read_parquet(labels_file) if labels_file.exists() else None
    performance = realised_performance(current, labels) if labels is not None else None

    result: dict[str, Any] = {
        "day": day.isoformat(),
        "run_id": run_id,
        "model_version": version,
        **lineage,
        "reference_rows": len(reference),
        "rows": len(current),
        "threshold": threshold,
        "ignored": sorted(ignored & set(feature_psi)),
        "feature_psi": {c: round(v, 6) for c, v in feature_psi.items()},
        "drifted": drifted,
        "prediction_psi": round(prediction_psi, 6),
        "prediction_drifted": prediction_psi > threshold,
        "labels": "landed" if performance is not None else LABELS_NOT_LANDED,
        "performance": _clean(performance),
        # what the model's gate measured on its test window, with features as of each day's
        # start like these predictions: the number the realised one is held to
        "promised_roc_auc": alarms.promised_roc_auc(version, settings),
        # the shadow challenger against the champion on the day's online traffic (None: no
        # challenger shadowed it)
        "challenger": _clean(challenger.compare_day(day, settings)),
    }
    folder = settings.monitoring_dir / day.isoformat()
    result["report"] = str(folder / "index.html")
    _write_report(folder, result, reference, current, reference_scores, categorical, labels)

    if drifted:
        log.warning(
            "feature drift on %s: %s above the PSI threshold %s",
            day,
            ", ".join(f"{c} PSI {feature_psi[c]:.3f}" for c in drifted),
            threshold,
        )
    else:
        log.info("no feature drift on %s (PSI threshold %s)", day, threshold)
    if result["prediction_drifted"]:
        log.warning(
            "prediction drift on %s: probability PSI %.3f above the threshold %s",
            day,
            prediction_psi,
            threshold,
        )
    return result


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy numbers plain floats."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


# ------------------------------------------------------------------ report files


def _write_report(
    folder: Path,
    result: dict,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_scores: np.ndarray,
    categorical: list[str],
    labels: pd.DataFrame | None,
) -> None:
    """Write the report into a fresh folder, then swap it in: a rerun leaves no stale plot."""
    with files.replacing(folder) as tmp:
        tmp.mkdir()
        images = _plots(tmp, result, reference, current, reference_scores, categorical, labels)
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2, allow_nan=False))
        (tmp / "index.html").write_text(_html(result, images))


def _plots(
    out: Path,
    result: dict,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_scores: np.ndarray,
    categorical: list[str],
    labels: pd.DataFrame | None,
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    images = []
    threshold = result["threshold"]
    items = sorted(result["feature_psi"].items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(items) + 1)))
    ax.barh(
        [k for k, _ in items],
        [v for _, v in items],
        color=["tab:red" if v > threshold else "tab:blue" for _, v in items],
    )
    ax.axvline(threshold, color="grey", linestyle="--", label=f"threshold {threshold}")
    ax.set(xlabel="population stability index", title=f"Feature drift, {result['day']}")
    ax.legend()
    fig.savefig(out / "feature_psi.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    images.append(("feature_psi.png", "PSI per feature against the training set's train split"))

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(reference_scores, bins=bins, density=True, alpha=0.5, label="training set")
    ax.hist(current["probability"], bins=bins, density=True, alpha=0.5, label=result["day"])
    ax.set(
        xlabel="predicted delay probability",
        ylabel="density",
        title=f"Predictions (PSI {result['prediction_psi']:.3f})",
    )
    ax.legend()
    fig.savefig(out / "predictions.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    images.append(("predictions.png", "Distribution of the predicted probabilities"))

    top = [c for c, _ in sorted(result["feature_psi"].items(), key=lambda kv: -kv[1])[:6]]
    if top:
        cols = 3
        rows = math.ceil(len(top) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
        for ax, c in zip(axes.flat, top, strict=False):
            if c in categorical:
                cats, e, a = category_shares(reference[c], current[c])
                x = np.arange(len(cats))
                ax.bar(x - 0.2, e, width=0.4, label="training set")
                ax.bar(x + 0.2, a, width=0.4, label=result["day"])
                ax.set_xticks(x, cats, rotation=90, fontsize=6)
            else:
                ref, cur = _floats(reference[c]), _floats(current[c])
                both = np.concatenate([ref[~np.isnan(ref)], cur[~np.isnan(cur)]])
                edges = np.histogram_bin_edges(both, bins=30) if len(both) else 30
                ax.hist(
                    ref[~np.isnan(ref)], bins=edges, density=True, alpha=0.5, label="training set"
                )
                ax.hist(
                    cur[~np.isnan(cur)], bins=edges, density=True, alpha=0.5, label=result["day"]
                )
            ax.set_title(f"{c} (PSI {result['feature_psi'][c]:.3f})", fontsize=9)
        for ax in list(axes.flat)[len(top) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "top_features.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        images.append(("top_features.png", "The features with the largest PSI"))

    if labels is not None:
        label = contract().label
        joined = current[["flight_id", "probability"]].merge(
            labels[["flight_id", label]], on="flight_id"
        )
        p, y = joined["probability"].to_numpy(), joined[label].to_numpy()
        idx = np.minimum((p * 10).astype(int), 9)
        mean_p = [p[idx == b].mean() for b in range(10) if (idx == b).any()]
        mean_y = [y[idx == b].mean() for b in range(10) if (idx == b).any()]
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(mean_p, mean_y, "o-", label=result["day"])
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
        ax.set(
            xlabel="predicted probability",
            ylabel="observed delay rate",
            title="Calibration on the day's departed flights",
        )
        ax.legend()
        fig.savefig(out / "calibration.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        images.append(("calibration.png", "Realised calibration"))
    return images


def _challenger_html(comparison: dict | None, num) -> str:
    """The champion and the challenger on the day's logged requests, one row per pair."""
    e = html.escape
    if comparison is None:
        return "<p>no challenger shadowed the champion on this day</p>"
    if comparison["labels"] != "landed":
        return f"<p>{e(comparison['labels'])}</p>"
    rows = []
    for p in comparison["pairs"]:
        champ, chall = p["champion"] or {}, p["challenger"] or {}
        rows.append(
            f'<tr class="{e(p["winner"] or "")}"><td>v{e(p["champion_version"])}</td>'
            f"<td>v{e(p['challenger_version'])}</td><td>{p['rows']}</td>"
            f"<td>{num(champ.get('roc_auc'))}</td><td>{num(chall.get('roc_auc'))}</td>"
            f"<td>{num(champ.get('log_loss'))}</td><td>{num(chall.get('log_loss'))}</td>"
            f"<td>{e(p['winner'] or 'none')}: {e(p['verdict'])}</td></tr>"
        )
    return (
        "<table><tr><th>champion</th><th>challenger</th><th>labelled rows</th>"
        "<th>champion ROC AUC</th><th>challenger ROC AUC</th><th>champion log loss</th>"
        "<th>challenger log loss</th><th>winner</th></tr>" + "".join(rows) + "</table>"
    )


def _html(result: dict, images: list[tuple[str, str]]) -> str:
    e = html.escape
    threshold = result["threshold"]

    def num(v: Any) -> str:
        return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else e(str(v)))

    ignored = set(result.get("ignored", []))

    def verdict(c: str, v: float) -> str:
        if v <= threshold:
            return ""
        return "above, ignored (a day differs by construction)" if c in ignored else "drifted"

    rows = "\n".join(
        f'<tr class="{"drift" if verdict(c, v) == "drifted" else ""}"><td>{e(c)}</td>'
        f"<td>{v:.4f}</td><td>{e(verdict(c, v))}</td></tr>"
        for c, v in sorted(result["feature_psi"].items(), key=lambda kv: -kv[1])
    )
    perf = result["performance"]
    if perf is None:
        performance = f"<p>{e(LABELS_NOT_LANDED)}</p>"
    else:
        performance = (
            "<table>"
            + "".join(f"<tr><td>{e(k)}</td><td>{num(v)}</td></tr>" for k, v in perf.items())
            + "</table>"
        )
    drifted = ", ".join(result["drifted"]) or "none"
    shadow = _challenger_html(result.get("challenger"), num)
    figures = "\n".join(
        f'<figure><img src="{e(name)}" alt="{e(alt)}"><figcaption>{e(alt)}</figcaption></figure>'
        for name, alt in images
    )
    facts = [
        ("day", result["day"]),
        ("run", result["run_id"]),
        ("model version", result["model_version"]),
        ("reference", f"{result['training_set']} (train split, {result['reference_rows']} rows)"),
        ("scored flights", result["rows"]),
        ("PSI threshold", threshold),
        ("drifted features", drifted),
        (
            "prediction PSI",
            f"{result['prediction_psi']:.4f}"
            + (" (drifted)" if result["prediction_drifted"] else ""),
        ),
    ]
    summary = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Monitoring {e(result["day"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left}}
tr.drift{{background:#fdd}}img{{max-width:100%}}</style></head>
<body>
<h1>Monitoring of the predictions for {e(result["day"])}</h1>
<table>{summary}</table>
<h2>Realised performance</h2>
{performance}
<h2>Shadow challenger (online traffic)</h2>
{shadow}
<h2>Feature drift (PSI)</h2>
<table><tr><th>feature</th><th>PSI</th><th></th></tr>
{rows}
</table>
<h2>Plots</h2>
{figures}
</body></html>
"""
