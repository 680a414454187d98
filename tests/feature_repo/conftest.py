"""Fixtures of the feature-repo tests: one small local Spark session for the whole run."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    """The feature job's own session (UTC, quiet), on one core with one shuffle partition."""
    from feature_repo.jobs.features import build_session
    from fti.ground.settings import Settings

    session = build_session(Settings(spark_master="local[1]", spark_shuffle_partitions=1))
    yield session
    session.stop()
