"""The model the service serves: which one, loaded once, applied to feature frames.

A model directory is what ``python -m training train`` writes (``model.pt``: weights and the
fitted preprocessing). Which directory: ``FTI_SERVING_MODEL_DIR`` when set (for example the
model packed into a Bento), otherwise the registry's champion, downloaded once into
``serving_dir/models/<name>-v<version>``. The version string travels with the directory in a
``model_version.txt`` beside ``model.pt`` (MLflow's version number; ``unregistered`` when the
directory has none), so a prediction always says which model made it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fti.ground import files
from fti.ground.settings import Settings, get_settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MODEL_FILE = "model.pt"
VERSION_FILE = "model_version.txt"
UNREGISTERED = "unregistered"
#: a probability at or above this is predicted class 1 (delayed by 15 minutes or more)
THRESHOLD = 0.5


class NoModel(LookupError):
    """No model to serve: none configured, none promoted, or its files are missing."""


def read_version(model_dir: Path) -> str:
    """The version recorded beside ``model.pt`` (``unregistered`` when none is)."""
    path = Path(model_dir) / VERSION_FILE
    return path.read_text().strip() if path.exists() else UNREGISTERED


def write_version(model_dir: Path, version: str) -> None:
    """Record ``version`` beside the model in ``model_dir``."""
    (Path(model_dir) / VERSION_FILE).write_text(f"{version}\n")


def _find_model_dir(root: Path) -> Path:
    """``root`` or the one folder under it that holds ``model.pt`` (MLflow nests artifacts)."""
    if (root / MODEL_FILE).exists():
        return root
    found = sorted(root.rglob(MODEL_FILE))
    if not found:
        raise NoModel(f"no {MODEL_FILE} under {root}")
    return found[0].parent


def stage_champion(
    settings: Settings | None = None, dest: Path | None = None, version: str | None = None
) -> Path:
    """Download the registry's champion (or registered ``version``) into ``dest`` (default
    ``serving_dir/models/<name>-v<version>``, reused when already there) with its version
    recorded beside it; returns the model directory. Raises :class:`NoModel` without a
    champion, ``LookupError`` for a version that is not registered."""
    from training import registry

    settings = settings or get_settings()
    champion = (
        registry.model_version(version, settings)
        if version is not None
        else registry.champion(settings)
    )
    if champion is None:
        raise NoModel(
            f"no champion for model {settings.model_name!r} in the registry "
            f"({settings.tracking_uri}): run the training pipeline until a model is promoted, "
            "or set FTI_SERVING_MODEL_DIR"
        )
    version = str(champion.version)
    dest = dest or settings.serving_dir / "models" / f"{settings.model_name}-v{version}"
    if (dest / MODEL_FILE).exists() and read_version(dest) == version:
        return dest
    # download beside the target, then rename: a killed download never looks like a model
    with (
        files.replacing(dest) as staged,
        tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp,
    ):
        got = _find_model_dir(registry.download(champion, Path(tmp), settings))
        write_version(got, version)
        shutil.move(str(got), staged)
    return dest


def resolve(settings: Settings | None = None) -> Path:
    """The model directory to serve: ``FTI_SERVING_MODEL_DIR``, else the champion (staged)."""
    settings = settings or get_settings()
    if settings.serving_model_dir is not None:
        path = Path(settings.serving_model_dir)
        if not path.is_dir():
            raise NoModel(f"FTI_SERVING_MODEL_DIR={path} is not a directory")
        return _find_model_dir(path)
    return stage_champion(settings)


@dataclass
class LoadedModel:
    """A model loaded once; :meth:`predict_proba` scores frames with training-set columns."""

    directory: Path
    version: str
    model: object
    preprocessor: object

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Delay probability per row of ``df`` (columns as in the training set), float64."""
        import numpy as np
        import torch

        cats, nums = self.preprocessor.transform(df)
        with torch.inference_mode():
            p = torch.sigmoid(self.model(cats, nums))
        return p.numpy().astype(np.float64)


def load(model_dir: Path, version: str | None = None) -> LoadedModel:
    """Load ``model_dir/model.pt`` for inference on the CPU (the same steps as
    ``training.gate.score``, done once)."""
    import torch

    from training.model import Preprocessor, build_model

    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not path.exists():
        raise NoModel(f"no {MODEL_FILE} in {model_dir}")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    pre = Preprocessor.from_json(saved["preprocessor"])
    model = build_model(pre, hidden=tuple(saved["hidden"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return LoadedModel(model_dir, version or read_version(model_dir), model, pre)


def load_served(settings: Settings | None = None) -> LoadedModel:
    """The model the service should serve, loaded (see :func:`resolve`)."""
    return load(resolve(settings))
