"""
### Inference pipeline

Runs when a model is promoted (the `fti_model` asset), when the feature pipeline publishes a
day (`fti_features`), or by hand.
**deploy**: builds a Bento for the MLflow champion and makes it the live service (embedded
default: the local service on port 3000, gated on `/readyz` and a smoke prediction, rolled back
to the previous Bento if either fails; `FTI_SERVING_RUNTIME=kubernetes`: Deployment and Service
manifests, validated). Nothing happens when the champion is already live.
**score_next_day**: the flights scheduled for the day after the latest published day, with
offline features as of that day's start, validated (Great Expectations) and published as the
day's predictions partition. **monitor**: feature and prediction drift (PSI) against the
champion's training set, realised accuracy once labels land, an HTML report per day.
**drift**: emits `fti_drift`, which schedules the training pipeline, only when a feature
crossed `FTI_DRIFT_PSI_THRESHOLD`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from fti.assets import DRIFT, FEATURES, MODEL
from fti.settings import get_settings

SETTINGS = get_settings()


@dag(
    dag_id="inference_pipeline",
    schedule=(MODEL | FEATURES),
    start_date=pendulum.datetime(2013, 1, 1, tz=SETTINGS.timezone),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["fti", "inference-pipeline", "bentoml", "monitoring"],
    doc_md=__doc__,
)
def inference_pipeline():
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
    def score_next_day() -> dict:
        """Batch predictions for the next day, validated, published per day."""
        from airflow.sdk.exceptions import AirflowFailException

        from fti.validation import ValidationFailed
        from serving import pipeline

        try:
            return pipeline.score_next_day(get_current_context()["run_id"])
        except ValidationFailed as err:
            raise AirflowFailException(str(err)) from err

    @task
    def monitor(scored: dict) -> dict:
        """Drift and realised accuracy; the report's path is in the log."""
        from serving import pipeline

        return pipeline.monitor(scored, get_current_context()["run_id"])

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def drifted(result: dict) -> bool:
        """Go on only when a feature drifted past the threshold."""
        if result.get("drifted"):
            print(f"DRIFT on {result['day']}: {', '.join(result['drifted'])} above PSI "
                  f"{SETTINGS.drift_psi_threshold}; emitting fti_drift to retrain")
            return True
        print(f"no drift on {result.get('day')} (PSI threshold {SETTINGS.drift_psi_threshold})")
        return False

    @task(outlets=[DRIFT])
    def drift(result: dict) -> str:
        """Emit the drift asset: the training pipeline runs on it."""
        return f"{result['day']}: {', '.join(result['drifted'])}"

    deployed = deploy()
    scored = score_next_day()
    deployed >> scored
    result = monitor(scored)
    drifted(result) >> drift(result)


inference_pipeline_dag = inference_pipeline()

if __name__ == "__main__":
    inference_pipeline_dag.test()
