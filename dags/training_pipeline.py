"""
### Training pipeline

Scheduled on the feature pipeline's `fti_features`, the inference pipeline's sustained drift
(`fti_drift`) and performance alarm (`fti_performance`) assets, and by hand.
**trigger**: why this run trains (`training/triggers.py`): a performance alarm, sustained drift,
the weekly schedule (`FTI_TRAINING_EVERY_DAYS` data days past the last training's data) or a
manual run; a feature day alone inside the week is skipped, saying when training is due.
**build_training_set**: every departed flight up to the day the triggering event published
(a manual run: its `through` parameter, else the latest published day), joined
point-in-time to `flight_delay_v1`, validated (Great Expectations), split by time and saved with
its content hash. **train**: `python -m training train` as a local process (embedded default)
or in a GPU pod through the KubernetesPodOperator (`FTI_TRAINING_RUNTIME=kubernetes`).
**evaluate**: the candidate, a gradient-boosting baseline and the current champion on the same
test window; every model version is registered in MLflow with the decision and its numbers, and
only a promoted one moves the `champion` alias and emits `fti_model` (one that passes every
threshold but the champion margin becomes the shadow `challenger`). The version records its
trigger.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from fti.ground.assets import DRIFT, FEATURES, MODEL, PERFORMANCE
from fti.ground.settings import get_settings

SETTINGS = get_settings()


@dag(
    dag_id="training_pipeline",
    # new features (trained weekly), or the inference pipeline's alarms (trained at once)
    schedule=(FEATURES | DRIFT | PERFORMANCE),
    start_date=pendulum.datetime(2013, 1, 1, tz=SETTINGS.timezone),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "through": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Manual runs: train on the days up to this one (default: the latest "
            "published day). Runs started by an asset event train through the day it names.",
        )
    },
    tags=["fti", "training-pipeline", "pytorch", "mlflow"],
    doc_md=__doc__,
)
def training_pipeline():
    """The training pipeline: training set, training, gate (see the module docstring)."""

    @task
    def trigger(triggering_asset_events=None, params=None) -> dict:
        """Why this run trains; skipped (with everything after it) when nothing calls for it."""
        from airflow.sdk.exceptions import AirflowSkipException

        from training import triggers

        decided = triggers.decide(triggering_asset_events, params)
        print(f"trigger: {decided.reason or 'none'}: {decided.why}")
        if decided.reason is None:
            raise AirflowSkipException(f"no training: {decided.why}")
        return decided.as_dict()

    @task
    def build_training_set(why: dict, run_id=None) -> dict:
        """Point-in-time training set, validated and saved as a hashed snapshot."""
        from fti.ground import runs
        from training import pipeline

        through = runs.requested_day(why, "through")
        return runs.fail_fast(pipeline.build_training_set)(
            run_id, through=through, trigger=why["reason"]
        )

    built = build_training_set(trigger())
    if SETTINGS.training_runtime == "kubernetes":
        from training.pipeline import training_pod_operator

        trained = training_pod_operator("train", SETTINGS)
        built >> trained
        trained_output = trained.output
    else:

        @task
        def train(built: dict, run_id=None) -> dict:
            """The training entry point as a local process."""
            from training import pipeline

            return pipeline.train_local(built["snapshot"], run_id)

        trained_output = train(built)

    @task
    def evaluate(built: dict, trained: dict) -> dict:
        """Baseline and champion on the same window, the gate, and the MLflow registry."""
        from training import pipeline

        return pipeline.evaluate(built, trained)

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def promoted(result: dict) -> bool:
        """Go on only when the gate promoted the candidate; the log says why not otherwise."""
        print(result["decision"])
        return bool(result["promote"])

    @task(outlets=[MODEL])
    def publish_model(result: dict, outlet_events=None) -> str:
        """Emit the model asset for the inference pipeline, naming the version and its data."""
        outlet_events[MODEL].extra = {
            "version": str(result["version"]),
            "trained_through": result["through"],
        }
        return f"models:/{SETTINGS.model_name}@champion (version {result['version']})"

    result = evaluate(built, trained_output)
    promoted(result) >> publish_model(result)


training_pipeline_dag = training_pipeline()

if __name__ == "__main__":
    training_pipeline_dag.test()
