"""The departure-delay model: embeddings for categorical entities, an MLP over numeric features.

Preprocessing (vocabularies, means and standard deviations) is fitted on the training split
only and saved with the weights, so serving applies exactly what training did. Needs only
torch, numpy and pandas.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

#: numeric inputs embedded as categories (calendar features); every text column is one too
CATEGORICAL = ["dep_hour_local", "dep_dow_local", "dep_month_local"]
#: columns of a training set that are never inputs (the label is named by the caller)
NOT_INPUTS = {"flight_id", "tailnum", "sched_dep_ts", "event_timestamp", "split"}


@dataclass
class Preprocessor:
    """Fitted input encoding: vocabularies per categorical column, scaling per numeric one."""

    categorical: list[str]
    numeric: list[str]
    vocab: dict[str, list[str]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, df: pd.DataFrame, exclude: frozenset[str] | set[str] = frozenset()
    ) -> Preprocessor:
        """Fit on ``df`` (the train split): every column but ``NOT_INPUTS``, ``exclude`` (the
        label) and ``_``-prefixed ones is an input; text columns and ``CATEGORICAL`` are
        embedded, numeric ones scaled."""
        skip = NOT_INPUTS | set(exclude)
        inputs = [c for c in df.columns if c not in skip and not c.startswith("_")]
        text = [
            c
            for c in inputs
            if pd.api.types.is_object_dtype(df[c]) or pd.api.types.is_string_dtype(df[c])
        ]
        cats = [c for c in inputs if c in CATEGORICAL or c in text]
        nums = [c for c in inputs if c not in cats and pd.api.types.is_numeric_dtype(df[c])]
        p = cls(categorical=cats, numeric=nums)
        for c in cats:
            p.vocab[c] = sorted(df[c].dropna().astype(str).unique().tolist())
        for c in nums:
            col = pd.to_numeric(df[c], errors="coerce").astype("float64")
            p.mean[c] = float(col.mean()) if col.notna().any() else 0.0
            std = float(col.std()) if col.notna().sum() > 1 else 1.0
            p.std[c] = std if std > 0 else 1.0
        return p

    def transform(self, df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """(categorical indices, numeric values + missing flags); unknown categories map to 0.

        Column-at-a-time numpy rather than pandas per column: serving calls this for every
        request, where pandas' fixed cost per column was ~5 ms of a ~17 ms prediction
        (docs/benchmarks.md). The result is identical (tested against the per-column form).
        """
        n = len(df)
        cats = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            index = self._index(c)
            # str() of each value is what pandas' astype(str) gives, at a fraction of the cost
            cats[:, j] = [index.get(str(v), 0) for v in df[c].tolist()]
        block = df[self.numeric]
        if all(
            pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
            for t in block.dtypes
        ):
            x = block.to_numpy(dtype="float64", na_value=np.nan)
        else:
            x = (
                np.column_stack(
                    [
                        pd.to_numeric(df[c], errors="coerce").astype("float64").to_numpy()
                        for c in self.numeric
                    ]
                )
                if self.numeric
                else np.zeros((n, 0))
            )
        mean = np.array([self.mean[c] for c in self.numeric], dtype="float64")
        std = np.array([self.std[c] for c in self.numeric], dtype="float64")
        missing = np.isnan(x)
        nums = np.empty((n, 2 * len(self.numeric)), dtype=np.float32)
        nums[:, : len(self.numeric)] = np.where(missing, 0.0, (x - mean) / std)
        nums[:, len(self.numeric) :] = missing
        return torch.from_numpy(cats), torch.from_numpy(nums)

    def _index(self, column: str) -> dict[str, int]:
        cache = self.__dict__.setdefault("_indexes", {})
        if column not in cache:
            cache[column] = {v: i + 1 for i, v in enumerate(self.vocab[column])}
        return cache[column]

    def to_json(self) -> str:
        """The fitted encoding as JSON (saved inside ``model.pt``)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        """The encoding :meth:`to_json` saved."""
        return cls(**json.loads(text))


class DelayModel(nn.Module):
    """Embeddings per categorical column, concatenated with the numeric inputs, then an MLP."""

    def __init__(
        self,
        cardinalities: list[int],
        n_numeric: int,
        hidden: tuple[int, ...] = (64, 32),
        dropout: float = 0.5,
    ):
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(n + 1, min(16, (n + 2) // 2 + 1)) for n in cardinalities
        )
        width = sum(e.embedding_dim for e in self.embeddings) + n_numeric
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, cats: torch.Tensor, nums: torch.Tensor) -> torch.Tensor:
        """Logits of a delay for each row of ``(cats, nums)`` (``Preprocessor.transform``)."""
        parts = [emb(cats[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat([*parts, nums], dim=1)).squeeze(1)


def build_model(pre: Preprocessor, **kwargs) -> DelayModel:
    """A :class:`DelayModel` sized for the inputs ``pre`` encodes."""
    return DelayModel([len(pre.vocab[c]) for c in pre.categorical], 2 * len(pre.numeric), **kwargs)
