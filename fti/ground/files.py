"""Writing files so that a reader, or a retry after a kill, never sees half of one.

Every write goes to a hidden temporary file beside its target and is renamed onto it: on a
POSIX file system a rename is atomic, so the target holds the old content or the new one.
A temporary file left by a killed writer is named ``.<target>.<random>.tmp`` and removed by
the next write of the same target.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def _remove_stale(path: Path) -> None:
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write into; renamed onto ``path`` when the block
    ends without an error, removed when it raises. Works for a file or a directory (an
    existing directory at ``path`` is replaced whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        yield tmp
        if tmp.is_dir() and path.exists():
            # a directory cannot be renamed onto a non-empty one: move the old one aside first
            old = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> Path:
    """Replace ``path`` with ``data``."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8)."""
    return write_bytes(path, text.encode())


def write_json(path: Path, value: Any) -> Path:
    """Replace ``path`` with ``value`` as indented JSON."""
    return write_text(path, json.dumps(value, indent=2))


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    """Replace ``path`` with ``df`` as parquet (pandas' writer, without the index)."""
    with replacing(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_table(table: pa.Table, path: Path) -> Path:
    """Replace ``path`` with ``table`` as parquet, timestamps in microseconds (Spark cannot
    read nanosecond timestamps)."""
    import pyarrow.parquet as pq

    with replacing(path) as tmp:
        pq.write_table(table, tmp, coerce_timestamps="us")
    return Path(path)


def copy_file(src: Path, dst: Path) -> Path:
    """Replace ``dst`` with a copy of ``src``."""
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def safe_name(text: str) -> str:
    """``text`` (a run id, say) as one path component: each run of other characters than
    letters, digits, ``_``, ``.`` and ``-`` becomes one ``_``."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


# ------------------------------------------------------------------ day partitions

#: the one file of a day's partition (``<root>/<name>/date=YYYY-MM-DD/part-0.parquet``)
PART_FILE = "part-0.parquet"


def day_partition(root: Path, name: str, day) -> Path:
    """The file of ``day``'s partition of table or view ``name`` under ``root``."""
    iso = day if isinstance(day, str) else day.isoformat()
    return Path(root) / name / f"date={iso}" / PART_FILE


def partition_days(folder: Path) -> list[str]:
    """The days (ISO text, sorted) that have a partition under ``folder`` (``date=*``)."""
    return sorted(p.name.removeprefix("date=") for p in Path(folder).glob("date=*"))
