"""The inference pipeline's steps, one function per DAG task (the DAG file only wires them).

deploy (the champion as the live service) -> score_next_day (batch) -> monitor -> [drift and
performance assets, on their alarms].
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from fti.ground.dates import as_day
from fti.ground.runs import step
from fti.ground.settings import Settings, get_settings

log = logging.getLogger(__name__)


def next_day(day: date | str) -> date:
    """The day after ``day``: the one a run triggered by ``day``'s features scores."""
    return as_day(day) + timedelta(days=1)


def previous_day(day: date | str) -> date:
    """The day before ``day``."""
    return as_day(day) - timedelta(days=1)


@step
def deploy(settings: Settings | None = None) -> dict:
    """Roll the registry's champion out unless it is already live (then make sure it runs);
    the service's challenger made the registry's (local runtime; the serving container follows
    the alias itself)."""
    from serving import challenger, rollout
    from serving import model as served
    from training import registry

    settings = settings or get_settings()
    champion = registry.champion(settings)
    if champion is None:
        raise served.NoModel(
            f"no champion for {settings.model_name!r} yet: the training pipeline has not "
            "promoted a model, so there is nothing to serve"
        )
    version = str(champion.version)
    current = rollout.live(settings)
    if settings.serving_runtime == "local" and current and current["model_version"] == version:
        rollout.ensure_running(settings)
        log.info("model version %s is already live on %s", version, settings.service_url)
        out = {
            "model_version": version,
            "bento": current["bento"],
            "changed": False,
            "url": settings.service_url,
        }
    elif settings.serving_runtime == "compose":
        # the serving container stages and serves the champion itself, and its challenger
        changed = not (current and current["model_version"] == version)
        return {**rollout.await_served(version, settings), "changed": changed}
    else:
        model_dir = served.stage_champion(settings)
        out = {**rollout.rollout(model_dir, version, settings), "changed": True}
    if settings.serving_runtime == "local":
        out["challenger"] = challenger.sync(settings)
    return out


@step
def deploy_version(version: str, settings: Settings | None = None) -> dict:
    """Make registered model ``version`` the live service (``python -m fti deploy VERSION``):
    switched inside the running service, or the service started with it. The registry's
    champion alias is not moved: it stays what the next scheduled deploy serves."""
    from serving import model as served
    from serving import rollout

    settings = settings or get_settings()
    model_dir = served.stage_champion(settings, version=str(version))
    return rollout.rollout(model_dir, str(version), settings)


def score_next_day(
    run_id: str = "manual", settings: Settings | None = None, day: date | None = None
) -> dict:
    """Batch predictions for ``day`` (the run's day; without one, the day after the latest
    published feature day)."""
    from serving import batch

    settings = settings or get_settings()
    if day is None:
        day = next_day(batch.latest_feature_day(settings))
        log.info("no day given: scoring the day after the latest published day, %s", day)
    if day > settings.last_day:
        log.info(
            "%s is past the data set's last day %s: nothing scheduled to score",
            day,
            settings.last_day,
        )
        return {"day": None}
    return batch.score_day(day, run_id, settings)


@step
def monitor(scored: dict, run_id: str = "manual", settings: Settings | None = None) -> dict:
    """Drift for the scored day; realised performance (and the shadow challenger against the
    champion) for the day before, whose labels landed; the drift and performance alarms
    (``serving.alarms``); the challenger promoted and deployed
    when the rule (``FTI_CHALLENGER_PROMOTE_AFTER_DAYS``) says it won."""
    from serving import alarms, batch, challenger, monitoring

    settings = settings or get_settings()
    if not scored.get("day"):
        return {"drifted": []}
    result = monitoring.monitor_day(scored["day"], run_id, settings)
    out = {
        k: result[k]
        for k in ("day", "drifted", "feature_psi", "prediction_psi", "report", "labels")
    }
    previous = previous_day(scored["day"])
    if batch.predictions_path(settings, previous).exists():
        earlier = monitoring.monitor_day(previous, run_id, settings)
        out["previous_day"] = {
            "day": earlier["day"],
            "performance": earlier["performance"],
            "challenger": earlier["challenger"],
        }
    # the alarms that retrain: inputs drifted for days in a row, realised ROC AUC below the
    # live model's promise (serving.alarms)
    out["alarms"] = alarms.check(scored["day"], previous, settings)
    promoted = challenger.apply_rule(settings)
    if promoted is not None:  # the challenger won its days: it answers from now on
        out["promoted"] = {**promoted, "deployed": deploy(settings)}
    return out
