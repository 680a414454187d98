"""The feature pipeline: Feast declarations (this folder's top-level modules), Spark jobs
(``feature_repo.jobs``) and their Great Expectations suites (``feature_repo.suites``)."""
