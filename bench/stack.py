"""Benchmark of the compose stack: prints figures, asserts nothing.

In one run:

1. **Cold build time per image**: ``docker build --no-cache`` of base, spark, airflow, serving
   and training (CPU) in that order (the base images, pulled or stand-ins, are present first and
   not counted; the wheelhouse ``docker/wheels`` is used when filled: ``make stack-wheels``).
2. **Image sizes** (``docker image inspect``: each image's whole size, shared layers included).
3. **Up -> healthy**: ``docker-compose up -d`` of a fresh project with fresh volumes until every
   healthcheck passes.
4. **One feature -> training -> inference cycle in the stack** through Airflow's REST API
   (``--days`` feature days one after another, one training run, one inference run), next to
   **the same cycle on the embedded default** (``dag.test`` in one process, SQLite, local Spark,
   ``fti.apps.demo``), with the same days, epochs and gate.

Run it from the repository root: ``.venv/bin/python bench/stack.py`` (``make stack-bench``).
Options: ``--days 2013-01-01..2013-01-03``, ``--epochs 2``, ``--warm`` (skip ``--no-cache``),
``--skip-embedded``, ``--json PATH``. About 25-35 minutes on 2 cores. Figures go into
docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


stackctl = _load("fti_stackctl", ROOT / "docker" / "stack.py")
stack_env = _load("fti_stack_env", ROOT / "docker" / "stack_env.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _days(text: str) -> list[date]:
    first, _, last = text.partition("..")
    a, b = date.fromisoformat(first), date.fromisoformat(last or first)
    if b < a:
        raise argparse.ArgumentTypeError(f"{text}: the last day is before the first")
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


def _knobs(epochs: int) -> dict[str, str]:
    """The same lean settings for both shapes: short test/validation windows, a gate that
    promotes the first model (so the inference run deploys)."""
    return {
        "FTI_TRAINING_EPOCHS": str(epochs),
        "FTI_TRAINING_TEST_DAYS": "1",
        "FTI_TRAINING_VALIDATION_DAYS": "1",
        "FTI_GATE_MIN_ROC_AUC": "0",
        "FTI_GATE_MAX_LOG_LOSS": "100",
        "FTI_GATE_MAX_CALIBRATION_ERROR": "1",
        "FTI_GATE_BASELINE_TOLERANCE": "1",
    }


def stack_cycle(days: list[date], epochs: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="fti-bench-stack-"))
    secrets = stack_env.generate()
    ports = {k: _free_port() for k in stack_env.PORTS}
    env_file = folder / ".env"
    stack_env.write(env_file, secrets, ports)
    with env_file.open("a") as f:
        f.writelines(f"{k}={v}\n" for k, v in {**_knobs(epochs), "FTI_SERVING_POLL_S": "3"}.items())
    stack = stackctl.Stack(project=f"ftibench{os.getpid()}", env_file=env_file)
    out: dict = {}
    try:
        t0 = time.monotonic()
        stack.up()
        stack.wait_healthy(timeout=900)
        out["up_to_healthy_s"] = time.monotonic() - t0
        print(f"up -> all healthy: {out['up_to_healthy_s']:.0f} s", flush=True)
        af = stackctl.AirflowAPI(
            f"http://127.0.0.1:{ports['STACK_AIRFLOW_PORT']}", secrets["AIRFLOW_ADMIN_PASSWORD"]
        )
        af.wait_dags(["feature_pipeline", "training_pipeline", "inference_pipeline"])
        t0 = time.monotonic()
        for d in days:
            t = time.monotonic()
            midnight = f"{d.isoformat()}T00:00:00-05:00"
            af.run_once("feature_pipeline", midnight, stack)
            print(f"  stack feature_pipeline {d}: {time.monotonic() - t:.0f} s", flush=True)
        out["stack_features_s"] = time.monotonic() - t0
        for dag_id in ("training_pipeline", "inference_pipeline"):
            t = time.monotonic()
            af.run_once(dag_id, None, stack)
            out[f"stack_{dag_id}_s"] = time.monotonic() - t
            print(f"  stack {dag_id}: {out[f'stack_{dag_id}_s']:.0f} s", flush=True)
        out["stack_cycle_s"] = time.monotonic() - t0
    finally:
        stack.down()
    return out


def embedded_cycle(days: list[date], epochs: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix="fti-bench-embedded-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FTI_", "AIRFLOW"))}
    env.update({"FTI_HOME": str(home), "FTI_SERVING_PORT": str(_free_port()), **_knobs(epochs)})
    exports = subprocess.run(
        [sys.executable, "-m", "fti", "env"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in exports.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    code = f"""
import json, time
from datetime import date
from pathlib import Path
from fti.apps.demo import run_days, run_training, run_inference
from fti.ground.settings import get_settings
from serving import rollout
s = get_settings(); out = {{}}
t0 = time.monotonic()
states = run_days(date.fromisoformat({days[0].isoformat()!r}), date.fromisoformat({days[-1].isoformat()!r}), s, log=Path({str(home / "features.log")!r}))
out['embedded_features_s'] = time.monotonic() - t0
t = time.monotonic(); tr = run_training(s, log=Path({str(home / "training.log")!r})); out['embedded_training_pipeline_s'] = time.monotonic() - t
t = time.monotonic(); inf = run_inference(s, log=Path({str(home / "inference.log")!r})); out['embedded_inference_pipeline_s'] = time.monotonic() - t
out['embedded_cycle_s'] = time.monotonic() - t0
out['states'] = [str(x) for _, x in states] + [tr['state'], inf['state']]
rollout.stop_local(s)
print('BENCH_JSON ' + json.dumps(out), flush=True)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"embedded cycle failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON "))
    return json.loads(line.removeprefix("BENCH_JSON "))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/stack.py", description=__doc__.splitlines()[0])
    p.add_argument("--days", type=_days, default=_days("2013-01-01..2013-01-03"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--warm", action="store_true", help="builds with the cache (not cold)")
    p.add_argument("--skip-embedded", action="store_true")
    p.add_argument(
        "--only-embedded", action="store_true", help="only the embedded cycle (no Docker needed)"
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.only_embedded:
        results = embedded_cycle(args.days, args.epochs)
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        return 0
    problem = stackctl.engine_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(
        f"{platform.node()}: {os.cpu_count()} cores, {platform.python_version()}; "
        f"days {args.days[0]}..{args.days[-1]}, {args.epochs} epochs",
        flush=True,
    )
    results: dict = {"bases": stackctl.ensure_bases()}
    print(f"base images: {results['bases']}", flush=True)
    results["build_s"] = stackctl.build(no_cache=not args.warm)
    results["size_bytes"] = stackctl.image_sizes()
    print(f"\n{'image':<10} {'build (s)':>10} {'size (GB)':>10}")
    for name, seconds in results["build_s"].items():
        print(f"{name:<10} {seconds:>10.0f} {results['size_bytes'][name] / 1e9:>10.2f}")
    print(flush=True)
    results.update(stack_cycle(args.days, args.epochs))
    if not args.skip_embedded:
        results.update(embedded_cycle(args.days, args.epochs))
    print(f"\n{'cycle (s)':<22} {'stack':>8} {'embedded':>9}")
    for part in ("features", "training_pipeline", "inference_pipeline", "cycle"):
        s = results.get(f"stack_{part}_s")
        e = results.get(f"embedded_{part}_s")
        print(f"{part:<22} {s or float('nan'):>8.0f} {e or float('nan'):>9.0f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
