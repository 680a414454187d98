"""The training pipeline (T): point-in-time training sets from Feast (``training.dataset``), the
PyTorch model (``training.model``) and its entry point ``python -m training``
(``training.train``). The registry, the evaluation gate and the DAG are still to come."""
