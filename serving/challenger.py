"""The shadow challenger: a second registered version scored on the live traffic, never answered.

The registry's ``challenger`` alias names it: the gate sets it for a candidate that passes every
threshold and the baseline but does not beat the champion by the margin
(``training.registry.record_decision``), and ``python -m fti challenger VERSION`` sets it by
hand. The running service loads it at start-up and, when the alias moves, through
``POST /admin/challenger`` (:func:`sync`: the inference pipeline's deploy, and the compose
runtime's supervisor); it is checked like a new champion. Each request is answered by the
champion only; the inference log's writer scores the same rows with the challenger live when
the request was answered, off the response path, into the log's ``challenger_version`` and
``challenger_probability`` columns.

Once a day's labels land, :func:`compare_day` scores both on the same logged rows (ROC AUC, log
loss, calibration error); the day's monitoring report keeps it (``metrics.json``) and shows it,
and so does the platform page. With
``FTI_CHALLENGER_PROMOTE_AFTER_DAYS`` = N > 0 (off by default), :func:`apply_rule` makes a
challenger that won each of the last N labelled days the champion (its ROC AUC above the
champion's by the gate's ``FTI_GATE_CHAMPION_MARGIN`` on at least
``FTI_CHALLENGER_MIN_ROWS`` labelled rows), recorded on the version as its promotion's reason.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from fti.ground.dates import as_day
from fti.ground.settings import Settings, get_settings

if TYPE_CHECKING:
    from serving.model import LoadedModel

log = logging.getLogger(__name__)

LABELS_NOT_LANDED = "labels not landed yet"


def load_registered(settings: Settings) -> LoadedModel | None:
    """The registry's challenger, staged and loaded (None when there is none, or when it is
    the champion)."""
    from serving import model as served
    from training import registry

    found = registry.challenger(settings)
    if found is None:
        return None
    champion = registry.champion(settings)
    if champion is not None and str(champion.version) == str(found.version):
        return None
    model_dir = served.stage_champion(settings, version=str(found.version))
    log.info("challenger: model version %s shadows the champion", found.version)
    return served.load(model_dir)


def sync(
    settings: Settings | None = None, base_url: str | None = None, refused: set | None = None
) -> dict[str, Any]:
    """Make the running service's challenger the registry's (stage it and ``POST
    /admin/challenger``; none: stop shadowing). Returns ``{"challenger", "changed", "error"}``:
    a refused challenger is reported (the error names why), never raised, since the champion
    serves either way; nothing is done when the service does not answer. ``refused``: versions
    not to try again (a refused one is added to it)."""
    from serving import admin
    from serving import model as served
    from training import registry

    settings = settings or get_settings()
    base_url = base_url or settings.service_url
    running = admin.live_models(base_url, settings)
    if running is None:
        return {"challenger": None, "changed": False, "error": "the service does not answer"}
    found = registry.challenger(settings)
    wanted = None if found is None else str(found.version)
    if wanted is not None and wanted == running.get("live"):
        wanted = None  # promoted since: the champion does not shadow itself
    if wanted == running.get("challenger"):
        return {"challenger": wanted, "changed": False, "error": None}
    if refused is not None and wanted in refused:
        return {"challenger": running.get("challenger"), "changed": False, "error": "refused"}
    model_dir = None if wanted is None else served.stage_champion(settings, version=wanted)
    why = admin.request_switch(base_url, model_dir, wanted, settings, path=admin.CHALLENGER_PATH)
    if why is not None:
        log.error("challenger %s not shadowing: %s", wanted, why)
        if refused is not None and "refused" in why:
            refused.add(wanted)
        return {"challenger": running.get("challenger"), "changed": False, "error": why}
    log.info("challenger now %s (was %s)", wanted, running.get("challenger"))
    return {"challenger": wanted, "changed": True, "error": None}


# ------------------------------------------------------------------ comparing on labelled days


def compare_day(day: date | str, settings: Settings | None = None) -> dict[str, Any] | None:
    """Champion and challenger on the rows of ``day``'s inference log that both scored, joined
    to the flights' labels: the metrics of each and which one won. None when no logged row of
    the day was shadowed; ``{"labels": "labels not landed yet", ...}`` before the labels of
    every flight day in it are published."""
    import numpy as np
    import pandas as pd

    from fti.ground import files
    from fti.ground.contract import contract
    from serving import inference_log as ilog
    from training.train import metrics

    settings = settings or get_settings()
    day = as_day(day)
    logged = ilog.read(
        settings,
        day.isoformat(),
        columns=[
            "flight_id",
            "model_version",
            "probability",
            "challenger_version",
            "challenger_probability",
        ],
    )
    if logged.empty:
        return None
    shadowed = logged[
        logged["challenger_version"].notna() & np.isfinite(logged["challenger_probability"])
    ]
    if shadowed.empty:
        return None
    c = contract(settings)
    flight_days = sorted({f[:8] for f in shadowed["flight_id"]})
    labels = []
    for d in flight_days:
        path = files.day_partition(settings.offline_dir, c.label_view, f"{d[:4]}-{d[4:6]}-{d[6:]}")
        if not path.exists():
            return {"day": day.isoformat(), "labels": LABELS_NOT_LANDED, "pairs": []}
        labels.append(pd.read_parquet(path, columns=["flight_id", c.label]))
    joined = shadowed.merge(pd.concat(labels), on="flight_id", how="inner")
    joined = joined[joined[c.label].notna()]  # a cancelled flight has no label
    pairs = []
    margin, min_rows = settings.gate_champion_margin, settings.challenger_min_rows
    for (champion, challenger), rows in joined.groupby(
        ["model_version", "challenger_version"], sort=True
    ):
        y = rows[c.label].to_numpy().astype(int)
        enough = len(rows) >= min_rows and len(set(y)) == 2
        champ = metrics(y, rows["probability"].to_numpy()) if enough else None
        chall = metrics(y, rows["challenger_probability"].to_numpy()) if enough else None
        if not enough:
            verdict = f"too few labelled rows ({len(rows)} < {min_rows}, or one class only)"
            winner = None
        elif chall["roc_auc"] >= champ["roc_auc"] + margin:
            winner, verdict = "challenger", f"ROC AUC ahead by at least {margin}"
        else:
            winner, verdict = "champion", f"challenger not ahead by {margin} in ROC AUC"
        pairs.append(
            {
                "champion_version": str(champion),
                "challenger_version": str(challenger),
                "rows": len(rows),
                "flights": int(rows["flight_id"].nunique()),
                "champion": champ,
                "challenger": chall,
                "winner": winner,
                "verdict": verdict,
            }
        )
    return {"day": day.isoformat(), "labels": "landed", "pairs": pairs}


def comparisons(settings: Settings, last: int | None = None) -> list[dict[str, Any]]:
    """The comparisons the daily monitoring reports kept (``metrics.json``'s ``challenger``)
    on labelled days, oldest first (of the ``last`` reports when given)."""
    folder = settings.monitoring_dir
    found = sorted(folder.glob("*/metrics.json")) if folder.is_dir() else []
    if last is not None:
        found = found[-last:]
    out = []
    for path in found:
        kept = json.loads(path.read_text()).get("challenger")
        if kept and kept.get("labels") == "landed":
            out.append(kept)
    return out


def apply_rule(settings: Settings | None = None) -> dict[str, Any] | None:
    """With ``FTI_CHALLENGER_PROMOTE_AFTER_DAYS`` = N > 0: promote the challenger when it won
    against the current champion on each of the last N labelled days it shadowed it; the
    promotion's details, else None. The caller deploys the new champion."""
    from training import registry

    settings = settings or get_settings()
    n = settings.challenger_promote_after_days
    if n <= 0:
        return None
    shadow, champion = registry.challenger(settings), registry.champion(settings)
    if shadow is None or champion is None:
        return None
    pair = (str(champion.version), str(shadow.version))
    days = []
    # the reports of the last N + 30 days: enough for a run of N, without reading a year
    for comparison in comparisons(settings, last=n + 30):
        for p in comparison["pairs"]:
            if (p["champion_version"], p["challenger_version"]) == pair and p["winner"]:
                days.append((comparison["day"], p["winner"]))
    recent = days[-n:]
    if len(recent) < n or any(winner != "challenger" for _, winner in recent):
        return None
    why = (
        f"challenger rule: beat champion v{pair[0]} on the {n} labelled days "
        f"{recent[0][0]}..{recent[-1][0]} of live traffic"
    )
    registry.promote(pair[1], {"promoted_by": why}, settings)
    log.warning("model version %s promoted: %s", pair[1], why)
    return {"version": pair[1], "replaces": pair[0], "days": [d for d, _ in recent], "why": why}
