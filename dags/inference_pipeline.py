"""
### Inference pipeline

Runs when a model is promoted (the `fti_model` asset), when the feature pipeline publishes a
day (`fti_features`), or by hand.
**deploy**: builds a Bento for the MLflow champion and makes it the live service (embedded
default: the local service on port 3000, gated on `/readyz` and a smoke prediction, rolled back
to the previous Bento if either fails; `FTI_SERVING_RUNTIME=kubernetes`: Deployment and Service
manifests, validated). Nothing happens when the champion is already live.
**score_next_day**: the flights scheduled for the day after the one the triggering event
names (the day the feature pipeline published, or the last day the promoted model was trained
on; a manual run: its `day` parameter, else the day after the latest published day), with
offline features as of that day's start, validated (Great Expectations) and published as the
day's predictions partition; rerunning a run scores the same day again. **monitor**: feature and prediction drift (PSI) against the
champion's training set, realised accuracy once labels land, an HTML report per day.
**drift**: emits `fti_drift`, which schedules the training pipeline, only when a feature
crossed `FTI_DRIFT_PSI_THRESHOLD` on each of the last `FTI_DRIFT_PERSIST_DAYS` scored days.
**performance**: emits `fti_performance` (training runs on it too) when the live model's rolling
realised ROC AUC (`FTI_PERFORMANCE_WINDOW_DAYS` labelled days) is more than
`FTI_PERFORMANCE_ALARM_MARGIN` below the ROC AUC its gate promised.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from fti.ground.assets import DRIFT, FEATURES, MODEL, PERFORMANCE
from fti.ground.settings import get_settings

SETTINGS = get_settings()


@dag(
    dag_id="inference_pipeline",
    schedule=(MODEL | FEATURES),
    start_date=pendulum.datetime(2013, 1, 1, tz=SETTINGS.timezone),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Manual runs: the day to score (default: the day after the latest "
            "published day). Runs started by an asset event score the day after the one it names.",
        )
    },
    tags=["fti", "inference-pipeline", "bentoml", "monitoring"],
    doc_md=__doc__,
)
def inference_pipeline():
    """The inference pipeline: deploy, score the next day, monitor (see the module docstring)."""

    @task
    def deploy() -> dict:
        """The champion as the live service (health-gated, rolled back on failure)."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from serving import pipeline
        from serving.model import NoModel
        from serving.rollout import RolloutFailed

        try:
            return pipeline.deploy()
        except NoModel as err:  # nothing promoted yet: nothing to serve or score, not a failure
            raise AirflowSkipException(str(err)) from err
        except RolloutFailed as err:  # rolled back already; a retry would not change it
            raise AirflowFailException(str(err)) from err

    @task
    def score_next_day(run_id=None, triggering_asset_events=None, params=None) -> dict:
        """Batch predictions for the day after the one the triggering event names, validated,
        published per day."""
        from fti.ground import runs
        from serving import pipeline

        after = runs.latest_day(
            triggering_asset_events, {FEATURES: "last_day", MODEL: "trained_through"}
        )
        day = runs.requested_day(params, "day") if after is None else pipeline.next_day(after)
        return runs.fail_fast(pipeline.score_next_day)(run_id, day=day)

    @task
    def monitor(scored: dict, run_id=None) -> dict:
        """Drift and realised accuracy; the report's path is in the log."""
        from serving import pipeline

        return pipeline.monitor(scored, run_id)

    def _alarm(result: dict, kind: str) -> dict:
        return ((result.get("alarms") or {}).get(kind)) or {"alarm": False, "why": "not checked"}

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def drifted(result: dict) -> bool:
        """Go on only when features drifted past the threshold for days in a row."""
        verdict = _alarm(result, "drift")
        if result.get("drifted"):
            print(f"drift on {result['day']}: {', '.join(result['drifted'])}")
        print(("DRIFT ALARM: " if verdict["alarm"] else "no drift alarm: ") + verdict["why"])
        return bool(verdict["alarm"])

    @task(outlets=[DRIFT])
    def drift(result: dict, outlet_events=None) -> str:
        """Emit the drift asset naming the day: the training pipeline runs on it."""
        from serving import pipeline

        why = _alarm(result, "drift")["why"]
        outlet_events[DRIFT].extra = {
            "day": result["day"],
            # the day's features are as of its start: the labels are published through the day before
            "features_through": pipeline.previous_day(result["day"]).isoformat(),
            "why": why,
        }
        return why

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def underperformed(result: dict) -> bool:
        """Go on only when the live model's rolling ROC AUC fell below its promise."""
        verdict = _alarm(result, "performance")
        print(
            ("PERFORMANCE ALARM: " if verdict["alarm"] else "no performance alarm: ")
            + verdict["why"]
        )
        return bool(verdict["alarm"])

    @task(outlets=[PERFORMANCE])
    def performance(result: dict, outlet_events=None) -> str:
        """Emit the performance asset: the training pipeline runs on it."""
        from serving import pipeline

        why = _alarm(result, "performance")["why"]
        outlet_events[PERFORMANCE].extra = {
            "day": result["day"],
            "features_through": pipeline.previous_day(result["day"]).isoformat(),
            "why": why,
        }
        return why

    deployed = deploy()
    scored = score_next_day()
    deployed >> scored
    result = monitor(scored)
    drifted(result) >> drift(result)
    underperformed(result) >> performance(result)


inference_pipeline_dag = inference_pipeline()

if __name__ == "__main__":
    inference_pipeline_dag.test()
