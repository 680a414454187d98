"""Registers the platform's timetables with Airflow (custom timetables must come from a plugin)."""

from airflow.plugins_manager import AirflowPlugin

from fti.timetables import DailyReplayTimetable


class FtiTimetablesPlugin(AirflowPlugin):
    name = "fti_timetables"
    timetables = [DailyReplayTimetable]
