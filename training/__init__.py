"""The training pipeline (T): point-in-time training sets from Feast, the PyTorch model, the
evaluation gate and the MLflow registry. Not built yet: see the training-pipeline issue."""
