"""The feature pipeline's Spark job, its landing and its steps (``pipeline``: one function per DAG task)."""
