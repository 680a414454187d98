"""The library internals the platform relies on live in fti.ground.compat, each guarded by the
exact version it was written for: a move of the lock fails here, loudly, before anything else."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from fti.ground import compat


@pytest.mark.parametrize("library", sorted(compat.WRITTEN_FOR))
def test_guarded_libraries_are_the_versions_the_patches_were_written_for(library):
    written_for = compat.WRITTEN_FOR[library]
    installed = version(library)
    assert installed == written_for, (
        f"{library} {installed} is installed, but fti.ground.compat's patches of it were written "
        f"for {written_for}: they are OFF now (the public path is taken, slower). Re-read each "
        f"one against {library} {installed} (its docstring says what it works around and where "
        "it was measured), re-run bench/serving.py, then update WRITTEN_FOR"
    )
    assert compat.guarded(library)


def test_a_guard_for_another_version_takes_the_public_path(monkeypatch):
    compat.guarded.cache_clear()
    monkeypatch.setitem(compat.WRITTEN_FOR, "bentoml", "0.0.0")
    try:
        assert compat.guarded("bentoml") is False

        class Service:
            apis = {"predict": type("Api", (), {"output_spec": type("Spec", (), {})()})()}

        assert compat.declare_json_output(Service, "predict") is False
        assert not hasattr(Service.apis["predict"].output_spec, "media_type")
    finally:
        compat.guarded.cache_clear()


def test_the_bentoml_timer_patch_is_applied_to_the_pinned_version():
    from bentoml._internal.server.http import traffic

    import serving.service  # noqa: F401  (applies it)

    assert traffic.TimeoutMiddleware._fti_cancels_timers is True
    assert compat.cancel_bentoml_request_timers() is True  # idempotent


def test_the_fast_and_the_public_reading_of_a_feast_response_agree():
    """Feast's own protobuf response, read both ways: same names, values and timestamps."""
    from feast.online_response import OnlineResponse
    from feast.protos.feast.serving.ServingService_pb2 import (
        FieldStatus,
        GetOnlineFeaturesResponse,
    )
    from feast.protos.feast.types.Value_pb2 import Value
    from google.protobuf.timestamp_pb2 import Timestamp

    proto = GetOnlineFeaturesResponse()
    proto.metadata.feature_names.val.extend(["carrier", "temp_f", "plane_engine_type"])
    rows = [
        [Value(string_val="UA"), Value(string_val="AA")],
        [Value(double_val=39.5), Value()],
        [Value(string_val="Turbo-fan"), Value(string_val="Turbo-jet")],
    ]
    for values in rows:
        vector = proto.results.add()
        vector.values.extend(values)
        vector.statuses.extend([FieldStatus.PRESENT] * len(values))
        vector.event_timestamps.extend([Timestamp(seconds=1357016400), Timestamp(seconds=0)])
    response = OnlineResponse(proto)
    fast = compat.read_online_response(response, {"temp_f"})
    public = compat._read_public(response, {"temp_f"})
    assert fast == public
    names, values, micros = fast
    assert names == ["carrier", "temp_f", "plane_engine_type"]
    assert values["temp_f"] == [39.5, None]
    assert micros == {"temp_f": [1357016400 * 1_000_000, 0]}
