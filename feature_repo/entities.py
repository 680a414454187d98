"""Entities: what the features describe."""

from feast import Entity, ValueType

OWNER = "ml-platform@example.com"

carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="Airline, by its two-letter IATA code (e.g. UA).",
    owner=OWNER,
    tags={"domain": "flights"},
)
origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="Departure airport, by FAA code (EWR, JFK or LGA in the data set).",
    owner=OWNER,
    tags={"domain": "flights"},
)
dest = Entity(
    name="dest",
    join_keys=["dest"],
    value_type=ValueType.STRING,
    description="Destination airport, by FAA code.",
    owner=OWNER,
    tags={"domain": "flights"},
)
tailnum = Entity(
    name="tailnum",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="Plane, by its tail number (e.g. N14228).",
    owner=OWNER,
    tags={"domain": "flights"},
)
flight = Entity(
    name="flight",
    join_keys=["flight_id"],
    value_type=ValueType.STRING,
    description="One scheduled departure: 'YYYYMMDD-<carrier><number>-<origin>-<hhmm>' in local time.",
    owner=OWNER,
    # the key's one definition: a %-format and the fields it takes (the scheduled departure's
    # local date and time, as the raw flights table has them); fti.ground.contract reads it
    tags={
        "domain": "flights",
        "key_format": "%04d%02d%02d-%s%d-%s-%02d%02d",
        "key_fields": "year,month,day,carrier,flight,origin,hour,minute",
    },
)
