"""Offline sources: the date-partitioned parquet folders the Spark job publishes.

The location comes from the platform settings (``FTI_DATA_ROOT``), so the same declarations
serve a laptop and shared storage.
"""

from feast import FileSource
from feast.data_format import ParquetFormat

from fti.ground.settings import get_settings

OFFLINE = get_settings().offline_dir


def batch_source(view: str) -> FileSource:
    """The offline source of batch view ``view``: its folder of day partitions."""
    return FileSource(
        name=f"{view}_source",
        path=str(OFFLINE / view),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        description=f"{view}: parquet, one file per local day under date=YYYY-MM-DD/.",
        owner="ml-platform@example.com",
        tags={"pipeline": "feature"},
    )


weather_source = batch_source("origin_weather_hourly")
carrier_history_source = batch_source("carrier_delay_history")
route_history_source = batch_source("route_delay_history")
plane_source = batch_source("plane_attributes")
label_source = batch_source("flight_labels")
