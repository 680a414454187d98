"""The feature pipeline's schedule: one local day per run.

Scheduled runs and backfills are those of ``CronDataIntervalTimetable`` (a run with logical date
D covers local day D). Airflow's default for a manual run at time T is the *last complete*
interval before T, so ``airflow dags test feature_pipeline 2013-01-05`` would process January 4;
here a manual run at T processes the day that contains T, the same day a backfill of D does.
Registered by ``plugins/fti_timetables.py``. Airflow's default time zone is set to the data
set's (``fti.ground.airflow_env``), so a bare date on the command line is that local midnight.
"""

from __future__ import annotations

from airflow.timetables.base import DataInterval
from airflow.timetables.interval import CronDataIntervalTimetable


class DailyReplayTimetable(CronDataIntervalTimetable):
    """Daily intervals at local midnight; a manual run covers the day that contains it."""

    description = "daily, local midnight (manual runs cover their own day)"

    def infer_manual_data_interval(self, *, run_after) -> DataInterval:
        """The local day that contains ``run_after``."""
        start = self._align_to_prev(run_after)
        return DataInterval(start=start, end=self._get_next(start))
