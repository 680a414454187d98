"""
### Feature pipeline

Replays NYC flights 2013 one local day per run, in three tasks:

- **land**: the day's raw partitions, checked (Great Expectations) before anything reads them;
- **compute_features**: the feature views with **Spark** (a client of the warm Spark Connect
  server when `FTI_SPARK_REMOTE` is set), written to a staging folder and checked there;
- **publish**: the checked partitions into the offline store (one file per day, replaced
  atomically), `feast apply` when the declarations changed, the day into the online store, and
  the `fti_features` asset, whose event names the day published (`first_day`, `last_day`): the
  training and inference pipelines run on it and work on that day.

A failed check fails its task at once and nothing downstream runs: no partition is published,
no value materialized, no asset event. The day is quarantined (its raw partitions moved to
`quarantine/<table>/date=<day>/<run>/` with its reports) and the runs of the days after it
wait in **land** (up for reschedule, its log says why) until
`python -m fti redeliver --day <day>` has run the corrected day through. Each check's HTML report is kept under
`.fti/reports/validation/<boundary>/<table>/<day>/<run_id>/report.html`. A Spark server that
does not answer fails `compute_features` naming it, and Airflow retries.

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
    def land(data_interval_start=None, data_interval_end=None, run_id=None, dag_run=None) -> dict:
        """Land the day's raw flights, weather and planes and check them (Great Expectations:
        schema, types, ranges, nulls, keys, reference tables, domain rules, the day against
        its history); a day that halts is quarantined and goes no further, and the days after
        it wait here (rescheduled) until it is re-delivered."""
        from feature_repo.jobs import pipeline
        from feature_repo.jobs.quarantine import DayWaits
        from fti.ground.runs import fail_fast, wait_or_fail

        try:
            landed = pipeline.land_interval(data_interval_start, data_interval_end)
        except DayWaits as err:
            raise wait_or_fail(err, dag_run.conf, SETTINGS.quarantine_poll_s) from err
        checked = fail_fast(pipeline.validate_raw)(data_interval_start, data_interval_end, run_id)
        return {"landed": {t: len(p) for t, p in landed.items()}, "raw": checked}

    @task
    def compute_features(
        landed: dict, data_interval_start=None, data_interval_end=None, run_id=None
    ) -> dict:
        """The Spark job: the feature views of the day, staged and checked before publishing."""
        from feature_repo.jobs import pipeline
        from fti.ground.runs import fail_fast

        staged = fail_fast(pipeline.compute)(data_interval_start, data_interval_end)
        checked = fail_fast(pipeline.validate_features)(
            data_interval_start, data_interval_end, staged["staging"], run_id
        )
        return {
            **checked,
            "staging": staged["staging"],
            "rows": staged["rows"],
            "seconds": staged["seconds"],
        }

    @task(outlets=[FEATURES])
    def publish(
        checked: dict, data_interval_start=None, data_interval_end=None, outlet_events=None
    ) -> dict:
        """The checked partitions into the offline store, then the online store; emit the
        features asset naming the day."""
        from feature_repo.jobs import pipeline
        from fti.ground.runs import published

        offline = pipeline.publish(data_interval_start, data_interval_end, checked["staging"])
        applied = pipeline.apply_registry()
        online = pipeline.materialize(data_interval_start, data_interval_end)
        # the event says which days it published: training and inference read it
        outlet_events[FEATURES].extra = published(data_interval_start, data_interval_end, TZ)
        return {"offline": offline, "applied": applied.splitlines()[-1:], "online": online}

    landed = land()
    checked = compute_features(landed)
    publish(checked)


feature_pipeline_dag = feature_pipeline()

if __name__ == "__main__":
    feature_pipeline_dag.test()
