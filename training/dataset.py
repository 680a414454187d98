"""Training sets: a spine of flights joined point-in-time to the features of ``flight_delay_v1``.

The spine is one row per departed flight (from the ``flight_labels`` offline view), stamped at
its prediction time (``FTI_TRAINING_AS_OF``): by default the start of the flight's local day,
the instant batch scoring and the replayed online service read features as of
(:func:`as_of_stamp`, the same for both), so a training row holds exactly the features the
serving paths give the same flight and the gate's test metrics are what they deliver;
``horizon``: its scheduled departure minus ``FTI_PREDICTION_HORIZON_HOURS``.

``point_in_time_join`` is the project's own path: a DuckDB ``ASOF JOIN`` per feature view over
the same parquet files Feast reads, with Feast's semantics (the latest feature row at or before
the row's timestamp, null when that row is older than the view's TTL) and on-demand features
computed by Feast's own transformation. It exists because Feast 0.67's file offline store runs
out of memory beyond a few thousand spine rows and merges spine rows that share keys and
timestamp (feast-dev/feast#6787); ``tests/training/test_dataset.py`` checks that it gives the same
cells as ``FeatureStore.get_historical_features`` for every row.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fti.ground import files
from fti.ground.contract import DEFAULT_PRESENT_SHARE, contract
from fti.ground.featurestore import TS_PREFIX, resolve_service
from fti.ground.settings import Settings, get_settings
from training.snapshots import LABEL_METADATA

if TYPE_CHECKING:
    import pandas as pd

#: the spine's columns besides the label: the flight key, the entity keys and the departure
SPINE_COLUMNS = ["flight_id", "carrier", "origin", "dest", "tailnum", "sched_dep_ts"]


def as_of_stamp(instant):
    """The timestamp a point-in-time join looks up features at for prediction time
    ``instant`` (a timestamp or a column of them): one microsecond before it, in UTC
    microseconds. Feature rows stamped exactly at a local midnight belong to the interval that
    starts there, which is not published yet at that instant."""
    import pandas as pd

    if isinstance(instant, pd.Series):
        return (instant.dt.tz_convert("UTC") - pd.Timedelta(microseconds=1)).astype(
            "datetime64[us, UTC]"
        )
    return pd.Timestamp(instant).tz_convert("UTC") - pd.Timedelta(microseconds=1)


def day_start(ts: pd.Series, tz: str) -> pd.Series:
    """The start (local midnight in ``tz``) of each timestamp's local day."""
    return ts.dt.tz_convert(tz).dt.normalize()


def load_spine(
    settings: Settings | None = None,
    first: date | None = None,
    last: date | None = None,
) -> pd.DataFrame:
    """Departed flights of the local days ``first..last`` with their label, stamped at their
    prediction time (``FTI_TRAINING_AS_OF``: their local day's start, or the horizon before
    departure)."""
    import pyarrow.dataset as ds

    settings = settings or get_settings()
    key = contract(settings)
    dataset = ds.dataset(
        settings.offline_dir / key.label_view, format="parquet", partitioning="hive"
    )
    filt = None
    if first is not None:
        filt = ds.field("date") >= first.isoformat()
    if last is not None:
        f2 = ds.field("date") <= last.isoformat()
        filt = f2 if filt is None else filt & f2
    table = dataset.to_table(columns=[*SPINE_COLUMNS, key.label], filter=filt)
    spine = table.to_pandas()
    if settings.training_as_of == "day_start":
        spine["event_timestamp"] = as_of_stamp(day_start(spine["sched_dep_ts"], settings.timezone))
    else:
        horizon = timedelta(hours=settings.prediction_horizon_hours)
        spine["event_timestamp"] = spine["sched_dep_ts"] - horizon
    return spine.sort_values(["event_timestamp", "flight_id"], ignore_index=True)


