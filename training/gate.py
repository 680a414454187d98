"""The evaluation gate: a candidate is promoted only when it is measurably better.

The candidate, a scikit-learn baseline trained on the same snapshot, and the current champion
are scored on the same test window. ``decide`` promotes only if every metric is present and
finite, the absolute thresholds hold, the candidate is at least as good as the baseline, and it
beats the champion's ROC AUC by the configured margin. Every reason for a "no" is returned, so
the run can say plainly why nothing changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fti.ground.contract import contract
from training.train import metrics

REQUIRED = ("roc_auc", "log_loss", "calibration_error")


@dataclass(frozen=True)
class GateConfig:
    """The gate's thresholds (``FTI_GATE_*``)."""

    min_roc_auc: float = 0.55
    max_log_loss: float = 0.6
    max_calibration_error: float = 0.1
    #: the candidate's ROC AUC must exceed the champion's by at least this much
    champion_margin: float = 0.002
    #: the candidate's ROC AUC must be at least the baseline's minus this much
    baseline_tolerance: float = 0.0

    @classmethod
    def from_settings(cls, settings) -> GateConfig:
        """The thresholds configured by ``FTI_GATE_*``."""
        return cls(
            min_roc_auc=settings.gate_min_roc_auc,
            max_log_loss=settings.gate_max_log_loss,
            max_calibration_error=settings.gate_max_calibration_error,
            champion_margin=settings.gate_champion_margin,
            baseline_tolerance=settings.gate_baseline_tolerance,
        )


@dataclass
class Decision:
    """Whether to promote, and every reason why (not)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    #: not promoted only because it does not beat the champion by the margin: every threshold
    #: and the baseline hold, so it may shadow the champion on live traffic (``challenger``)
    challenger: bool = False

    def describe(self) -> str:
        """The decision as one line for logs and the registry."""
        if self.promote:
            return "promote: " + "; ".join(self.reasons)
        return "not promoted: " + "; ".join(self.reasons)


def _finite(m: dict | None, key: str) -> bool:
    v = None if m is None else m.get(key)
    return isinstance(v, (int, float)) and math.isfinite(v)


def decide(
    candidate: dict, baseline: dict | None, champion: dict | None, config: GateConfig = GateConfig()
) -> Decision:
    """Whether ``candidate`` (test-window metrics) replaces ``champion`` (None: no champion)."""
    reasons: list[str] = []
    missing = [k for k in REQUIRED if not _finite(candidate, k)]
    if missing:
        return Decision(False, [f"candidate metric missing or not a number: {', '.join(missing)}"])
    c = candidate
    if c["roc_auc"] < config.min_roc_auc:
        reasons.append(f"ROC AUC {c['roc_auc']:.4f} < minimum {config.min_roc_auc}")
    if c["log_loss"] > config.max_log_loss:
        reasons.append(f"log loss {c['log_loss']:.4f} > maximum {config.max_log_loss}")
    if c["calibration_error"] > config.max_calibration_error:
        reasons.append(
            f"calibration error {c['calibration_error']:.4f} > maximum {config.max_calibration_error}"
        )
    if baseline is not None:
        if not _finite(baseline, "roc_auc"):
            reasons.append("baseline ROC AUC missing or not a number")
        elif c["roc_auc"] < baseline["roc_auc"] - config.baseline_tolerance:
            reasons.append(
                f"ROC AUC {c['roc_auc']:.4f} below the baseline's {baseline['roc_auc']:.4f}"
            )
    qualified = not reasons  # every threshold and the baseline hold
    if champion is not None:
        if not _finite(champion, "roc_auc"):
            reasons.append("champion ROC AUC missing or not a number: keeping the champion")
            qualified = False
        elif c["roc_auc"] < champion["roc_auc"] + config.champion_margin:
            reasons.append(
                f"ROC AUC {c['roc_auc']:.4f} does not beat the champion's "
                f"{champion['roc_auc']:.4f} by {config.champion_margin}"
            )
    if reasons:
        if qualified:
            reasons.append("passes the thresholds: the challenger, shadowing the champion")
        return Decision(False, reasons, challenger=qualified)
    why = [
        f"ROC AUC {c['roc_auc']:.4f}, log loss {c['log_loss']:.4f}, "
        f"calibration error {c['calibration_error']:.4f} pass the thresholds"
    ]
    why.append(
        "no champion yet"
        if champion is None
        else f"beats the champion's ROC AUC {champion['roc_auc']:.4f}"
    )
    return Decision(True, why)


def score(model_dir: Path, df: pd.DataFrame) -> np.ndarray:
    """Probabilities of a model written by ``training.train`` for the rows of ``df``."""
    import torch

    from training.model import Preprocessor, build_model

    saved = torch.load(model_dir / "model.pt", weights_only=False)
    pre = Preprocessor.from_json(saved["preprocessor"])
    model = build_model(pre, hidden=tuple(saved["hidden"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    cats, nums = pre.transform(df)
    with torch.no_grad():
        return torch.sigmoid(model(cats, nums)).numpy()


def baseline_metrics(snapshot: pd.DataFrame, seed: int = 0) -> dict:
    """A gradient-boosting baseline trained on the same train split, scored on the test window."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from training.model import Preprocessor

    label = contract().label
    train = snapshot[snapshot["split"] == "train"]
    test = snapshot[snapshot["split"] == "test"]
    pre = Preprocessor.fit(train, exclude={label})

    def features(df: pd.DataFrame) -> np.ndarray:
        cats, nums = pre.transform(df)
        return np.hstack([cats.numpy(), nums.numpy()[:, : len(pre.numeric)]])

    n_cat = len(pre.categorical)
    model = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        random_state=seed,
        categorical_features=list(range(n_cat)) if n_cat else None,
    )
    model.fit(features(train), train[label].to_numpy())
    p = model.predict_proba(features(test))[:, 1]
    return metrics(test[label].to_numpy(), p)
