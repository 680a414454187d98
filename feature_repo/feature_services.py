"""Feature services, named after the model version they feed."""

from entities import OWNER
from feast import FeatureService
from feature_views import (
    carrier_delay_history,
    origin_weather_hourly,
    plane_attributes,
    route_delay_history,
)
from on_demand_features import departure_time_features

flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    features=[
        origin_weather_hourly,
        carrier_delay_history,
        route_delay_history,
        plane_attributes,
        departure_time_features,
    ],
    description="Everything the departure-delay model v1 reads: weather at the origin, carrier "
    "and route delay history, plane attributes and the departure's local time.",
    owner=OWNER,
    tags={"model": "flight_delay", "version": "v1"},
)
