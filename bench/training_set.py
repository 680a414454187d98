"""Benchmark of the training pipeline's data and model steps: prints figures, asserts nothing.

What it measures, in one run, against a state directory of its own (``--home``, default
``.fti/bench/training_set``; kept between runs because preparing a year of features takes a
while; ``--rebuild`` prepares it again):

0. **Preparation (not the subject).** The raw data of all of 2013 landed and its features
   computed by the project's Spark job, month by month in one Spark session, then published
   into the offline store (validation is skipped: the feature pipeline's tests cover it) and
   registered with ``feast apply``. Done once per home; its time is printed.

1. **Training set, full 2013 spine.** The spine is every departed flight of 2013 (~327k rows)
   stamped at scheduled departure minus 2 h. Timed side by side on that same spine, each the
   median of ``--repeats`` runs:
   - the project's configured path, ``training.dataset.point_in_time_join`` (DuckDB ASOF join
     per view with Feast's TTL rule and Feast's on-demand transformation);
   - the *floor*: one plain DuckDB statement chaining an ``ASOF LEFT JOIN`` per view over the
     same parquet files (TTL applied, nothing else: no registry, no on-demand features).
   Both results are compared cell by cell (every batch-view feature of every row) and the
   ratio project/floor is printed (the issue's target: <= 2x).

2. **The Spark path** (``FTI_TRAINING_SET_ENGINE=spark``, what users who scale out pay): the
   same spine through ``training.dataset.point_in_time_join_spark`` in a local Spark session
   (``FTI_SPARK_MASTER``), timed once (session start apart) and compared with the DuckDB result.

3. **Feast's file offline store**, ``FeatureStore.get_historical_features`` with the feature
   service, on the first N rows of the spine for N = 100 (year's store) or 1k (January's),
   doubling, each in a child process limited to ``--feast-memory-gib`` of address space and
   ``--feast-timeout`` seconds; the largest N it completes is reported with its time and the
   project's time on the same rows. First against the year's store, then against a store holding
   only January (hard links to the same partition files, its own ``feast apply``): the demo's.

4. **Training.** A snapshot of the year (time split: the last 14 days test, the 14 before
   validation) is trained with ``python -m training train`` on the CPU for ``--epochs`` epochs
   (samples/s as the entry point measures it: training-loop samples over training-loop time),
   and the test-window ROC AUC is printed next to the scikit-learn baseline's
   (``training.gate.baseline_metrics``, the same snapshot and window). The snapshot's path is
   printed: the GPU figure in docs/benchmarks.md comes from running the same entry point on it.

5. **One prediction time.** For ``FTI_TRAINING_AS_OF=day_start`` (the default) and ``horizon``
   (rows 2 h before departure, the earlier rule): a model trained on that year's training set,
   its ROC AUC on the test window as the gate measures it (the training set's own rows) next to
   the ROC AUC the same model gets on the same flights from the features batch scoring gives
   them as of each day's start (the online service answers the same features:
   tests/serving/test_parity.py); the feature cells that differ, and the largest probability
   difference (the target for ``day_start``: equal, by construction).

Run it (from the repository root)::

    .venv/bin/python bench/training_set.py               # everything: ~25 min on 2 cores, first run
    .venv/bin/python bench/training_set.py --skip-feast --skip-spark
    .venv/bin/python bench/training_set.py --json /tmp/training_set.json

Figures go into docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the data set's weather ends on 2013-12-30 at 18:00, so the 31st has no weather partition (the
# feature pipeline's raw validation stops that day): the year here is 1 Jan .. 30 Dec
YEAR_FIRST, YEAR_LAST = date(2013, 1, 1), date(2013, 12, 30)


def _months(first: date, last: date):
    d = first
    while d <= last:
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        yield d, min(nxt, last + timedelta(days=1))
        d = nxt


def prepare(settings) -> dict:
    """Land, compute and publish all of 2013 (month by month, one Spark session); feast apply."""
    from zoneinfo import ZoneInfo

    from feature_repo.jobs import features, land, pipeline
    from fti.ground.spark import build_session

    marker = settings.home / "prepared.json"
    if marker.exists():
        return json.loads(marker.read_text())
    zone = ZoneInfo(settings.timezone)

    def at(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=zone)

    t0 = time.perf_counter()
    land.land(at(YEAR_FIRST), at(YEAR_LAST + timedelta(days=1)), settings)
    t_land = time.perf_counter() - t0
    spark = build_session(settings)
    t1 = time.perf_counter()
    for a, b in _months(YEAR_FIRST, YEAR_LAST):
        if (
            settings.offline_dir / "flight_labels" / f"date={(b - timedelta(days=1)).isoformat()}"
        ).exists():
            continue  # published by an earlier, interrupted preparation
        staged = features.run(at(a), at(b), settings, spark=spark)
        pipeline.publish(at(a), at(b), staged["staging"], settings)
        print(f"  prepared {a:%B}: {staged['rows']}", flush=True)
    t_compute = time.perf_counter() - t1
    spark.stop()
    pipeline.apply_registry(settings)
    out = {"land_s": round(t_land, 1), "compute_publish_s": round(t_compute, 1)}
    marker.write_text(json.dumps(out))
    return out


def floor_join(spine, settings):
    """The floor: one plain DuckDB statement, an ASOF LEFT JOIN per view, TTL applied."""
    import duckdb

    from fti.ground import featurestore
    from fti.ground.featurestore import TS_PREFIX, feature_service_name, resolve_service

    specs, _ = resolve_service(featurestore.feature_store(settings), feature_service_name(settings))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    base = spine.reset_index(drop=True).copy()
    base["_row"] = range(len(base))
    con.register("spine", base)
    select, joins = ["s.*"], []
    for i, spec in enumerate(specs):
        a = f"v{i}"
        ttl = f"INTERVAL {int(spec.ttl.total_seconds())} SECONDS"
        fresh = f"{a}.event_timestamp >= s.event_timestamp - {ttl}"
        select += [f'CASE WHEN {fresh} THEN {a}."{f}" END AS "{f}"' for f in spec.features]
        select.append(f'CASE WHEN {fresh} THEN {a}.event_timestamp END AS "{TS_PREFIX}{spec.name}"')
        on = " AND ".join(f's."{k}" = {a}."{k}"' for k in spec.keys)
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{spec.path}/**/*.parquet', hive_partitioning = false) {a} "
            f"ON {on} AND s.event_timestamp >= {a}.event_timestamp"
        )
    sql = f"SELECT {', '.join(select)} FROM spine s {' '.join(joins)} ORDER BY s._row"
    df = con.execute(sql).df()
    con.close()
    return df.drop(columns="_row")


def compare(ours, other, label: str) -> dict:
    """Cell-by-cell equality on the other frame's columns; returns counts (prints mismatches)."""
    import numpy as np
    import pandas as pd

    cols = [c for c in other.columns if c in ours.columns]
    assert len(ours) == len(other), f"{label}: {len(ours)} rows vs {len(other)}"
    bad = {}
    for c in cols:
        a, b = ours[c].reset_index(drop=True), other[c].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            av, bv = (
                a.to_numpy(dtype="float64", na_value=np.nan),
                b.to_numpy(dtype="float64", na_value=np.nan),
            )
            same = np.isclose(av, bv, rtol=1e-9, atol=1e-12, equal_nan=True)
        else:
            same = (a.isna() & b.isna()) | (a.astype(str) == b.astype(str))
            same = same.to_numpy()
        if not same.all():
            bad[c] = int((~same).sum())
    return {
        "rows": len(ours),
        "columns": len(cols),
        "cells": len(ours) * len(cols),
        "mismatched": bad,
    }


