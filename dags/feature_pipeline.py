"""
### Feature pipeline

Replays NYC flights 2013 one local day per run: **land** the day's raw partitions,
**validate** them (Great Expectations), compute the feature views with **Spark**, validate the
staged features, **publish** them to the offline store (one file per day, replaced atomically),
`feast apply`, and **materialize** the day to the online store. On success it emits the
`fti_features` asset, whose event names the day published (`first_day`, `last_day`): the
training and inference pipelines run on it and work on that day.

A failed validation fails its task and nothing downstream runs: no partition is published, no
value materialized, no asset event. Each validation's HTML report is kept under
`.fti/reports/validation/<boundary>/<table>/<day>/<run_id>/report.html`.

Runs go in date order (`max_active_runs=1`): the delay-history features of a day read the
28 days before it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from fti.ground.assets import FEATURES
from fti.ground.settings import get_settings
from fti.ground.timetables import DailyReplayTimetable

SETTINGS = get_settings()
TZ = SETTINGS.timezone
FIRST, LAST = SETTINGS.first_day, SETTINGS.last_day


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
    """The feature pipeline: one local day of 2013 per run (the module docstring says more)."""

    @task
    def land(data_interval_start=None, data_interval_end=None) -> dict:
        """Write the interval's raw flights, weather and planes as date partitions."""
        from feature_repo.jobs import pipeline

        return pipeline.land_interval(data_interval_start, data_interval_end)

    @task
    def validate_raw(
        landed: dict, data_interval_start=None, data_interval_end=None, run_id=None
    ) -> dict:
        """Great Expectations on the raw partitions: schema, types, ranges, nulls, keys."""
        from feature_repo.jobs import pipeline
        from fti.ground.runs import fail_fast

        return fail_fast(pipeline.validate_raw)(data_interval_start, data_interval_end, run_id)

    @task
    def compute_features(raw_ok: dict, data_interval_start=None, data_interval_end=None) -> dict:
        """The Spark job: feature views for the interval, written to a staging folder."""
        from feature_repo.jobs import pipeline
        from fti.ground.runs import fail_fast

        return fail_fast(pipeline.compute)(data_interval_start, data_interval_end)

    @task
    def validate_features(
        staged: dict, data_interval_start=None, data_interval_end=None, run_id=None
    ) -> dict:
        """Great Expectations on the staged features, before anything is published."""
        from feature_repo.jobs import pipeline
        from fti.ground.runs import fail_fast

        result = fail_fast(pipeline.validate_features)(
            data_interval_start, data_interval_end, staged["staging"], run_id
        )
        return {**result, "staging": staged["staging"], "rows": staged["rows"]}

    @task
    def publish(checked: dict, data_interval_start=None, data_interval_end=None) -> dict:
        """Replace the interval's partitions in the offline store."""
        from feature_repo.jobs import pipeline

        return pipeline.publish(data_interval_start, data_interval_end, checked["staging"])

    @task
    def feast_apply(published: dict) -> str:
        """`feast apply` of feature_repo/ (idempotent)."""
        from feature_repo.jobs import pipeline

        return pipeline.apply_registry()

    @task(outlets=[FEATURES])
    def materialize(
        applied: str, data_interval_start=None, data_interval_end=None, outlet_events=None
    ) -> dict:
        """Load the interval into the online store; emit the features asset naming its days."""
        from feature_repo.jobs import pipeline
        from fti.ground.runs import published

        counts = pipeline.materialize(data_interval_start, data_interval_end)
        # the event says which days it published: training and inference read it
        outlet_events[FEATURES].extra = published(data_interval_start, data_interval_end, TZ)
        return counts

    landed = land()
    raw_ok = validate_raw(landed)
    staged = compute_features(raw_ok)
    checked = validate_features(staged)
    published_ = publish(checked)
    applied = feast_apply(published_)
    materialize(applied)


feature_pipeline_dag = feature_pipeline()

if __name__ == "__main__":
    feature_pipeline_dag.test()
