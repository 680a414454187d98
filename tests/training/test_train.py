"""The training entry point on a real training set built from the feature pipeline's output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from training import train

pytestmark = pytest.mark.slow


def test_trains_and_writes_model_metrics_and_plots(snapshot, tmp_path):
    res = train.train(snapshot, tmp_path, epochs=3, seed=3)
    for name in ("model.pt", "metrics.json", "predictions.parquet"):
        assert (tmp_path / name).stat().st_size > 0
    for name in ("roc.png", "calibration.png", "loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["device"] == "cpu" and saved["samples_per_second"] > 0
    assert len(saved["history"]) == 3
    for split in ("validation", "test"):
        m = saved[split]
        assert 0 <= m["roc_auc"] <= 1 and m["log_loss"] > 0 and 0 <= m["calibration_error"] <= 1
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    assert preds["probability"].between(0, 1).all() and len(preds) == res["test"]["rows"]


def test_same_seed_same_model(snapshot, tmp_path):
    a = train.train(snapshot, tmp_path / "a", epochs=2, seed=11)
    b = train.train(snapshot, tmp_path / "b", epochs=2, seed=11)
    assert a["test"] == b["test"] and a["history"] == b["history"]
    pa = pd.read_parquet(tmp_path / "a" / "predictions.parquet")
    pb = pd.read_parquet(tmp_path / "b" / "predictions.parquet")
    pd.testing.assert_frame_equal(pa, pb)


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0.01, 0.99)
    p[:50] = 0.5  # ties
    assert train.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert train.log_loss(y, p) == pytest.approx(log_loss(y, p), abs=1e-9)
    assert train.calibration_error(np.array([0, 1, 1, 0]), np.array([0.0, 1.0, 1.0, 0.0])) == 0


def test_snapshot_without_split_is_refused(snapshot, tmp_path):
    bad = tmp_path / "nosplit.parquet"
    pd.read_parquet(snapshot).drop(columns="split").to_parquet(bad)
    with pytest.raises(ValueError, match="split"):
        train.train(bad, tmp_path / "out", epochs=1)


def test_entry_point_needs_no_platform_libraries(snapshot, tmp_path):
    """`python -m training train` runs in a slim image: no Airflow, Feast, Spark, GX, MLflow."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['training', 'train', '--snapshot', {str(snapshot)!r}, '--out', {str(tmp_path)!r},"
        " '--epochs', '1']\n"
        "try:\n    runpy.run_module('training', run_name='__main__')\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('airflow', 'feast', 'pyspark', 'great_expectations', 'mlflow', 'sklearn')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 1


def test_fast_preprocessing_equals_the_per_column_form(snapshot):
    """Serving's hot path (numpy per block) gives exactly the plain pandas form's tensors,
    unknown categories, nulls and strings in numeric columns included."""
    import torch

    from training.model import Preprocessor

    df = pd.read_parquet(snapshot)
    pre = Preprocessor.fit(df[df["split"] == "train"])
    odd = df.head(5).copy()
    odd.loc[odd.index[0], "carrier"] = "ZZ"  # not in the vocabulary
    odd.loc[odd.index[1], "plane_engine_type"] = None
    odd["temp_f"] = odd["temp_f"].astype(object)
    odd.loc[odd.index[2], "temp_f"] = "n/a"  # coerced to missing
    for part in (df, df.head(1), odd, df.iloc[0:0]):
        fast, plain = pre.transform(part), _per_column(pre, part)
        assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])
    assert pre.transform(odd)[0][0, pre.categorical.index("carrier")] == 0


def _per_column(pre, df):
    """The plain pandas form of ``Preprocessor.transform``, one column at a time."""
    import torch

    cats = np.zeros((len(df), len(pre.categorical)), dtype=np.int64)
    for j, c in enumerate(pre.categorical):
        index = {v: i + 1 for i, v in enumerate(pre.vocab[c])}
        cats[:, j] = df[c].astype(str).map(index).fillna(0).astype(np.int64).to_numpy()
    nums = np.zeros((len(df), 2 * len(pre.numeric)), dtype=np.float32)
    for j, c in enumerate(pre.numeric):
        col = pd.to_numeric(df[c], errors="coerce").astype("float64").to_numpy()
        missing = np.isnan(col)
        nums[:, j] = np.where(missing, 0.0, (col - pre.mean[c]) / pre.std[c])
        nums[:, len(pre.numeric) + j] = missing
    return torch.from_numpy(cats), torch.from_numpy(nums)
