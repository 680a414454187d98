"""Offline sources: the date-partitioned parquet folders the Spark job publishes.

The location comes from the platform settings (``FTI_DATA_ROOT``), so the same declarations
serve a laptop and shared storage.
"""

from feast import FileSource
from feast.data_format import ParquetFormat

from fti.settings import get_settings

OFFLINE = get_settings().offline_dir


def _source(view: str) -> FileSource:
    return FileSource(
        name=f"{view}_source",
        path=str(OFFLINE / view),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        description=f"{view}: parquet, one file per local day under date=YYYY-MM-DD/.",
        owner="ml-platform@example.com",
        tags={"pipeline": "feature"},
    )


weather_source = _source("origin_weather_hourly")
carrier_history_source = _source("carrier_delay_history")
route_history_source = _source("route_delay_history")
plane_source = _source("plane_attributes")
label_source = _source("flight_labels")
