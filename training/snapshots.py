"""What a training-set snapshot says about itself: the parquet file names its label column in
its metadata, so the training entry point (which runs in a slim image, without Feast to read
the feature contract from) trains on the label the contract declared."""

from __future__ import annotations

from pathlib import Path

#: the snapshot file's metadata key naming its label column
LABEL_METADATA = b"fti.label"


def snapshot_label(snapshot: Path) -> str:
    """The label column a training-set snapshot names in its metadata."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(snapshot).metadata or {}
    if LABEL_METADATA not in meta:
        raise ValueError(
            f"{snapshot} does not name its label column (parquet metadata "
            f"{LABEL_METADATA.decode()!r}): write snapshots with training.dataset.write_snapshot"
        )
    return meta[LABEL_METADATA].decode()