def point_in_time_join(spine: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """The spine with every feature of ``flight_delay_v1`` as of each row's event_timestamp.

    Every spine row keeps its own row, in the spine's order, duplicates included.
    """
    import duckdb

    from fti.ground import featurestore

    settings = settings or get_settings()
    store = featurestore.feature_store(settings)
    specs, odfvs = resolve_service(store, featurestore.feature_service_name(settings))

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    base = spine.reset_index(drop=True).copy()
    base["_row"] = range(len(base))
    con.register("spine", base)
    out = base
    for spec in specs:
        keys = " AND ".join(f's."{k}" = v."{k}"' for k in spec.keys)
        ttl_us = int(spec.ttl.total_seconds() * 1_000_000)
        # ASOF picks the latest feature row at or before the spine row; a row older than the
        # view's TTL is no row at all (Feast's rule), so its features become null
        fresh = (
            f"v.event_timestamp >= s.event_timestamp - to_microseconds({ttl_us})"
            if ttl_us
            else "TRUE"
        )
        selected = [f'CASE WHEN {fresh} THEN v."{f}" END AS "{f}"' for f in spec.features]
        # the feature row's own timestamp, kept so validation can prove nothing comes from after
        selected.append(f'CASE WHEN {fresh} THEN v.event_timestamp END AS "{TS_PREFIX}{spec.name}"')
        sql = f"""
            SELECT s._row, {", ".join(selected)}
            FROM spine s
            ASOF LEFT JOIN read_parquet('{spec.path}/**/*.parquet', hive_partitioning = false) v
              ON {keys} AND s.event_timestamp >= v.event_timestamp
        """
        part = con.execute(sql).df().sort_values("_row")
        out = out.merge(part, on="_row", how="left", validate="one_to_one")
    con.close()
    out = out.sort_values("_row").drop(columns="_row").reset_index(drop=True)
    return _add_on_demand(out, odfvs)


def _add_on_demand(out: pd.DataFrame, odfvs: list) -> pd.DataFrame:
    """The on-demand features, computed by Feast's own transformation of the joined rows."""
    for odfv, proj in odfvs:
        transformed = odfv.feature_transformation.transform(out)
        for f in proj.features:
            out[f.name] = transformed[f.name].values
    return out


def point_in_time_join_spark(
    spine: pd.DataFrame, settings: Settings | None = None, spark=None
) -> pd.DataFrame:
    """The same join as :func:`point_in_time_join` on Spark, for spines and stores that outgrow
    one machine (``FTI_TRAINING_SET_ENGINE=spark``; the session follows ``FTI_SPARK_MASTER``).

    Per view, a range join keeps the feature rows of the row's keys inside
    ``[event_timestamp - ttl, event_timestamp]`` and a window takes the latest: the ASOF rule
    with Feast's TTL. A test checks it equals the DuckDB path cell for cell.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from fti.ground import featurestore
    from fti.ground.spark import build_session

    settings = settings or get_settings()
    spark = spark or build_session(settings)
    store = featurestore.feature_store(settings)
    specs, odfvs = resolve_service(store, featurestore.feature_service_name(settings))
    base = spine.reset_index(drop=True).copy()
    base["_row"] = range(len(base))
    keys_needed = sorted({k for spec in specs for k in spec.keys})
    s = spark.createDataFrame(base[["_row", "event_timestamp", *keys_needed]])
    out = base
    for spec in specs:
        v = spark.read.option("mergeSchema", "false").parquet(spec.path).drop("date")
        v = v.select(*spec.keys, F.col("event_timestamp").alias("_fts"), *spec.features)
        left = s.select("_row", "event_timestamp", *spec.keys)
        cond = [left[k] == v[k] for k in spec.keys] + [v["_fts"] <= left["event_timestamp"]]
        ttl_s = int(spec.ttl.total_seconds())
        if ttl_s > 0:
            # an equi-join on keys alone pairs each row with a year of a route's hourly rows;
            # with time cut into TTL-long buckets, a row's match lies in its bucket or the one
            # before, so the join pairs it with at most two buckets' rows
            bucket = F.floor(F.col("event_timestamp").cast("long") / ttl_s)
            left = left.withColumn("_b", F.explode(F.array(bucket, bucket - 1)))
            v = v.withColumn("_b", F.floor(F.col("_fts").cast("long") / ttl_s))
            cond = [left[k] == v[k] for k in [*spec.keys, "_b"]] + [
                v["_fts"] <= left["event_timestamp"],
                v["_fts"] >= left["event_timestamp"] - F.expr(f"INTERVAL {ttl_s} SECONDS"),
            ]
        joined = left.join(v, cond, "inner")
        latest = Window.partitionBy("_row").orderBy(F.col("_fts").desc())
        picked = (
            joined.withColumn("_rank", F.row_number().over(latest))
            .where("_rank = 1")
            .select(
                "_row",
                *[v[f] for f in spec.features],
                F.col("_fts").alias(f"{TS_PREFIX}{spec.name}"),
            )
        )
        part = picked.toPandas()
        ts_col = f"{TS_PREFIX}{spec.name}"
        # Spark hands back session-time (UTC) wall clocks without a zone
        part[ts_col] = _utc(part[ts_col])
        out = out.merge(part, on="_row", how="left", validate="one_to_one")
    out = out.sort_values("_row").drop(columns="_row").reset_index(drop=True)
    return _add_on_demand(out, odfvs)


def _utc(col: pd.Series) -> pd.Series:
    import pandas as pd

    col = pd.to_datetime(col)
    return col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")


def join_features(spine: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """The configured training-set engine (``FTI_TRAINING_SET_ENGINE``: duckdb or spark)."""
    settings = settings or get_settings()
    if settings.training_set_engine == "spark":
        return point_in_time_join_spark(spine, settings)
    return point_in_time_join(spine, settings)


def content_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the frame's content (column names, types and values, in order)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(repr(list(zip(df.columns, map(str, df.dtypes), strict=True))).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
    return h.hexdigest()


def time_split(
    df: pd.DataFrame,
    cutoff_day: date,
    test_days: int = 3,
    validation_days: int = 3,
    tz: str = "America/New_York",
) -> pd.Series:
    """``train`` / ``validation`` / ``test`` by scheduled departure day, never shuffled across
    time: the test window is the last ``test_days`` local days up to ``cutoff_day``, validation
    the ``validation_days`` before it, train everything earlier."""
    import pandas as pd

    local_day = df["sched_dep_ts"].dt.tz_convert(tz).dt.date
    test_start = cutoff_day - timedelta(days=test_days - 1)
    val_start = test_start - timedelta(days=validation_days)
    split = pd.Series("train", index=df.index)
    split[local_day >= val_start] = "validation"
    split[local_day >= test_start] = "test"
    split[local_day > cutoff_day] = "after_cutoff"
    return split


def write_snapshot(df: pd.DataFrame, folder: Path, label: str | None = None) -> tuple[Path, str]:
    """Write ``df`` as ``<folder>/<hash>.parquet`` (write-then-rename), its label column
    (default: the contract's) named in the file's metadata; returns path and hash."""
    import pyarrow as pa

    label = label or contract().label
    digest = content_hash(df)
    path = Path(folder) / f"{digest[:16]}.parquet"
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), LABEL_METADATA: label.encode()}
    )
    with files.replacing(path) as tmp:
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    return path, digest


def expectations(
    cutoff_end, feature_columns: list[str], ts_columns: list[str], settings: Settings | None = None
) -> list:
    """The training set's contract: label share, null rates, no feature from after its row, and
    no row after the cut-off.

    Each feature's null rate is its declaration's ``present_share`` (``fti.ground.contract``;
    weather gusts are only reported when there are gusts, planes missing from the planes table
    have no attributes, a delay mean is null for a route with no departure in its window). Its
    values were checked by its view's suite before the partition was published.
    """
    import great_expectations.expectations as gxe

    key = contract(settings)
    label = key.label
    out = [
        gxe.ExpectTableRowCountToBeBetween(min_value=100),
        gxe.ExpectColumnValuesToNotBeNull(column=label),
        gxe.ExpectColumnValuesToBeInSet(column=label, value_set=[0, 1]),
        gxe.ExpectColumnMeanToBeBetween(column=label, min_value=0.05, max_value=0.6),
        gxe.ExpectColumnValuesToBeUnique(column=key.flight_key),
        gxe.ExpectColumnValuesToBeBetween(column="sched_dep_ts", max_value=cutoff_end),
    ]
    declared = key.features
    for c in feature_columns:
        spec = declared.get(c)
        mostly = spec.present_share if spec is not None else DEFAULT_PRESENT_SHARE
        if mostly > 0:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=mostly))
    for c in ts_columns:
        out.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="event_timestamp",
                column_B=c,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            )
        )
    return out


def validate(
    df: pd.DataFrame, cutoff_end, report_dir: Path | None, settings: Settings | None = None
):
    """Great Expectations on a training set; raises ``ValidationFailed`` naming each failure."""
    from fti.ground.validation import validate_frame

    ts_cols = [c for c in df.columns if c.startswith(TS_PREFIX)]
    fixed = {*SPINE_COLUMNS, contract(settings).label, "event_timestamp", *ts_cols}
    features = [c for c in df.columns if c not in fixed]
    return validate_frame(
        df,
        boundary="training set",
        expectations=expectations(cutoff_end, features, ts_cols, settings),
        report_dir=report_dir,
    )