def _median_time(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, result


def month_store(settings, first: date, last: date) -> Path:
    """A second home whose offline store holds only the days first..last (hard links to the
    partition files: Feast's dask reader does not follow symlinked folders), registered with
    feast apply: Feast's file store on a store the size of the demo's."""
    home = settings.home / f"store-{first.isoformat()}_{last.isoformat()}"
    if (home / "prepared").exists():
        return home
    for view_dir in settings.offline_dir.iterdir():
        for part in view_dir.glob("date=*"):
            if first.isoformat() <= part.name.removeprefix("date=") <= last.isoformat():
                dst = home / "data" / "offline" / view_dir.name / part.name
                dst.mkdir(parents=True, exist_ok=True)
                for f in part.glob("*.parquet"):
                    if not (dst / f.name).exists():
                        os.link(f, dst / f.name)
    env = {**os.environ, "FTI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "fti", "feast-apply"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (home / "prepared").write_text("")
    return home


def feast_child(n: int) -> None:
    """Child process: Feast's get_historical_features on the first n spine rows; prints seconds."""
    from fti.ground import featurestore
    from fti.ground.settings import get_settings
    from training import dataset

    settings = get_settings()
    spine = dataset.load_spine(settings).head(n)
    store = featurestore.feature_store(settings)
    entity_df = spine[
        ["flight_id", "carrier", "origin", "dest", "tailnum", "sched_dep_ts", "event_timestamp"]
    ]
    t = time.perf_counter()
    df = store.get_historical_features(
        entity_df=entity_df,
        features=store.get_feature_service(featurestore.feature_service_name(settings)),
    ).to_df()
    print(json.dumps({"n": n, "seconds": time.perf_counter() - t, "rows": len(df)}))


def feast_ladder(
    settings, spine, env, memory_gib: float, timeout: float, start: int = 1000
) -> dict:
    """Feast's get_historical_features on the first 1k, 2k, 4k, ... spine rows (child processes
    under a memory limit and a timeout) until one fails; ours timed on the same rows."""
    from training import dataset

    completed, failure, n = None, None, start
    while n <= len(spine):
        limit = int(memory_gib * 2**30)
        code = (
            f"import resource,sys; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
            f"sys.path.insert(0, {str(ROOT)!r}); from bench.training_set import feast_child; "
            f"feast_child({n})"
        )
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            failure = f"{n} rows: no answer within {timeout:.0f} s"
            break
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            failure = f"{n} rows: exit {proc.returncode} ({tail[:160]})"
            break
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        t = time.perf_counter()
        dataset.point_in_time_join(spine.head(n), settings)
        res["ours_seconds"] = time.perf_counter() - t
        completed = res
        print(
            f"  feast file store: {n} rows in {res['seconds']:.1f} s "
            f"(returned {res['rows']}; ours {res['ours_seconds']:.2f} s)",
            flush=True,
        )
        # doubling, and the whole spine as the last size
        n = len(spine) if n < len(spine) < 2 * n else 2 * n
    return {
        "largest_completed": completed,
        "stopped_at": failure,
        "memory_limit_gib": memory_gib,
        "timeout_s": timeout,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", type=Path, default=ROOT / ".fti" / "bench" / "training_set")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--skip-spark", action="store_true")
    p.add_argument("--skip-feast", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--feast-memory-gib", type=float, default=6.0)
    p.add_argument("--feast-timeout", type=float, default=300.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    home = args.home.resolve()
    if args.rebuild and home.exists():
        import shutil

        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["FTI_HOME"] = str(home)
    from fti.ground.settings import get_settings

    settings = get_settings()
    env = {**os.environ, "FTI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    report: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    }
    print(f"bench/training_set.py on {report['machine']}; home {home}", flush=True)

    print(
        "0. preparing 2013 (land, Spark features month by month, publish, feast apply)", flush=True
    )
    report["prepare"] = prepare(settings)
    print(f"   {report['prepare']}", flush=True)

    from training import dataset

    spine = dataset.load_spine(settings)
    print(f"1. training set, full spine: {len(spine)} rows", flush=True)
    dataset.point_in_time_join(spine.head(1000), settings)  # warm imports and the registry
    ours_s, ours_all, ours = _median_time(
        lambda: dataset.point_in_time_join(spine, settings), args.repeats
    )
    floor_s, floor_all, floor = _median_time(lambda: floor_join(spine, settings), args.repeats)
    same = compare(ours, floor, "floor")
    report["training_set"] = {
        "spine_rows": len(spine),
        "project_s": ours_s,
        "floor_s": floor_s,
        "ratio": ours_s / floor_s,
        "project_runs": ours_all,
        "floor_runs": floor_all,
        "equality": same,
    }
    print(
        f"   project path {ours_s:.2f} s, DuckDB floor {floor_s:.2f} s: {ours_s / floor_s:.2f}x "
        f"(median of {args.repeats}); equality: {same}",
        flush=True,
    )

    if not args.skip_spark:
        from fti.ground.spark import build_session

        t = time.perf_counter()
        spark = build_session(settings)
        session_s = time.perf_counter() - t
        t = time.perf_counter()
        sdf = dataset.point_in_time_join_spark(spine, settings, spark=spark)
        spark_s = time.perf_counter() - t
        spark.stop()
        same_spark = compare(ours, sdf[[c for c in floor.columns if c in sdf.columns]], "spark")
        report["spark"] = {
            "session_s": session_s,
            "join_s": spark_s,
            "ratio_to_floor": spark_s / floor_s,
            "master": settings.spark_master,
            "equality": same_spark,
        }
        print(
            f"2. Spark path ({settings.spark_master}): {spark_s:.1f} s (+{session_s:.1f} s session), "
            f"{spark_s / floor_s:.1f}x the floor; equality: {same_spark}",
            flush=True,
        )

    if not args.skip_feast:
        print("3. Feast file offline store, growing spines", flush=True)
        print("   on the year's store:", flush=True)
        year = feast_ladder(
            settings, spine, env, args.feast_memory_gib, args.feast_timeout, start=100
        )
        print(f"   {year}", flush=True)
        # the year's store may defeat it at any spine size; January's is the demo's store
        home = month_store(settings, date(2013, 1, 1), date(2013, 1, 31))
        from fti.ground.settings import Settings

        jan = Settings(home=home)
        print(f"   on January's store ({home}):", flush=True)
        month = feast_ladder(
            jan,
            dataset.load_spine(jan),
            {**env, "FTI_HOME": str(home)},
            args.feast_memory_gib,
            args.feast_timeout,
        )
        print(f"   {month}", flush=True)
        report["feast_file_store"] = {"year_store": year, "january_store": month}

    if not args.skip_train:
        print("4. training on the CPU", flush=True)
        df = ours
        last = df["sched_dep_ts"].dt.tz_convert(settings.timezone).dt.date.max()
        df["split"] = dataset.time_split(df, last, 14, 14, settings.timezone)
        snap, digest = dataset.write_snapshot(df, settings.data_dir / "training_sets")
        out = home / "model-cpu"
        train_cpu(snap, out, args.epochs, env)
        res = json.loads((out / "metrics.json").read_text())
        from training import gate

        t = time.perf_counter()
        base = gate.baseline_metrics(df)
        base_s = time.perf_counter() - t
        report["training"] = {
            "snapshot": str(snap),
            "hash": digest,
            "splits": df["split"].value_counts().to_dict(),
            "cpu_samples_per_second": res["samples_per_second"],
            "epochs": args.epochs,
            "train_seconds": res["train_seconds"],
            "torch_test": res["test"],
            "baseline_test": base,
            "baseline_fit_s": base_s,
        }
        print(f"   snapshot {snap} ({len(df)} rows, {report['training']['splits']})", flush=True)
        print(
            f"   CPU: {res['samples_per_second']:.0f} samples/s ({args.epochs} epochs, "
            f"{res['train_seconds']:.1f} s); test ROC AUC torch {res['test']['roc_auc']:.4f} "
            f"vs HGB baseline {base['roc_auc']:.4f}",
            flush=True,
        )

    if not args.skip_train:
        print(
            "5. one prediction time: the gate's ROC AUC vs what the batch path delivers", flush=True
        )
        report["prediction_time"] = {}
        for mode in ("day_start", "horizon"):
            got = prediction_time_cell(settings, mode, env, args)
            report["prediction_time"][mode] = got
            print(
                f"   FTI_TRAINING_AS_OF={mode}: gate (test window, {got['flights']} flights) "
                f"ROC AUC {got['gate_roc_auc']:.4f}; batch path on the same flights "
                f"{got['batch_roc_auc']:.4f} (difference {got['difference']:.2e}; largest "
                f"probability difference {got['max_probability_difference']:.2e}); "
                f"{got['feature_cells_differing']} of {got['feature_cells']} feature cells differ",
                flush=True,
            )

    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


def train_cpu(snapshot: Path, out: Path, epochs: int, env: dict) -> None:
    """``python -m training train`` on the CPU, as the pipeline runs it; stops the benchmark
    with the entry point's error when it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "training", "train", "--snapshot", str(snapshot), "--out", str(out)]
        + ["--epochs", str(epochs), "--device", "cpu"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])


def prediction_time_cell(settings, mode: str, env: dict, args) -> dict:
    """Train on the year's training set stamped by ``mode`` (FTI_TRAINING_AS_OF), then score
    its test window twice: with the training set's own rows (what the gate measures) and with
    the features batch scoring gives the same flights as of each day's start (what the batch
    path, and the online service, which answers the same features (tests/serving/test_parity.py),
    deliver)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from fti.ground.contract import contract
    from serving import batch
    from serving import model as served
    from training import dataset

    s = settings.model_copy(update={"training_as_of": mode})
    # its own spine per mode: cell 1's follows the configured default
    df = dataset.point_in_time_join(dataset.load_spine(s), s)
    last = df["sched_dep_ts"].dt.tz_convert(s.timezone).dt.date.max()
    df["split"] = dataset.time_split(df, last, 14, 14, s.timezone)
    snap, _ = dataset.write_snapshot(df, s.data_dir / "training_sets")
    out = Path(s.home) / f"model-{mode}"
    train_cpu(snap, out, args.epochs, env)
    model = served.load(out)
    label = contract(s).label
    test = df[df["split"] == "test"].reset_index(drop=True)
    gate_p = model.predict_proba(test)
    local = test["sched_dep_ts"].dt.tz_convert(s.timezone).dt.date
    parts = []
    for day in sorted(local.unique()):
        start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(s.timezone))
        flights = test.loc[local == day, dataset.SPINE_COLUMNS]
        parts.append(batch.features_as_of(flights, start, s))
    scored = pd.concat(parts).set_index("flight_id").loc[test["flight_id"]].reset_index()
    batch_p = model.predict_proba(scored)
    y = test[label].to_numpy().astype(int)
    features = [
        c for c in model.preprocessor.categorical + model.preprocessor.numeric if c in scored
    ]
    differing = 0
    for c in features:
        a, b = test[c], scored[c]
        same = (a.isna() & b.isna()) | (a == b)
        differing += int((~same).sum())
    gate_auc, batch_auc = float(roc_auc_score(y, gate_p)), float(roc_auc_score(y, batch_p))
    return {
        "flights": len(test),
        "gate_roc_auc": gate_auc,
        "batch_roc_auc": batch_auc,
        "difference": abs(gate_auc - batch_auc),
        "max_probability_difference": float(np.max(np.abs(gate_p - batch_p))),
        "feature_cells": len(features) * len(test),
        "feature_cells_differing": differing,
    }


if __name__ == "__main__":
    raise SystemExit(main())
