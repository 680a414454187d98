"""The inference log: every online prediction, appended to a day-partitioned table of the
offline store (``offline/inference_log/date=<day>/part-<time>-<id>.parquet``).

One row per flight answered: the request's id, the flight key, every feature the model used
with its feature row's timestamp (``_feature_ts__<view>``), the instant the features were read
as of, the model version, the probability, the request's latency and the wall-clock instant it
was answered (``answered_at``, UTC), and
the challenger's version and probability (null while no challenger shadows the champion).
``predict`` only appends the rows to a buffer, with the challenger live at that instant; a
background thread scores the buffered rows with their challenger (one batch, off the response
path: a challenger never slows or changes an answer) and writes the buffer as one
parquet file every ``FTI_INFERENCE_LOG_FLUSH_S`` seconds (or sooner past
``FTI_INFERENCE_LOG_MAX_ROWS`` rows), and the service's shutdown hook writes what is left, so a
graceful stop loses nothing the service answered. A file is written under a hidden name and
renamed (``fti.ground.files.write_table``): readers see whole files only. The day is the local
day of the instant the features were read as of (the replay clock's day when replaying).

Hand-written rather than a logging library's handler: the rows are typed columns for Feast and
monitoring, and the only guarantee wanted (no answered row lost on a graceful stop) is the
flush on shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from fti.ground import files
from fti.ground.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

TABLE = "inference_log"
#: while writes fail, the rows of at most this many full writes are held (the oldest dropped)
KEEP_WRITES = 50


def log_dir(settings: Settings) -> Path:
    """The inference log's folder in the offline store."""
    return settings.offline_dir / TABLE


def read(
    settings: Settings, day: str | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """The logged rows (of ``day``, a local date, when given; only ``columns`` when given),
    empty when none."""
    import pandas as pd

    folder = log_dir(settings) / f"date={day}" if day else log_dir(settings)
    parts = sorted(p for p in folder.rglob("part-*.parquet")) if folder.exists() else []
    if not parts:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(p, columns=columns) for p in parts], ignore_index=True)


