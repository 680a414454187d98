from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fti.ground.airflow_env import airflow_env
from fti.ground.settings import Settings


def test_defaults_keep_all_state_under_home(tmp_path):
    s = Settings(home=tmp_path)
    for p in (
        s.raw_dir,
        s.offline_dir,
        s.staging_dir,
        s.reports_dir,
        s.feast_dir,
        s.airflow_dir,
        Path(s.registry),
        s.sqlite_online_path,
    ):
        assert tmp_path in Path(p).parents
    assert s.online_store == "sqlite"
    assert s.spark_master.startswith("local")


def test_environment_with_prefix_decides_engines(monkeypatch, tmp_path):
    monkeypatch.setenv("FTI_HOME", str(tmp_path))
    monkeypatch.setenv("FTI_ONLINE_STORE", "redis")
    monkeypatch.setenv("FTI_REDIS_CONNECTION_STRING", "redis.internal:6380,db=2,password=s3cret")
    monkeypatch.setenv("FTI_SPARK_MASTER", "spark://master:7077")
    monkeypatch.setenv("FTI_DATA_ROOT", "/shared/data")
    s = Settings()
    assert s.online_store == "redis"
    assert s.spark_master == "spark://master:7077"
    assert s.offline_dir == Path("/shared/data/offline")
    # secrets never show in a repr or a log line of the settings
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


def test_unknown_online_store_is_rejected(monkeypatch):
    monkeypatch.setenv("FTI_ONLINE_STORE", "cassandra")
    with pytest.raises(ValidationError, match="online_store"):
        Settings()


def test_airflow_env_follows_settings(tmp_path):
    env = airflow_env(Settings(home=tmp_path))
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///" + str(tmp_path))
    pg = airflow_env(
        Settings(home=tmp_path, airflow_database_url="postgresql+psycopg2://u:pw@h/db")
    )
    assert pg["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://u:pw@h/db"


def test_redis_yaml_keeps_the_secret_out_of_the_file(tmp_path):
    from fti.ground.featurestore import write_yaml

    s = Settings(
        home=tmp_path,
        online_store="redis",
        redis_connection_string="localhost:6379,password=hunter2",
    )
    text = write_yaml(s).read_text()
    assert "hunter2" not in text
    assert "${FTI_REDIS_CONNECTION_STRING}" in text
