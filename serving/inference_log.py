"""The inference log: every online prediction, appended to a day-partitioned table of the
offline store (``offline/inference_log/date=<day>/part-<time>-<id>.parquet``).

One row per flight answered: the request's id, the flight key, every feature the model used
with its feature row's timestamp (``_feature_ts__<view>``), the instant the features were read
as of, the model version, the probability and the predicted class, the request's latency, and
the challenger's version and probability (null until a challenger shadows the champion).
``predict`` only appends the rows to a buffer; a background thread writes the buffer as one
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


def log_dir(settings: Settings) -> Path:
    """The inference log's folder in the offline store."""
    return settings.offline_dir / TABLE


def read(settings: Settings, day: str | None = None) -> pd.DataFrame:
    """The logged rows (of ``day``, a local date, when given), empty when none."""
    import pandas as pd

    folder = log_dir(settings) / f"date={day}" if day else log_dir(settings)
    parts = sorted(p for p in folder.rglob("part-*.parquet")) if folder.exists() else []
    if not parts:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


class InferenceLog:
    """A buffer of prediction rows and the thread that writes it to the offline store."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.flush_s = settings.inference_log_flush_s
        self.max_rows = settings.inference_log_max_rows
        self._rows: list[tuple[str, dict[str, np.ndarray]]] = []
        self._n = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def append(self, rows: tuple[str, dict[str, np.ndarray]]) -> None:
        """Queue ``rows`` (:func:`rows`: the day and a list per column) for the next write;
        never blocks on I/O."""
        with self._lock:
            self._rows.append(rows)
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
        for day, columns in batch:
            merged = by_day.setdefault(day, {k: [] for k in columns})
            for k, values in columns.items():
                merged.setdefault(k, []).append(values)
        try:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for day, merged in sorted(by_day.items()):
                name = f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
                table = _table(merged)
                files.write_table(table, log_dir(self.settings) / f"date={day}" / name)
        except Exception:
            with self._lock:  # back in front of what arrived meanwhile
                self._rows[:0] = batch
                self._n += sum(len(next(iter(c.values()))) for _, c in batch)
            raise
        n = sum(sum(len(a) for a in next(iter(c.values()))) for c in by_day.values())
        self.written += n
        return n

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
    day = df["event_timestamp"].iloc[0].tz_convert(tz).strftime("%Y-%m-%d")
    return day, columns


def _table(columns: dict[str, list]):
    """One arrow table of the joined arrays (times as UTC, the challenger's version text)."""
    import numpy as np
    import pyarrow as pa

    out = {}
    for k, parts in columns.items():
        values = np.concatenate(parts)
        if values.dtype.kind == "M":
            out[k] = pa.array(values).cast(pa.timestamp("us", tz="UTC"))
        elif k == "challenger_version":
            out[k] = pa.array(values, type=pa.string())
        else:
            out[k] = pa.array(values, from_pandas=True)
    return pa.table(out)
