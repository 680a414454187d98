"""The training pipeline (T): point-in-time training sets (``training.dataset``), the PyTorch
model (``training.model``) and its entry point ``python -m training`` (``training.train``, which
needs only torch, numpy, pandas and pyarrow), the evaluation gate (``training.gate``), the MLflow
registry (``training.registry``) and the DAG's steps (``training.pipeline``)."""
