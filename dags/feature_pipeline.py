"""
### Feature pipeline

Replays NYC flights 2013 one local day per run: **land** the day's raw partitions,
**validate** them (Great Expectations), compute the feature views with **Spark**, validate the
staged features, **publish** them to the offline store (one file per day, replaced atomically),
`feast apply`, and **materialize** the day to the online store. On success it emits the
`fti_features` asset that schedules the training pipeline.

A failed validation fails its task and nothing downstream runs: no partition is published, no
value materialized, no asset event. Each validation's HTML report is kept under
`.fti/reports/validation/<boundary>/<table>/<day>/<run_id>/report.html`.

Runs go in date order (`max_active_runs=1`): the delay-history features of a day read the
28 days before it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from fti.assets import FEATURES
from fti.settings import get_settings
from fti.timetables import DailyReplayTimetable

SETTINGS = get_settings()
TZ = SETTINGS.timezone
FIRST, LAST = SETTINGS.first_day, SETTINGS.last_day


def _validated(check, *args):
    """Run a validation; a failure fails the task at once (retrying cannot fix the data)."""
    from airflow.sdk.exceptions import AirflowFailException

    from fti.validation import ValidationFailed

    try:
        return check(*args)
    except ValidationFailed as err:
        raise AirflowFailException(str(err)) from err


def _interval():
    ctx = get_current_context()
    return ctx["data_interval_start"], ctx["data_interval_end"], ctx["run_id"]


@dag(
    dag_id="feature_pipeline",
    schedule=DailyReplayTimetable("0 0 * * *", timezone=TZ),
    start_date=pendulum.datetime(FIRST.year, FIRST.month, FIRST.day, tz=TZ),
    end_date=pendulum.datetime(LAST.year, LAST.month, LAST.day, 23, 59, tz=TZ),
    # unpaused, Airflow replays 2013 day after day from the last run, as if it were arriving
    catchup=SETTINGS.feature_catchup,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20)},
    tags=["fti", "feature-pipeline", "spark", "feast", "great-expectations"],
    doc_md=__doc__,
)
def feature_pipeline():
    @task
    def land() -> dict:
        """Write the interval's raw flights, weather and planes as date partitions."""
        from feature_repo.jobs import pipeline

        start, end, _ = _interval()
        return pipeline.land_interval(start, end)

    @task
    def validate_raw(landed: dict) -> dict:
        """Great Expectations on the raw partitions: schema, types, ranges, nulls, keys."""
        from feature_repo.jobs import pipeline

        start, end, run_id = _interval()
        return _validated(pipeline.validate_raw, start, end, run_id)

    @task
    def compute_features(raw_ok: dict) -> dict:
        """The Spark job: feature views for the interval, written to a staging folder."""
        from feature_repo.jobs import pipeline

        start, end, _ = _interval()
        return pipeline.compute(start, end)

    @task
    def validate_features(staged: dict) -> dict:
        """Great Expectations on the staged features, before anything is published."""
        from feature_repo.jobs import pipeline

        start, end, run_id = _interval()
        result = _validated(pipeline.validate_features, start, end, staged["staging"], run_id)
        return {**result, "staging": staged["staging"], "rows": staged["rows"]}

    @task
    def publish(checked: dict) -> dict:
        """Replace the interval's partitions in the offline store."""
        from feature_repo.jobs import pipeline

        start, end, _ = _interval()
        return pipeline.publish(start, end, checked["staging"])

    @task
    def feast_apply(published: dict) -> str:
        """`feast apply` of feature_repo/ (idempotent)."""
        from feature_repo.jobs import pipeline

        return pipeline.apply_registry()

    @task(outlets=[FEATURES])
    def materialize(applied: str) -> dict:
        """Load the interval into the online store and emit the features asset."""
        from feature_repo.jobs import pipeline

        start, end, _ = _interval()
        return pipeline.materialize(start, end)

    materialize(feast_apply(publish(validate_features(compute_features(validate_raw(land()))))))


feature_pipeline_dag = feature_pipeline()

if __name__ == "__main__":
    feature_pipeline_dag.test()
