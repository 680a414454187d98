"""The feature contract, derived from the Feast declarations in ``feature_repo/``.

The declarations are the one place a feature is defined. Everything else a pipeline needs to
know about the features is read from them here, never listed again:

- the batch feature views (name, join keys, features with their types and tags, TTL, whether
  they are materialized online), found the way ``feast apply`` finds them;
- the online views: every batch view declared with ``online=True``;
- the feature service the model reads: the one tagged ``model=<FTI_MODEL_NAME>``;
- the label: the feature named by the ``label`` tag of the view tagged ``kind=label``;
- the flight key: the join key of the label view's entity, and the format its ``key_format`` and
  ``key_fields`` tags give (``flight_key`` formats one).

Per-feature tags the pipelines read (all optional, all text as Feast's tags are):

- ``present_share``: the share of training-set rows that must have the feature (default
  ``0.9``; ``0`` for a feature that is often legitimately missing).

The declarations are imported the way ``feast apply`` imports them (each file of the repo as a
top-level module, ``.feastignore`` respected), once per process and repository.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fti.ground.settings import Settings, get_settings

#: share of training-set rows that must hold a feature unless its ``present_share`` tag says
DEFAULT_PRESENT_SHARE = 0.9


class ContractError(ValueError):
    """The declarations do not make a usable contract; the message says what to change."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of a view: its name, Feast type (``Float64``, ``Int32``, ``String``, ...),
    description and tags."""

    name: str
    dtype: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def present_share(self) -> float:
        """Share of training-set rows that must hold this feature."""
        return float(self.tags.get("present_share", DEFAULT_PRESENT_SHARE))


@dataclass(frozen=True)
class ViewSpec:
    """One batch feature view as declared."""

    name: str
    keys: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    ttl: timedelta
    online: bool
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """The names of the view's features, in declaration order."""
        return [f.name for f in self.features]


@dataclass(frozen=True)
class Contract:
    """What the declarations in ``repo`` say (see the module's docstring)."""

    repo: Path
    views: tuple[ViewSpec, ...]
    on_demand: dict[str, tuple[FeatureSpec, ...]]
    feature_service: str
    service_views: tuple[str, ...]
    label_view: str
    label: str
    flight_key: str
    flight_key_format: str
    flight_key_fields: tuple[str, ...]

    def view(self, name: str) -> ViewSpec:
        """The batch view ``name``; ``KeyError`` naming the declared ones otherwise."""
        for v in self.views:
            if v.name == name:
                return v
        raise KeyError(
            f"no batch feature view {name!r} in {self.repo} (declared: "
            f"{', '.join(self.view_names)})"
        )

    @property
    def view_names(self) -> list[str]:
        """Every batch view, in declaration order."""
        return [v.name for v in self.views]

    @property
    def online_views(self) -> list[str]:
        """The batch views declared ``online=True``: what materialization loads."""
        return [v.name for v in self.views if v.online]

    @property
    def features(self) -> dict[str, FeatureSpec]:
        """Every feature of the model's feature service by name (batch and on-demand)."""
        out = {f.name: f for name in self.service_views for f in self.view(name).features}
        for specs in self.on_demand.values():
            out.update({f.name: f for f in specs})
        return out

    def format_flight_key(self, **parts: Any) -> str:
        """The flight key of one flight from its ``flight_key_fields`` (local date and time)."""
        return self.flight_key_format % tuple(parts[f] for f in self.flight_key_fields)


_lock = threading.Lock()


def contract(settings: Settings | None = None) -> Contract:
    """The contract of the configured feature repo (``FTI_FEATURE_REPO``) and model."""
    settings = settings or get_settings()
    return _load(Path(settings.feature_repo).resolve(), settings.model_name)


@functools.cache
def _load(repo: Path, model_name: str) -> Contract:
    with _lock:
        objects = _declarations(repo)
    return _build(repo, model_name, objects)


def declared_objects(repo: Path) -> dict[str, list]:
    """The Feast objects declared in ``repo``, by kind, as ``feast apply`` would find them."""
    with _lock:
        return _declarations(Path(repo).resolve())


def _declarations(repo: Path) -> dict[str, list]:
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
    from feast.repo_operations import get_repo_files

    # the declarations import each other by module name, as `feast apply` run in the repo does
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    found: dict[str, list] = {"entities": [], "views": [], "on_demand": [], "services": []}
    kinds = {
        "entities": Entity,
        "views": FeatureView,
        "on_demand": OnDemandFeatureView,
        "services": FeatureService,
    }
    for path in get_repo_files(repo):
        module = importlib.import_module(".".join(path.relative_to(repo).with_suffix("").parts))
        for name in dir(module):
            obj = getattr(module, name)
            for kind, cls in kinds.items():
                if isinstance(obj, cls) and not any(obj is o for o in found[kind]):
                    found[kind].append(obj)
    return found


def _tags(obj) -> dict[str, str]:
    return dict(getattr(obj, "tags", None) or {})


def _fields(fields) -> tuple[FeatureSpec, ...]:
    return tuple(FeatureSpec(f.name, str(f.dtype), f.description or "", _tags(f)) for f in fields)


def _build(repo: Path, model_name: str, found: dict[str, list]) -> Contract:
    join_key = {e.name: e.join_key for e in found["entities"]}
    entities = {e.name: e for e in found["entities"]}
    views = tuple(
        ViewSpec(
            name=fv.name,
            keys=tuple(join_key[e] for e in fv.entities),
            features=_fields(fv.features),
            ttl=fv.ttl or timedelta(0),
            online=bool(fv.online),
            tags=_tags(fv),
        )
        for fv in found["views"]
    )
    on_demand = {odfv.name: _fields(odfv.features) for odfv in found["on_demand"]}

    services = [s for s in found["services"] if _tags(s).get("model") == model_name]
    if len(services) != 1:
        declared = ", ".join(f"{s.name} (model={_tags(s).get('model')})" for s in found["services"])
        raise ContractError(
            f"{repo} must declare exactly one FeatureService tagged model={model_name!r} (the "
            f"model's inputs); found {len(services)} of: {declared or 'none'}"
        )
    service = services[0]
    batch = {v.name for v in views}
    service_views = tuple(p.name for p in service.feature_view_projections if p.name in batch)

    labels = [fv for fv in found["views"] if _tags(fv).get("kind") == "label"]
    if len(labels) != 1 or "label" not in _tags(labels[0]):
        raise ContractError(
            f"{repo} must declare exactly one feature view tagged kind=label with a 'label' tag "
            f"naming its label feature; found {[fv.name for fv in labels]}"
        )
    label_view = labels[0]
    label = _tags(label_view)["label"]
    if label not in {f.name for f in label_view.features}:
        raise ContractError(f"label view {label_view.name!r} has no feature {label!r}")
    if len(label_view.entities) != 1:
        raise ContractError(f"label view {label_view.name!r} must have one entity: the flight")
    flight = entities[label_view.entities[0]]
    key_tags = _tags(flight)
    if "key_format" not in key_tags or "key_fields" not in key_tags:
        raise ContractError(
            f"entity {flight.name!r} (the label view's) needs the tags key_format and key_fields "
            "that say how its key is made"
        )
    return Contract(
        repo=repo,
        views=views,
        on_demand=on_demand,
        feature_service=service.name,
        service_views=service_views,
        label_view=label_view.name,
        label=label,
        flight_key=flight.join_key,
        flight_key_format=key_tags["key_format"],
        flight_key_fields=tuple(f.strip() for f in key_tags["key_fields"].split(",")),
    )
