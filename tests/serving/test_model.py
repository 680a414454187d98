"""The served model: loaded once, scoring like the training gate does, resolved from the
configured directory or the registry's champion, with its version."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from fti.ground.settings import Settings
from serving import model
from training import gate, registry, train

pytestmark = pytest.mark.slow


def test_loaded_model_scores_like_the_gate(served_model, snapshot):
    df = pd.read_parquet(snapshot)
    loaded = model.load(served_model)
    assert loaded.version == "test-1"
    p = loaded.predict_proba(df)
    assert p.dtype == np.float64 and ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p, gate.score(served_model, df), rtol=0, atol=1e-6)


def test_a_configured_directory_is_served_nested_or_not(served_model, tmp_path):
    assert model.resolve(Settings(serving_model_dir=served_model)) == served_model
    # a Bento or an MLflow download may keep the files one folder down
    shutil.copytree(served_model, tmp_path / "bento" / "model")
    assert (
        model.resolve(Settings(serving_model_dir=tmp_path / "bento"))
        == tmp_path / "bento" / "model"
    )
    with pytest.raises(model.NoModel, match="not a directory"):
        model.resolve(Settings(serving_model_dir=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(model.NoModel, match="no model.pt"):
        model.resolve(Settings(serving_model_dir=tmp_path / "empty"))
    # without a recorded version a model says so
    shutil.copy(served_model / model.MODEL_FILE, tmp_path / "empty")
    assert model.load(tmp_path / "empty").version == model.UNREGISTERED


def test_without_a_directory_the_champion_is_downloaded_once(snapshot, tmp_path):
    s = Settings(home=tmp_path / "home")
    with pytest.raises(model.NoModel, match="no champion"):
        model.resolve(s)

    results = train.train(snapshot, tmp_path / "m", epochs=1)
    _, version = registry.register(tmp_path / "m", results, {"code_version": "test"}, s)
    registry.record_decision(version, gate.Decision(True, ["test"]), {}, s)

    staged = model.resolve(s)
    assert staged == s.serving_dir / "models" / f"{s.model_name}-v{version}"
    assert model.read_version(staged) == str(version)
    first = (staged / model.MODEL_FILE).stat().st_mtime_ns
    assert model.resolve(s) == staged  # already there: not downloaded again
    assert (staged / model.MODEL_FILE).stat().st_mtime_ns == first
    assert not [p for p in staged.parent.iterdir() if p.name.startswith(".download-")]
    loaded = model.load_served(s)
    assert loaded.version == str(version)
    np.testing.assert_allclose(
        loaded.predict_proba(pd.read_parquet(snapshot)),
        gate.score(tmp_path / "m", pd.read_parquet(snapshot)),
        atol=1e-6,
    )
