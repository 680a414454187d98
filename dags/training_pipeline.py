"""
### Training pipeline

Runs when the feature pipeline publishes (the `fti_features` asset), when the inference
pipeline reports drift (`fti_drift`), or by hand.
**build_training_set**: every departed flight up to the latest published day, joined
point-in-time to `flight_delay_v1`, validated (Great Expectations), split by time and saved with
its content hash. **train**: `python -m training train` as a local process (embedded default)
or in a GPU pod through the KubernetesPodOperator (`FTI_TRAINING_RUNTIME=kubernetes`).
**evaluate**: the candidate, a gradient-boosting baseline and the current champion on the same
test window; every model version is registered in MLflow with the decision and its numbers, and
only a promoted one moves the `champion` alias and emits `fti_model`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from fti.assets import DRIFT, FEATURES, MODEL
from fti.settings import get_settings

SETTINGS = get_settings()


@dag(
    dag_id="training_pipeline",
    # new features, or the inference pipeline saw the inputs drift from the training set
    schedule=(FEATURES | DRIFT),
    start_date=pendulum.datetime(2013, 1, 1, tz=SETTINGS.timezone),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["fti", "training-pipeline", "pytorch", "mlflow"],
    doc_md=__doc__,
)
def training_pipeline():
    @task
    def build_training_set() -> dict:
        """Point-in-time training set, validated and saved as a hashed snapshot."""
        from airflow.sdk.exceptions import AirflowFailException

        from fti.validation import ValidationFailed
        from training import pipeline

        try:
            return pipeline.build_training_set(get_current_context()["run_id"])
        except ValidationFailed as err:
            raise AirflowFailException(str(err)) from err

    built = build_training_set()
    if SETTINGS.training_runtime == "kubernetes":
        from training.pipeline import training_pod_operator

        trained = training_pod_operator("train", SETTINGS)
        built >> trained
        trained_output = trained.output
    else:

        @task
        def train(built: dict) -> dict:
            """The training entry point as a local process."""
            from training import pipeline

            return pipeline.train_local(built["snapshot"], get_current_context()["run_id"])

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
    def publish_model(result: dict) -> str:
        """Emit the model asset for the inference pipeline."""
        return f"models:/{SETTINGS.model_name}@champion (version {result['version']})"

    result = evaluate(built, trained_output)
    promoted(result) >> publish_model(result)


training_pipeline_dag = training_pipeline()

if __name__ == "__main__":
    training_pipeline_dag.test()
