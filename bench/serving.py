"""Benchmark of online serving: prints figures, asserts nothing.

What it measures, in one run, against its own throwaway state (a fresh
``tempfile.mkdtemp(prefix="fti-bench-serving-")`` as ``FTI_HOME``; ``--home DIR`` uses DIR and
keeps it) and, for the Redis half, its own throwaway ``redis-server`` on a free loopback port
(``--save '' --appendonly no``, stopped at the end; the shared Redis is never touched):

0. **State to serve**, built by the project's own code in a child process (so that the JVM and
   torch are gone before anything is timed): the feature pipeline's steps for the local days
   ``--first..--last`` (default 2013-01-01..2013-01-07) as one interval (``land_interval``,
   ``compute``, ``publish``, ``apply_registry``, ``materialize``; validation skipped), the
   interval materialized into the SQLite online store and into the throwaway Redis; a training
   set (``load_spine`` + ``point_in_time_join`` + ``time_split``: the last day tests, the one
   before validates) and a model (``training.train.train(snapshot, out, epochs=--epochs)``).
   The flights requested are the real departed flights of the last day (its ``flight_labels``
   partition: carrier, flight, origin, dest, tailnum, sched_dep_ts as local ISO time without
   offset), flights without a tail number left out.

1. **Load, per online store** (``sqlite``, then ``redis``). Two servers run side by side on the
   same feature repo, registry and online store, started as users start them:

   * *ours*: ``bentoml serve serving.service:FlightDelayService`` (as ``tests/serving/conftest.py``
     starts it: ``FTI_HOME``, ``FTI_SERVING_MODEL_DIR``, ``BENTOML_HOME`` under the home,
     ``BENTOML_DO_NOT_TRACK=true``, ``OMP_NUM_THREADS=1``; ``FTI_ONLINE_STORE`` and
     ``FTI_REDIS_CONNECTION_STRING`` for Redis), answering ``POST /predict``: validation,
     the online lookup, the on-demand features, the model and the answer;
   * *feast*: Feast's own feature server, ``feast -c feature_repo -f <yaml> serve`` with the
     yaml of ``fti.ground.featurestore.write_yaml`` for that store, ``--workers 1 --no-access-log
     --max-requests 0`` (by default gunicorn recycles its worker every ~1,000 requests, a
     stall of seconds that would flatter ours), answering ``POST /get-online-features`` for
     feature service ``flight_delay_v1`` with the same entities (carrier, origin, dest, tailnum)
     and the request-data field ``sched_dep_ts`` (ISO time with offset) its on-demand view
     reads: the lookup alone, no model.

   Every cell is a batch size (``--batch``, default 1 and 64 flights per request; 1 is a flight
   object, more a JSON list, the same flights in the same order for both servers) times a
   concurrency (``--concurrency``, default 1 and 16 keep-alive connections, each sending its
   next request as soon as the answer arrived: a closed loop). Bodies are built beforehand and
   cycled: single flights one after another over the day, batches as windows of the day's
   flights starting every 16 flights. Each cell is ``--warmup`` seconds of requests (not
   counted) then ``--duration`` seconds timed, split into ``--rounds`` slices (default 5) that
   alternate between the servers (ours feast, feast ours, ...): the load of a shared machine
   drifts within seconds, and slices make both servers meet the same drift. Reported per
   cell: requests, p50/p95/p99 latency (client side: from writing the request to reading the
   whole answer, so it includes HTTP, JSON and the client's own turn on the event loop),
   requests/s and flights/s over the timed window, non-200 answers, and the ratio of p99s
   ours/feast (the project's target: <= 1.0 at every batch size: the full prediction no
   slower at p99 than Feast's server doing the lookup alone). For ours also the mean inside
   the app per request (the ``fti_predict_latency_seconds`` histogram of ``/metrics``,
   scraped before and after the cell, warm-up included), so that the time spent outside the
   handler shows.

   The load generator is this process: stdlib ``asyncio`` (uvloop when installed), a minimal
   HTTP/1.1 client over raw streams, with the garbage collector off during a cell. Client,
   servers and Redis share the machine's cores.

1b. **Switches and the inference log** (``--skip-switch`` leaves it out; SQLite store): three
   more servers of ours, the inference log on (the default), off, and on with a shadow
   challenger (a copy of the model, scored by the log's writer), alternating slices at one
   flight and one connection: p99 with the log against without (the target: at most 1 ms
   added), and with the challenger. Then, on the log-on server at ``--switch-concurrency`` connections (4): a steady
   phase of ``--duration`` seconds, then 24 s of the same load during which ``POST
   /admin/model`` switches to a copy of the model (a rollout), to a copy with NaN weights (a
   rollout its check refuses) and back (a rollback): failed requests, and p50/p99 during the
   switches next to the steady phase.

2. **In-process breakdown** (a child process per store, ``--skip-breakdown`` leaves it out):
   the median time of each part of ``/predict`` called as plain Python, for 1 and 64 flights:
   request validation (``PredictRequest.model_validate_json``), the online lookup
   (``serving.features._lookup``: Feast's ``get_online_features`` with the resolved feature
   list), the flights frame and the on-demand transformation, the whole ``online_features``
   (those plus the TTL rule and the frame), ``predict_proba`` (the preprocessing and the
   torch forward pass, also timed apart), the service's ``predict`` method on the validated request (all of the
   above but validation, plus building the answers), the JSON encoding of the answers, and
   for comparison Feast's in-process ``get_online_features`` with the feature *service* and
   request data plus ``to_dict()`` (what ``feast serve`` does per request, minus HTTP).

Run it (from the repository root)::

    .venv/bin/python bench/serving.py                       # about 6-8 minutes on 2 cores
    .venv/bin/python bench/serving.py --json /tmp/serving.json
    .venv/bin/python bench/serving.py --quick               # smoke test: 2 s cells

Options: ``--first``/``--last`` (days prepared), ``--epochs``, ``--stores sqlite,redis``,
``--batch 1,64``, ``--concurrency 1,16``, ``--duration S``, ``--warmup S``,
``--skip-breakdown``, ``--home DIR``, ``--keep``, ``--json PATH``. Every process it starts
(redis-server, ``bentoml serve``, ``feast serve``, the children) is stopped at the end, on
errors too. Figures go into docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on sys.path, where this module would shadow
# the project's ``serving`` package: the repository root instead
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
FEATURE_SERVICE = "flight_delay_v1"
TAILNUM = re.compile(r"^[A-Z0-9]{2,8}$")  # what the service's Flight model accepts
BATCH_STRIDE = 16

#: state locations a caller may have set for their own .fti; the benchmark's state is its own
_LOCATION_VARS = (
    "FTI_DATA_ROOT",
    "FTI_FEAST_REGISTRY",
    "FTI_AIRFLOW_HOME",
    "FTI_AIRFLOW_DATABASE_URL",
    "FTI_SERVING_MODEL_DIR",
    "FTI_ONLINE_STORE",
    "FTI_REDIS_CONNECTION_STRING",
    "FTI_SOURCE_DIR",
)


# --------------------------------------------------------------------------- options


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/serving.py",
        description="Online serving benchmark: /predict of the BentoML service next to Feast's "
        "feature server, SQLite and Redis online stores. Prints figures; asserts nothing.",
    )
    p.add_argument(
        "--first",
        type=date.fromisoformat,
        default=date(2013, 1, 1),
        help="first day prepared (default %(default)s)",
    )
    p.add_argument(
        "--last",
        type=date.fromisoformat,
        default=date(2013, 1, 7),
        help="last day prepared; its flights are requested (default %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=2, help="training epochs (default 2)")
    p.add_argument("--stores", default="sqlite,redis", help="online stores (default sqlite,redis)")
    p.add_argument(
        "--batch", type=_csv_ints, default=None, help="flights per request (default 1,64)"
    )
    p.add_argument(
        "--concurrency", type=_csv_ints, default=None, help="connections in flight (default 1,16)"
    )
    p.add_argument(
        "--duration", type=float, default=None, help="timed seconds per cell (default 10)"
    )
    p.add_argument(
        "--warmup", type=float, default=None, help="warm-up seconds per cell (default 2)"
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 2 s cells, 0.5 s warm-up")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating slices per cell (default 5; --quick 2)",
    )
    p.add_argument(
        "--skip-breakdown", action="store_true", help="leave out the in-process breakdown"
    )
    p.add_argument(
        "--home",
        type=Path,
        default=None,
        help="FTI_HOME to use (kept); default: a fresh temporary directory",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary FTI_HOME afterwards")
    p.add_argument("--skip-switch", action="store_true", help="leave out the switch + log cell")
    p.add_argument(
        "--switch-concurrency", type=int, default=4, help="connections during the switches (4)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    # internal: the child processes
    p.add_argument("--child-prepare", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-breakdown", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batch = args.batch or [1, 64]
    args.concurrency = args.concurrency or [1, 16]
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 2.0
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not set(args.stores) <= {"sqlite", "redis"}:
        p.error("--stores: sqlite and/or redis")
    if args.last < args.first:
        p.error("--last is before --first")
    return args


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_post(url: str, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Proc:
    """A process started in a session of its own; :meth:`stop` ends its whole group."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT):
        self.name, self.log = name, log
        with open(log, "w") as out:
            self.popen = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _group_exists(self) -> bool:
        try:
            os.killpg(self.popen.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the group (bentoml's and gunicorn's arbiters stop their workers), wait, then
        SIGKILL whatever of the group is left."""
        pgid = self.popen.pid
        if self._group_exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while self._group_exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._group_exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


def wait_http(proc: Proc, url: str, timeout: float = 180) -> float:
    """Seconds until GET url answers 200 (raises with the log's tail otherwise)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            status, body = http_get(url, timeout=2)
            if status == 200:
                return time.perf_counter() - t0
        except OSError:
            status, body = None, b""
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{proc.name}: {url} still {status} {body[:300]!r} after "
                f"{timeout:.0f} s:\n{proc.log_tail()}"
            )
        time.sleep(0.3)


def start_redis(folder: Path) -> tuple[Proc, int]:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    proc = Proc(
        "redis-server",
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        dict(os.environ),
        folder / "redis.log",
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            pass
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"redis-server did not start:\n{proc.log_tail()}")
        time.sleep(0.1)


def _interval(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    end = last + timedelta(days=1)
    return (
        datetime(first.year, first.month, first.day, tzinfo=zone),
        datetime(end.year, end.month, end.day, tzinfo=zone),
    )


def _child_env(
    home: Path, store: str | None = None, redis_port: int | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION_VARS}
    env.update(
        {
            "FTI_HOME": str(home),
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    if store == "redis":
        env["FTI_ONLINE_STORE"] = "redis"
        env["FTI_REDIS_CONNECTION_STRING"] = f"127.0.0.1:{redis_port}"
    elif store == "sqlite":
        env["FTI_ONLINE_STORE"] = "sqlite"
    return env


# --------------------------------------------------------------------------- 0. prepare (child)


def child_prepare(spec_path: Path) -> None:
    """Runs in a child process: features, online stores, training set, model, flights."""
    spec = json.loads(spec_path.read_text())
    home = Path(spec["home"])
    first, last = date.fromisoformat(spec["first"]), date.fromisoformat(spec["last"])
    from feature_repo.jobs import pipeline
    from fti.ground import featurestore
    from fti.ground.settings import Settings, get_settings
    from fti.ground.spark import build_session
    from serving import model as served
    from training import dataset, train

    settings = get_settings()
    start, end = _interval(first, last, settings.timezone)
    s: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        t = time.perf_counter()
        out = fn(*a, **kw)
        s[name] = round(time.perf_counter() - t, 2)
        print(f"  {name}: {s[name]:.1f} s", flush=True)
        return out

    timed("land", pipeline.land_interval, start, end, settings)
    staged = timed("spark compute", pipeline.compute, start, end, settings)
    build_session(settings).stop()
    timed("publish", pipeline.publish, start, end, staged["staging"], settings)
    timed("feast apply", pipeline.apply_registry, settings)
    online = {"sqlite": timed("materialize sqlite", pipeline.materialize, start, end, settings)}
    yamls = {"sqlite": str(featurestore.write_yaml(settings))}
    Path(yamls["sqlite"]).rename(settings.feast_dir / "feature_store.sqlite.yaml")
    yamls["sqlite"] = str(settings.feast_dir / "feature_store.sqlite.yaml")
    if spec.get("redis_port"):
        rs = Settings(
            home=home,
            online_store="redis",
            redis_connection_string=f"127.0.0.1:{spec['redis_port']}",
        )
        online["redis"] = timed("materialize redis", pipeline.materialize, start, end, rs)
        path = featurestore.write_yaml(rs)
        yamls["redis"] = str(path.rename(rs.feast_dir / "feature_store.redis.yaml"))

    t = time.perf_counter()
    spine = dataset.load_spine(settings, first=first, last=last)
    df = dataset.point_in_time_join(spine, settings)
    df["split"] = dataset.time_split(df, last, 1, 1, settings.timezone)
    snap, digest = dataset.write_snapshot(df, settings.data_dir / "training_sets")
    s["training set"] = round(time.perf_counter() - t, 2)
    print(f"  training set: {len(df)} rows in {s['training set']:.1f} s", flush=True)
    model_dir = home / "model"
    results = timed("train", train.train, snap, model_dir, epochs=spec["epochs"])
    served.write_version(model_dir, "bench")

    import pyarrow.parquet as pq

    part = settings.offline_dir / "flight_labels" / f"date={last.isoformat()}"
    labels = pq.read_table(
        part, columns=["carrier", "flight", "origin", "dest", "tailnum", "sched_dep_ts"]
    ).to_pandas()
    labels = labels.sort_values(["sched_dep_ts", "carrier", "flight"], ignore_index=True)
    local = labels["sched_dep_ts"].dt.tz_convert(settings.timezone)
    flights, skipped = [], 0
    for row, ts in zip(labels.itertuples(index=False), local, strict=True):
        if not isinstance(row.tailnum, str) or not TAILNUM.match(row.tailnum):
            skipped += 1
            continue
        flights.append(
            {
                "carrier": row.carrier,
                "flight": int(row.flight),
                "origin": row.origin,
                "dest": row.dest,
                "tailnum": row.tailnum,
                "sched_dep_ts": ts.strftime("%Y-%m-%dT%H:%M:%S"),
                "_utc_offset": ts.strftime("%z"),
            }
        )
    out = {
        "seconds": s,
        "online_entities": online,
        "yamls": yamls,
        "model_dir": str(model_dir),
        "training_rows": len(df),
        "training_splits": df["split"].value_counts().to_dict(),
        "snapshot_hash": digest,
        "test_roc_auc": results.get("test", {}).get("roc_auc"),
        "flights": flights,
        "flights_skipped": skipped,
    }
    Path(spec["out"]).write_text(json.dumps(out, default=str))


# --------------------------------------------------------------------------- request bodies


def _iso_with_offset(f: dict) -> str:
    off = f["_utc_offset"]
    return f"{f['sched_dep_ts']}{off[:3]}:{off[3:]}"


def _public(f: dict) -> dict:
    return {k: v for k, v in f.items() if not k.startswith("_")}


def build_bodies(flights: list[dict], batch: int) -> tuple[list[bytes], list[bytes]]:
    """(ours, feast): the same flights in the same order, one body per request."""
    if batch == 1:
        groups = [[f] for f in flights]
    else:
        starts = range(0, max(1, len(flights) - batch + 1), BATCH_STRIDE)
        groups = [flights[i : i + batch] for i in starts]
    ours, feast = [], []
    for g in groups:
        ours.append(json.dumps(_public(g[0]) if batch == 1 else [_public(f) for f in g]).encode())
        feast.append(
            json.dumps(
                {
                    "feature_service": FEATURE_SERVICE,
                    "entities": {
                        "carrier": [f["carrier"] for f in g],
                        "origin": [f["origin"] for f in g],
                        "dest": [f["dest"] for f in g],
                        "tailnum": [f["tailnum"] for f in g],
                        "sched_dep_ts": [_iso_with_offset(f) for f in g],
                    },
                }
            ).encode()
        )
    return ours, feast


def _request(path: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- load generator


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _worker(port: int, requests, until: float, lat: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    perf = time.perf_counter
    try:
        while perf() < until:
            req = next(requests)
            t0 = perf()
            writer.write(req)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as err:
                errors.append(type(err).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            lat.append(perf() - t0)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _phase(port: int, requests, concurrency: int, seconds: float) -> tuple[list, list, float]:
    lat: list[float] = []
    errors: list = []
    t0 = time.perf_counter()
    await asyncio.gather(
        *(_worker(port, requests, t0 + seconds, lat, errors) for _ in range(concurrency))
    )
    return lat, errors, time.perf_counter() - t0


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run_cells(
    targets: dict[str, tuple[int, str, list[bytes]]],
    batch: int,
    concurrency: int,
    warmup: float,
    duration: float,
    rounds: int,
) -> dict[str, dict]:
    """Each target (name -> port, path, bodies) for ``duration`` seconds in all, in ``rounds``
    alternating slices (A B, B A, A B, ...): on a shared machine the load drifts within seconds,
    and slices make both servers meet the same drift, so their ratio holds steadier than two
    back-to-back runs give it."""
    streams = {
        name: itertools.cycle([_request(path, port, b) for b in bodies])
        for name, (port, path, bodies) in targets.items()
    }
    got: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in targets}
    names = list(targets)
    gc.collect()
    gc.disable()
    try:
        for name in names:
            asyncio.run(_phase(targets[name][0], streams[name], concurrency, warmup))
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                lat, errors, wall = asyncio.run(
                    _phase(targets[name][0], streams[name], concurrency, duration / rounds)
                )
                got[name][0].extend(lat)
                got[name][1].extend(errors)
                got[name][2].append(wall)
    finally:
        gc.enable()
    return {
        name: _summary(lat, errors, sum(walls), batch) for name, (lat, errors, walls) in got.items()
    }


def _summary(lat: list[float], errors: list, wall: float, batch: int) -> dict:
    lat.sort()
    n = len(lat)
    return {
        "requests": n,
        "wall_s": round(wall, 3),
        "p50_ms": round(_percentile(lat, 50) * 1e3, 3),
        "p95_ms": round(_percentile(lat, 95) * 1e3, 3),
        "p99_ms": round(_percentile(lat, 99) * 1e3, 3),
        "max_ms": round(lat[-1] * 1e3, 3) if lat else None,
        "mean_ms": round(statistics.fmean(lat) * 1e3, 3) if lat else None,
        "rps": round(n / wall, 1),
        "flights_per_s": round(n * batch / wall, 1),
        "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors})[:5],
    }


def _metric_sums(url: str, name: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram, all label sets together."""
    status, body = http_get(f"{url}/metrics", timeout=10)
    total = count = 0.0
    if status != 200:
        return float("nan"), float("nan")
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(f"{name}_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


# --------------------------------------------------------------------------- 1. servers + cells


def _ours_env(home: Path, prep: dict, store: str, redis_port: int | None, name: str) -> dict:
    """The environment ours is started with (a Bento home of its own, ``name``)."""
    bento_home = home / "bentoml" / name
    bento_home.mkdir(parents=True, exist_ok=True)
    return {
        **_child_env(home, store, redis_port),
        "FTI_SERVING_MODEL_DIR": prep["model_dir"],
        "BENTOML_HOME": str(bento_home),
        "BENTOML_DO_NOT_TRACK": "true",
    }


def _spawn_ours(label: str, env: dict, port: int, log: Path) -> Proc:
    """``bentoml serve`` of the service on ``port``, as users start it."""
    return Proc(
        label,
        [
            str(BIN / "bentoml"),
            "serve",
            "serving.service:FlightDelayService",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env,
        log,
    )


def start_servers(store: str, home: Path, prep: dict, redis_port: int | None) -> dict[str, dict]:
    env = _child_env(home, store, redis_port)
    ours_port, feast_port = free_port(), free_port()
    ours_env = _ours_env(home, prep, store, redis_port, store)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    servers: dict[str, dict] = {}
    t0 = time.perf_counter()
    ours = _spawn_ours(
        f"bentoml serve ({store})", ours_env, ours_port, logs / f"bentoml-{store}.log"
    )
    servers["ours"] = {
        "proc": ours,
        "port": ours_port,
        "url": f"http://127.0.0.1:{ours_port}",
        "path": "/predict",
    }
    feast = Proc(
        f"feast serve ({store})",
        [
            str(BIN / "feast"),
            "-c",
            "feature_repo",
            "-f",
            prep["yamls"][store],
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(feast_port),
            "--workers",
            "1",
            "--no-access-log",
            "--max-requests",
            "0",
        ],
        env,
        logs / f"feast-{store}.log",
    )
    servers["feast"] = {
        "proc": feast,
        "port": feast_port,
        "url": f"http://127.0.0.1:{feast_port}",
        "path": "/get-online-features",
    }
    wait_http(ours, f"{servers['ours']['url']}/readyz")
    servers["ours"]["ready_s"] = round(time.perf_counter() - t0, 1)
    wait_http(feast, f"{servers['feast']['url']}/health")
    servers["feast"]["ready_s"] = round(time.perf_counter() - t0, 1)
    return servers


def check_answers(servers: dict, flights: list[dict]) -> dict:
    """One request of each kind, outside the timing: what the servers answer."""
    ours_body, feast_body = (b[0] for b in build_bodies(flights, 4))
    s1, a1 = http_post(f"{servers['ours']['url']}/predict", ours_body)
    s2, a2 = http_post(f"{servers['feast']['url']}/get-online-features", feast_body)
    out = {"ours_status": s1, "feast_status": s2}
    if s1 == 200:
        answer = json.loads(a1)
        out["ours_first"] = answer[0]
    else:
        out["ours_error"] = a1[:500].decode(errors="replace")
    if s2 == 200:
        answer = json.loads(a2)
        names = answer["metadata"]["feature_names"]
        results = answer["results"]
        out["feast_features"] = len(names)
        out["feast_first_row"] = {n: r["values"][0] for n, r in zip(names, results, strict=True)}
        out["feast_statuses"] = sorted({st for r in results for st in r["statuses"]})
    else:
        out["feast_error"] = a2[:500].decode(errors="replace")
    return out


def bench_store(store: str, home: Path, prep: dict, redis_port: int | None, args) -> dict:
    flights = prep["flights"]
    print(f"\n[{store}] starting bentoml serve and feast serve", flush=True)
    servers = start_servers(store, home, prep, redis_port)
    try:
        print(
            f"  both ready {servers['feast']['ready_s']} s after they were started (together)",
            flush=True,
        )
        answers = check_answers(servers, flights)
        print(
            f"  check: ours {answers['ours_status']}, feast {answers['feast_status']} "
            f"({answers.get('feast_features')} features, statuses "
            f"{answers.get('feast_statuses')})",
            flush=True,
        )
        cells = []
        for batch in args.batch:
            ours_bodies, feast_bodies = build_bodies(flights, batch)
            for conc in args.concurrency:
                cell = {"batch": batch, "concurrency": conc, "distinct_bodies": len(ours_bodies)}
                before = _metric_sums(servers["ours"]["url"], "fti_predict_latency_seconds")
                cell.update(
                    run_cells(
                        {
                            "ours": (servers["ours"]["port"], servers["ours"]["path"], ours_bodies),
                            "feast": (
                                servers["feast"]["port"],
                                servers["feast"]["path"],
                                feast_bodies,
                            ),
                        },
                        batch,
                        conc,
                        args.warmup,
                        args.duration,
                        args.rounds,
                    )
                )
                after = _metric_sums(servers["ours"]["url"], "fti_predict_latency_seconds")
                n = after[1] - before[1]  # warm-up requests included
                cell["ours"]["app_mean_ms"] = (
                    round((after[0] - before[0]) / n * 1e3, 3) if n else None
                )
                cell["p99_ratio"] = round(cell["ours"]["p99_ms"] / cell["feast"]["p99_ms"], 3)
                cell["p50_ratio"] = round(cell["ours"]["p50_ms"] / cell["feast"]["p50_ms"], 3)
                cells.append(cell)
                o, f = cell["ours"], cell["feast"]
                print(
                    f"  batch {batch:>3} conc {conc:>2}: ours p50/p99 {o['p50_ms']:.2f}/"
                    f"{o['p99_ms']:.2f} ms {o['rps']:.0f} req/s; feast {f['p50_ms']:.2f}/"
                    f"{f['p99_ms']:.2f} ms {f['rps']:.0f} req/s; p99 ours/feast "
                    f"{cell['p99_ratio']:.2f}",
                    flush=True,
                )
        for srv in servers.values():
            srv["alive_at_end"] = srv["proc"].alive()
    finally:
        for srv in servers.values():
            srv["proc"].stop()
    return {
        "cells": cells,
        "check": answers,
        "ready_s": {k: v["ready_s"] for k, v in servers.items()},
        "alive_at_end": {k: v.get("alive_at_end") for k, v in servers.items()},
    }


# --------------------------------------------------------------------------- 1b. switch + log


def _start_ours(name: str, home: Path, prep: dict, extra: dict[str, str]) -> dict:
    """One ``bentoml serve`` of the service (SQLite online store) with ``extra`` environment."""
    port = free_port()
    env = {**_ours_env(home, prep, "sqlite", None, name), **extra}
    proc = _spawn_ours(f"bentoml serve ({name})", env, port, home / "logs" / f"bentoml-{name}.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{url}/readyz")
    return {"proc": proc, "port": port, "url": url, "path": "/predict"}


def _admin_switch(
    url: str, token: str, model_dir: str, version: str, path: str = "/admin/model"
) -> tuple[int, float, str]:
    """(status, seconds, error) of one ``POST /admin/model`` (or ``path``)."""
    body = json.dumps({"version": version, "model_dir": model_dir}).encode()
    req = urllib.request.Request(
        f"{url}{path}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, time.perf_counter() - t0, ""
    except urllib.error.HTTPError as err:
        return err.code, time.perf_counter() - t0, err.read()[:200].decode(errors="replace")


def bench_switch(home: Path, prep: dict, args) -> dict:
    """The inference log's cost (one flight per request, log on against log off, alternating
    slices) and switches under load (a rollout, a rollout refused by its check, a rollback, at
    ``--switch-concurrency`` connections): failed requests and p50/p99 during the switches next
    to the steady state just before."""
    import secrets as _secrets

    import torch

    token = _secrets.token_urlsafe(16)
    second = home / "model-2"
    shutil.copytree(prep["model_dir"], second, dirs_exist_ok=True)
    (second / "model_version.txt").write_text("bench-2\n")
    nan = home / "model-nan"
    shutil.copytree(prep["model_dir"], nan, dirs_exist_ok=True)
    saved = torch.load(nan / "model.pt", map_location="cpu", weights_only=False)
    saved["state_dict"] = {k: v * float("nan") for k, v in saved["state_dict"].items()}
    torch.save(saved, nan / "model.pt")
    (nan / "model_version.txt").write_text("bench-nan\n")
    print(
        "\n[switch] starting three services: inference log on, off, and on with a shadow "
        "challenger",
        flush=True,
    )
    on = _start_ours("log-on", home, prep, {"FTI_SERVING_ADMIN_TOKEN": token})
    off = _start_ours("log-off", home, prep, {"FTI_INFERENCE_LOG": "false"})
    shadow = _start_ours("log-shadow", home, prep, {"FTI_SERVING_ADMIN_TOKEN": token})
    out: dict = {}
    try:
        status, _, error = _admin_switch(
            shadow["url"], token, str(second), "bench-2", path="/admin/challenger"
        )
        if status != 200:
            raise RuntimeError(f"the shadow challenger was refused ({status}): {error}")
        bodies, _ = build_bodies(prep["flights"], 1)
        out["log"] = run_cells(
            {
                "log_on": (on["port"], "/predict", bodies),
                "log_off": (off["port"], "/predict", bodies),
                "log_shadow": (shadow["port"], "/predict", bodies),
            },
            1,
            1,
            args.warmup,
            args.duration,
            args.rounds,
        )
        out["log"]["p99_added_ms"] = round(
            out["log"]["log_on"]["p99_ms"] - out["log"]["log_off"]["p99_ms"], 3
        )
        out["log"]["p99_added_shadow_ms"] = round(
            out["log"]["log_shadow"]["p99_ms"] - out["log"]["log_off"]["p99_ms"], 3
        )
        print(
            f"  inference log, 1 flight, 1 connection: p99 on {out['log']['log_on']['p99_ms']} ms, "
            f"off {out['log']['log_off']['p99_ms']} ms (added {out['log']['p99_added_ms']} ms); "
            f"on with a shadow challenger {out['log']['log_shadow']['p99_ms']} ms (added "
            f"{out['log']['p99_added_shadow_ms']} ms)",
            flush=True,
        )
        off["proc"].stop()
        shadow["proc"].stop()
        conc = args.switch_concurrency
        stream = itertools.cycle([_request("/predict", on["port"], b) for b in bodies])
        gc.collect()
        gc.disable()
        try:
            asyncio.run(_phase(on["port"], stream, conc, args.warmup))
            lat, errors, wall = asyncio.run(_phase(on["port"], stream, conc, args.duration))
            out["steady"] = _summary(lat, errors, wall, 1)
            box: dict = {}
            load = threading.Thread(
                target=lambda: box.update(
                    zip(
                        ("lat", "errors", "wall"),
                        asyncio.run(_phase(on["port"], stream, conc, 24)),
                        strict=True,
                    )
                )
            )
            load.start()
            switches = []
            for model_dir, version in (
                (str(second), "bench-2"),
                (str(nan), "bench-nan"),
                (prep["model_dir"], "rollback"),
            ):
                time.sleep(4)
                status, took, error = _admin_switch(on["url"], token, model_dir, version)
                switches.append(
                    {"to": version, "status": status, "seconds": round(took, 2), "error": error}
                )
            load.join()
        finally:
            gc.enable()
        out["switching"] = _summary(box["lat"], box["errors"], box["wall"], 1)
        out["switches"] = switches
        print(
            f"  switches under load ({conc} connections): {[s['status'] for s in switches]}; "
            f"failed requests {out['switching']['errors']} of {out['switching']['requests']}; "
            f"p50/p99 {out['switching']['p50_ms']}/{out['switching']['p99_ms']} ms during, "
            f"{out['steady']['p50_ms']}/{out['steady']['p99_ms']} ms steady",
            flush=True,
        )
    finally:
        for server in (on, off, shadow):
            server["proc"].stop()
    return out


# --------------------------------------------------------------------------- 2. breakdown (child)


def child_breakdown(spec_path: Path) -> None:
    """Runs in a child process with the store's environment: /predict's parts in-process."""
    spec = json.loads(spec_path.read_text())
    flights = spec["flights"]
    os.environ["FTI_SERVING_MODEL_DIR"] = spec["model_dir"]
    import pandas as pd
    import torch
    from pydantic import TypeAdapter

    from fti.ground import featurestore
    from serving import features
    from serving import service as svc

    settings = svc.SETTINGS
    impl = svc.FlightDelayService.inner()  # the class under @bentoml.service: the handler itself
    store = impl.store
    spec_fs = features.service_spec(store)
    fs = store.get_feature_service(FEATURE_SERVICE)
    answers = TypeAdapter(list[svc.Prediction])
    loop = asyncio.new_event_loop()  # predict is async: one loop for every call, as a worker has

    def forward(cats, nums):
        with torch.inference_mode():
            return torch.sigmoid(impl.model.model(cats, nums))

    out = {}
    for batch in spec["batches"]:
        bodies, _ = build_bodies(flights, batch)
        reps = spec["reps"].get(str(batch), 50)
        t: dict[str, list[float]] = {}

        def clock(name, fn, *a, t=t):
            t0 = time.perf_counter()
            r = fn(*a)
            t.setdefault(name, []).append(time.perf_counter() - t0)
            return r

        for i in range(reps + 5):  # the first 5 are warm-up
            body = bodies[i % len(bodies)]
            req = clock("validate request", svc.PredictRequest.model_validate_json, body)
            rows = [req.root] if isinstance(req.root, svc.Flight) else list(req.root)
            dicts = [f.model_dump() for f in rows]
            lookup = clock(
                "  flights as columns, clock, spec (_Request.of)",
                features._Request.of,
                dicts,
                settings,
                store,
                None,
            )
            read = clock(
                "  feast lookup + reading its response (_lookup)", features._lookup, lookup
            )
            clock(
                "  TTL rule and the frame (_assemble, incl. on-demand)",
                features._assemble,
                lookup,
                *read,
            )
            request = pd.DataFrame({"sched_dep_ts": lookup.cols["sched_dep_ts"]})
            for odfv, _ in spec_fs.on_demand:
                clock(
                    "    on-demand transformation", odfv.feature_transformation.transform, request
                )
            df = clock(
                "online_features (all of it: + TTL rule, frame)",
                features.online_features,
                dicts,
                settings,
                store,
            )
            cats, nums = clock(
                "  preprocessing (Preprocessor.transform)", impl.model.preprocessor.transform, df
            )
            clock("  model forward (torch, inference_mode)", forward, cats, nums)
            clock("predict_proba (all of it)", impl.model.predict_proba, df)
            result = clock(
                "service.predict (all but validation and JSON)",
                lambda r: loop.run_until_complete(impl.predict(r)),
                req,
            )
            clock("JSON encoding of the answers", answers.dump_json, result)
            entity_rows = {
                "carrier": [f["carrier"] for f in dicts],
                "origin": [f["origin"] for f in dicts],
                "dest": [f["dest"] for f in dicts],
                "tailnum": [f["tailnum"] for f in dicts],
                "sched_dep_ts": [f["sched_dep_ts"] for f in dicts],
            }
            clock(
                "feast in-process: feature service + request data + to_dict",
                lambda rows=entity_rows: store.get_online_features(
                    features=fs, entity_rows=rows
                ).to_dict(),
            )
        out[str(batch)] = {k: round(statistics.median(v[5:]) * 1e3, 3) for k, v in t.items()}
        out[str(batch)]["reps"] = reps
    out["store"] = settings.online_store
    out["online_store_type"] = featurestore.repo_config(settings).online_store.type
    Path(spec["out"]).write_text(json.dumps(out))


def run_breakdown(store: str, home: Path, prep: dict, redis_port: int | None, batches) -> dict:
    spec = home / f"breakdown-{store}.json"
    out = home / f"breakdown-{store}.out.json"
    spec.write_text(
        json.dumps(
            {
                "flights": prep["flights"],
                "model_dir": prep["model_dir"],
                "batches": batches,
                "reps": {"1": 300, "64": 80},
                "out": str(out),
            }
        )
    )
    log = home / "logs" / f"breakdown-{store}.log"
    proc = Proc(
        f"breakdown ({store})",
        [sys.executable, str(Path(__file__).resolve()), "--child-breakdown", str(spec)],
        _child_env(home, store, redis_port),
        log,
    )
    try:
        proc.popen.wait(timeout=300)
    finally:
        proc.stop()
    if proc.popen.returncode != 0:
        raise RuntimeError(f"breakdown ({store}) failed:\n{proc.log_tail()}")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- printing


def print_table(res: dict) -> None:
    print()
    print(
        "Online serving: client-side latency (ms) and throughput; ours = POST /predict "
        "(lookup + model), feast = feast serve POST /get-online-features (lookup only)"
    )
    hdr = (
        f"  {'store':<7}{'batch':>6}{'conc':>5} | {'ours p50':>9}{'p95':>8}{'p99':>8}"
        f"{'req/s':>8}{'flt/s':>8}{'app':>7}{'err':>4} | {'feast p50':>9}{'p95':>8}"
        f"{'p99':>8}{'req/s':>8}{'err':>4} | {'p99 o/f':>8}{'target':>8}"
    )
    print(hdr)
    print("  " + "-" * (len(hdr) - 2))
    for store, sres in res["stores"].items():
        for c in sres["cells"]:
            o, f = c["ours"], c["feast"]
            app = f"{o['app_mean_ms']:.2f}" if o.get("app_mean_ms") is not None else "-"
            ok = "met" if c["p99_ratio"] <= 1.0 else "missed"
            print(
                f"  {store:<7}{c['batch']:>6}{c['concurrency']:>5} | {o['p50_ms']:>9.2f}"
                f"{o['p95_ms']:>8.2f}{o['p99_ms']:>8.2f}{o['rps']:>8.0f}"
                f"{o['flights_per_s']:>8.0f}{app:>7}{o['errors']:>4} | {f['p50_ms']:>9.2f}"
                f"{f['p95_ms']:>8.2f}{f['p99_ms']:>8.2f}{f['rps']:>8.0f}{f['errors']:>4} | "
                f"{c['p99_ratio']:>7.2f}x{ok:>8}"
            )
    print(
        "  app = mean time inside /predict's ASGI app per request (fti_predict_latency_seconds "
        "of /metrics); err = non-200 answers or broken connections"
    )
    print(
        "  target: p99 ours/feast <= 1.00 (the full prediction no slower than Feast's server's "
        "lookup alone)"
    )


def print_breakdown(res: dict) -> None:
    for store, b in res.get("breakdown", {}).items():
        print()
        print(f"In-process breakdown of /predict, {store} (median ms per call, no HTTP)")
        batches = [k for k in b if k.isdigit()]
        names = list(b[batches[0]]) if batches else []
        print(f"  {'part':<62}" + "".join(f"{k + ' flt':>10}" for k in batches))
        for name in names:
            if name == "reps":
                continue
            print(f"  {name:<62}" + "".join(f"{b[k][name]:>10.3f}" for k in batches))


# --------------------------------------------------------------------------- main


def _machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_start": load,
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("bentoml", "feast", "torch", "redis", "uvicorn", "gunicorn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.child_prepare:
        child_prepare(args.child_prepare)
        return 0
    if args.child_breakdown:
        child_breakdown(args.child_breakdown)
        return 0
    sys.stdout.reconfigure(line_buffering=True)
    created = args.home is None
    home = Path(tempfile.mkdtemp(prefix="fti-bench-serving-")) if created else args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    t_start = time.perf_counter()
    results: dict = {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "fti_home": str(home),
        "machine": _machine(),
        "versions": _versions(),
        "settings": {
            "days": [args.first.isoformat(), args.last.isoformat()],
            "batch": args.batch,
            "concurrency": args.concurrency,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "stores": args.stores,
            "epochs": args.epochs,
        },
        "stores": {},
    }
    m = results["machine"]
    print(f"serving benchmark; FTI_HOME={home}")
    print(
        f"machine: {m['platform']} | {m['cpu_count']} CPUs (a shared VM: client, servers and "
        f"Redis share them) | load average at start "
        f"{tuple(round(x, 2) for x in m['loadavg_at_start'] or ())}"
    )
    print(
        f"cells: batch {args.batch} x concurrency {args.concurrency}, warm-up {args.warmup} s "
        f"+ {args.duration} s timed each, stores {args.stores}",
        flush=True,
    )
    redis = None
    ok = False
    try:
        redis_port = None
        if "redis" in args.stores:
            redis, redis_port = start_redis(home / "redis")
            print(f"throwaway redis-server on 127.0.0.1:{redis_port}", flush=True)
        print(
            "\n[prepare] feature pipeline, online stores, training set, model (child process)",
            flush=True,
        )
        spec = home / "prepare.json"
        spec.write_text(
            json.dumps(
                {
                    "home": str(home),
                    "first": args.first.isoformat(),
                    "last": args.last.isoformat(),
                    "epochs": args.epochs,
                    "redis_port": redis_port,
                    "out": str(home / "prepared.json"),
                }
            )
        )
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child-prepare", str(spec)],
            cwd=ROOT,
            env=_child_env(home),
            stdout=None,
            stderr=open(home / "logs" / "prepare.log", "w"),
        )
        if proc.returncode != 0:
            raise RuntimeError(
                "preparation failed:\n"
                + (home / "logs" / "prepare.log").read_text(errors="replace")[-3000:]
            )
        prep = json.loads((home / "prepared.json").read_text())
        results["prepare"] = {k: v for k, v in prep.items() if k != "flights"}
        results["prepare"]["wall_s"] = round(time.perf_counter() - t, 1)
        results["prepare"]["flights"] = len(prep["flights"])
        print(
            f"  prepared in {results['prepare']['wall_s']} s: {prep['training_rows']} training "
            f"rows, {len(prep['flights'])} flights of {args.last} to request "
            f"({prep['flights_skipped']} without a usable tail number left out)",
            flush=True,
        )

        gc.collect()
        gc.freeze()
        for store in args.stores:
            results["stores"][store] = bench_store(store, home, prep, redis_port, args)
        print_table(results)
        if not args.skip_switch:
            results["switch"] = bench_switch(home, prep, args)

        if not args.skip_breakdown:
            results["breakdown"] = {}
            for store in args.stores:
                print(f"\n[breakdown] {store}", flush=True)
                results["breakdown"][store] = run_breakdown(
                    store, home, prep, redis_port, args.batch
                )
            print_breakdown(results)
        ok = True
    finally:
        if redis is not None:
            redis.stop()
        results["wall_s"] = round(time.perf_counter() - t_start, 1)
        results["completed"] = ok
        m["loadavg_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
        v = results["versions"]
        print()
        print(
            f"machine: {m['platform']} | {m['cpu_count']} CPUs, shared | Python {m['python']} | "
            f"bentoml {v['bentoml']}, feast {v['feast']} | load average at end "
            f"{tuple(round(x, 2) for x in m['loadavg_at_end'] or ())} | benchmark wall time "
            f"{results['wall_s']:.0f} s"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, default=str))
            print(f"figures written to {args.json}")
        if created and ok and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"state kept in {home}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