class InferenceLog:
    """A buffer of prediction rows and the thread that writes it to the offline store."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.flush_s = settings.inference_log_flush_s
        self.max_rows = settings.inference_log_max_rows
        self._rows: list[tuple[str, dict[str, np.ndarray], object]] = []
        self._n = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def append(self, rows: tuple[str, dict[str, np.ndarray]], challenger=None) -> None:
        """Queue ``rows`` (:func:`rows`: the day and a list per column) for the next write,
        to be scored by ``challenger`` (a ``serving.model.LoadedModel``) first; never blocks on
        I/O."""
        with self._lock:
            self._rows.append((*rows, challenger))
            self._n += len(next(iter(rows[1].values())))
            full = self._n >= self.max_rows
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a failed write keeps the rows for the next try, and says so
                log.exception("inference log: write failed; the rows are kept for the next try")

    def flush(self) -> int:
        """Write the buffered rows, one file per local day; returns the rows written."""
        with self._lock:
            batch, self._rows, self._n = self._rows, [], 0
        if not batch:
            return 0
        # arrays joined per column: cheap on the GIL the serving thread shares, unlike a concat
        # of hundreds of one-row frames
        by_day: dict[str, dict[str, list]] = {}
        shadows: dict[tuple[str, int], object] = {}
        for day, columns, challenger in batch:
            merged = by_day.setdefault((day, id(challenger)), {k: [] for k in columns})
            shadows[(day, id(challenger))] = challenger
            for k, values in columns.items():
                merged.setdefault(k, []).append(values)
        try:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for key, merged in sorted(by_day.items(), key=lambda kv: kv[0][0]):
                name = f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
                table = _table(merged, shadows[key])
                files.write_table(table, log_dir(self.settings) / f"date={key[0]}" / name)
        except Exception:
            with self._lock:  # back in front of what arrived meanwhile
                self._rows[:0] = batch
                self._n += sum(len(next(iter(c.values()))) for _, c, _ in batch)
                self._cap()
            raise
        n = sum(sum(len(a) for a in next(iter(c.values()))) for c in by_day.values())
        self.written += n
        return n

    def _cap(self) -> None:
        """While writes keep failing, hold at most ``KEEP_WRITES`` writes' worth of rows: the
        oldest go first (counted in ``dropped`` and logged), so a broken store cannot take the
        service's memory."""
        most = KEEP_WRITES * self.max_rows
        while self._n > most and len(self._rows) > 1:
            _, columns, _ = self._rows.pop(0)
            n = len(next(iter(columns.values())))
            self._n -= n
            self.dropped += n
        if self.dropped:
            log.error("inference log: %s rows dropped in all while writes failed", self.dropped)

    def close(self) -> int:
        """Stop the writer and write what is left (the service's shutdown hook)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        n = self.flush()
        log.info("inference log closed: %s rows written in all", self.written)
        return n


def rows(
    df: pd.DataFrame,
    ids: list[str],
    probability,
    model_version: str,
    request_id: str,
    latency_ms: float,
    tz: str,
) -> tuple[str, dict[str, np.ndarray]]:
    """The log rows of one answered request: its local day, and an array per column: ``df``
    (the features frame the model scored) with the request's id, the answer and the latency.
    Time columns become naive UTC ``datetime64`` (null stays NaT) and get their zone back when
    written."""
    import numpy as np

    n = len(df)
    columns: dict[str, np.ndarray] = {
        "request_id": np.full(n, request_id, dtype=object),
        "flight_id": np.asarray(list(ids), dtype=object),
    }
    for c, col in df.items():
        # .values: a tz-aware column's UTC datetime64 without a copy (to_numpy() would box
        # every value as a Timestamp); an extension array becomes an object array
        values = col.values
        columns[c] = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    columns["model_version"] = np.full(n, str(model_version), dtype=object)
    columns["probability"] = np.asarray(probability, dtype="float64")
    columns["challenger_version"] = np.full(n, None, dtype=object)
    columns["challenger_probability"] = np.full(n, np.nan)
    columns["latency_ms"] = np.full(n, float(latency_ms))
    # the wall-clock instant of the answer: which version was live when (with latency_ms, when
    # the request started)
    columns["answered_at"] = np.full(n, np.datetime64(time.time_ns() // 1000, "us"))
    day = df["event_timestamp"].iloc[0].tz_convert(tz).strftime("%Y-%m-%d")
    return day, columns


def shadow_scores(challenger, joined: dict[str, np.ndarray]) -> np.ndarray:
    """The challenger's probabilities for the logged rows ``joined`` (a column each), NaN for
    all of them when it cannot score them (logged: the champion's answers stand)."""
    import numpy as np
    import pandas as pd

    n = len(joined["flight_id"])
    try:
        frame = pd.DataFrame(
            {
                k: pd.to_datetime(v, utc=True) if v.dtype.kind == "M" else v
                for k, v in joined.items()
            }
        )
        p = np.asarray(challenger.predict_proba(frame), dtype="float64")
        if p.shape != (n,):
            raise ValueError(f"{p.shape[0]} probabilities for {n} rows")
        return p
    except Exception:
        log.exception("challenger %s could not score %s logged rows", challenger.version, n)
        return np.full(n, np.nan)


def _table(columns: dict[str, list], challenger=None):
    """One arrow table of the joined arrays (times as UTC, the challenger's version text and
    probabilities when a challenger shadowed these rows)."""
    import numpy as np
    import pyarrow as pa

    joined = {}
    for k, parts in columns.items():
        joined[k] = np.concatenate(parts)
        _yield()
    if challenger is not None:
        joined["challenger_version"] = np.full(len(joined["flight_id"]), challenger.version, object)
        joined["challenger_probability"] = shadow_scores(challenger, joined)
    out = {}
    for k, values in joined.items():
        if values.dtype.kind == "M":
            out[k] = pa.array(values).cast(pa.timestamp("us", tz="UTC"))
        elif k == "challenger_version":
            out[k] = pa.array(values, type=pa.string())
        else:
            out[k] = pa.array(values, from_pandas=True)
        _yield()
    return pa.table(out)


def _yield() -> None:
    """Hand the GIL to the serving thread between two pieces of the writer's work: each
    conversion holds it while it runs, and a request waiting behind the whole table would wait
    for all of them (its p99)."""
    time.sleep(0)
