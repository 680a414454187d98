"""The training entry point: ``python -m training train --snapshot S --out DIR``.

Reads a training-set snapshot (parquet with a ``split`` column: train / validation / test),
trains :class:`training.model.DelayModel` with a fixed seed, keeps the epoch with the lowest
validation loss, and writes into ``--out``:

- ``model.pt`` (weights + fitted preprocessing), ``metrics.json``, ``predictions.parquet``
  (test-window probabilities), and ``roc.png``, ``calibration.png``, ``loss.png``.

CUDA with mixed precision (bfloat16 autocast) when a GPU is present, the CPU otherwise. Only
torch, numpy, pandas, pyarrow and matplotlib (for the PNGs) are needed: it runs in a slim image.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from training.model import Preprocessor, build_model
from training.snapshots import snapshot_label

# ---------------------------------------------------------------- metrics (numpy, no sklearn)


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count half)."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(p).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of ``p`` against ``y`` (``p`` clipped to ``[eps, 1 - eps]``)."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            err += m.mean() * abs(y[m].mean() - p[m].mean())
    return float(err)


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, log loss, calibration error, positive rate and row count of ``p`` against ``y``."""
    return {
        "roc_auc": roc_auc(y, p),
        "log_loss": log_loss(y, p),
        "calibration_error": calibration_error(y, p),
        "positive_rate": float(np.mean(y)),
        "rows": int(len(y)),
    }


# ---------------------------------------------------------------- training


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; a torch generator for the batch order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def _predict(model, cats, nums, device, amp: bool, batch: int = 8192) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(cats), batch):
            c, n = cats[i : i + batch].to(device), nums[i : i + batch].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out.append(torch.sigmoid(model(c, n).float()).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def train(
    snapshot: Path,
    out: Path,
    *,
    epochs: int = 12,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | None = None,
    hidden: tuple[int, ...] = (64, 32),
    dropout: float = 0.5,
    weight_decay: float = 1e-2,
    shuffle_labels: bool = False,
) -> dict:
    """Train on ``snapshot`` and write the model, metrics and plots to ``out``."""
    label = snapshot_label(snapshot)
    df = pd.read_parquet(snapshot)
    if "split" not in df.columns:
        raise ValueError(f"{snapshot} has no 'split' column (train/validation/test)")
    parts = {
        name: df[df["split"] == name].reset_index(drop=True)
        for name in ("train", "validation", "test")
    }
    for name, part in parts.items():
        if part.empty:
            raise ValueError(f"{snapshot}: the {name} split is empty")
    gen = seed_everything(seed)
    if shuffle_labels:  # a deliberately worthless model, for the evaluation gate's tests
        parts["train"][label] = np.random.default_rng(seed).permutation(
            parts["train"][label].to_numpy()
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    amp = dev.type == "cuda"

    pre = Preprocessor.fit(parts["train"], exclude={label})
    tensors = {
        k: (*pre.transform(v), torch.tensor(v[label].to_numpy(), dtype=torch.float32))
        for k, v in parts.items()
    }
    model = build_model(pre, hidden=tuple(hidden), dropout=dropout).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    # the training split lives on the device for the whole run (a year of flights is ~100 MB):
    # batches are index gathers there, with no host-to-device copy per step
    cats, nums, ys = (t.to(dev) for t in tensors["train"])
    history, best, best_state = [], float("inf"), None
    t0, seen = time.perf_counter(), 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(ys), generator=gen).to(dev)
        total = torch.zeros((), device=dev)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model(cats[idx], nums[idx]).float(), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)  # summed on the device: no sync per step
            seen += len(idx)
        total = float(total)
        vc, vn, vy = tensors["validation"]
        val_loss = log_loss(vy.numpy(), _predict(model, vc, vn, dev, amp))
        history.append({"epoch": epoch + 1, "train_loss": total / len(ys), "val_loss": val_loss})
        if val_loss < best:
            best = val_loss
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    train_seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)

    results = {
        "device": dev.type,
        "mixed_precision": amp,
        "seed": seed,
        "epochs": epochs,
        "train_rows": len(ys),
        "samples_per_second": seen / train_seconds,
        "train_seconds": train_seconds,
        "history": history,
        "lr": lr,
        "batch_size": batch_size,
        "hidden": list(hidden),
        "dropout": dropout,
        "weight_decay": weight_decay,
    }
    preds = {}
    for name in ("validation", "test"):
        c, n, y = tensors[name]
        preds[name] = _predict(model, c, n, dev, amp)
        results[name] = metrics(y.numpy(), preds[name])

    out.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": best_state, "preprocessor": pre.to_json(), "hidden": tuple(hidden)},
        out / "model.pt",
    )
    test = parts["test"][["flight_id", label]].assign(probability=preds["test"])
    test.to_parquet(out / "predictions.parquet", index=False)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    _plots(out, history, test[label].to_numpy(), preds["test"])
    return results


def _plots(out: Path, history: list[dict], y: np.ndarray, p: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], label="train")
    ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], label="validation")
    ax.set(xlabel="epoch", ylabel="log loss", title="Loss per epoch")
    ax.legend()
    fig.savefig(out / "loss.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    order = np.argsort(-p)
    ys = np.asarray(y)[order].astype(bool)
    tpr = np.concatenate([[0], np.cumsum(ys) / max(ys.sum(), 1)])
    fpr = np.concatenate([[0], np.cumsum(~ys) / max((~ys).sum(), 1)])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test window")
    ax.legend()
    fig.savefig(out / "roc.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    bins = np.linspace(0, 1, 11)
    idx = np.minimum(np.digitize(p, bins) - 1, 9)
    mean_p = [p[idx == b].mean() for b in range(10) if (idx == b).any()]
    mean_y = [np.asarray(y)[idx == b].mean() for b in range(10) if (idx == b).any()]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(mean_p, mean_y, "o-", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.set(
        xlabel="predicted probability",
        ylabel="observed delay rate",
        title="Calibration, test window",
    )
    ax.legend()
    fig.savefig(out / "calibration.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m training train --snapshot S --out DIR [...]``."""
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on a training-set snapshot")
    t.add_argument("--snapshot", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    # defaults chosen on January 2013 (21.6k training rows): a small, strongly regularised MLP
    # is best on validation loss; wider ones overfit after the first epoch
    t.add_argument("--epochs", type=int, default=12)
    t.add_argument("--batch-size", type=int, default=1024)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--dropout", type=float, default=0.5)
    t.add_argument("--weight-decay", type=float, default=1e-2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--hidden", default="64,32", help="MLP layer widths, comma-separated")
    t.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    t.add_argument(
        "--xcom",
        type=Path,
        default=None,
        help="also write the summary there (the KubernetesPodOperator reads "
        "/airflow/xcom/return.json)",
    )
    args = parser.parse_args(argv)
    res = train(
        args.snapshot,
        args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        dropout=args.dropout,
        weight_decay=args.weight_decay,
        hidden=tuple(int(w) for w in args.hidden.split(",") if w),
    )
    if args.xcom is not None:
        args.xcom.parent.mkdir(parents=True, exist_ok=True)
        args.xcom.write_text(json.dumps({"model_dir": str(args.out), "metrics": res}))
    print(
        json.dumps(
            {k: res[k] for k in ("device", "samples_per_second", "validation", "test")}, indent=2
        )
    )
    return 0
