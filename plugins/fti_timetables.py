"""Registers the platform's timetables with Airflow (custom timetables must come from a plugin)."""

from airflow.plugins_manager import AirflowPlugin

from fti.ground.timetables import DailyReplayTimetable


class FtiTimetablesPlugin(AirflowPlugin):
    """Registers ``DailyReplayTimetable``."""

    name = "fti_timetables"
    timetables = [DailyReplayTimetable]
