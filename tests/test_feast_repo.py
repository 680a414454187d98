"""`feast apply` of the real feature repo into a temporary directory, in a subprocess."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml
from helpers import ROOT, run


def test_feast_apply_real_repo_in_temp_dir(tmp_path):
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "feature_store.yaml").write_text(
        yaml.safe_dump(
            {
                "project": "flight_delay",
                "provider": "local",
                "registry": str(tmp_path / "registry.db"),
                "online_store": {"type": "sqlite", "path": str(tmp_path / "online.db")},
                "offline_store": {"type": "file"},
                "entity_key_serialization_version": 3,
            }
        )
    )
    feast = [sys.executable, "-m", "feast.cli.cli"]
    env = {"FTI_HOME": str(tmp_path / "home")}
    out = run([*feast, "--chdir", str(repo), "apply"], env=env).stdout
    assert "flight_delay_v1" in out
    # idempotent: a second apply changes nothing
    again = run([*feast, "--chdir", str(repo), "apply"], env=env).stdout
    assert "No changes to registry" in again

    services = run([*feast, "--chdir", str(repo), "feature-services", "list"], env=env).stdout
    assert "flight_delay_v1" in services
    views = run([*feast, "--chdir", str(repo), "feature-views", "list"], env=env).stdout
    from fti.ground.contract import contract
    from fti.ground.settings import get_settings

    key = contract(get_settings())
    for v in [*key.view_names, *key.on_demand]:
        assert v in views


def test_every_feature_states_its_definition(tmp_path):
    """Each batch feature has a description; each view too (on-demand fields: in the view's)."""
    import os

    from fti.ground import featurestore
    from fti.ground.settings import Settings

    settings = Settings(home=tmp_path)
    featurestore.apply(settings)
    store = featurestore.feature_store(settings)
    assert os.getcwd() != str(settings.feature_repo)  # apply restored the working directory
    from fti.ground.contract import contract

    key = contract(settings)
    views = store.list_feature_views()
    # what the registry holds after apply is what the contract read from the declarations
    assert sorted(v.name for v in views) == sorted(key.view_names)
    assert {v.name for v in views if v.online} == set(key.online_views)
    for fv in views:
        assert fv.description and fv.owner and fv.tags, fv.name
        for f in fv.features:
            assert len(f.description) > 20, f"{fv.name}.{f.name}"
    (odfv,) = store.list_on_demand_feature_views()
    for f in odfv.features:
        assert f.name in odfv.description
    svc = store.get_feature_service(key.feature_service)
    assert {p.name for p in svc.feature_view_projections} == {*key.service_views, *key.on_demand}
    assert Path(settings.registry).exists()
