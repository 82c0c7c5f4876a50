"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import pytest

from fcnet_cli.engine.train import steps as backprop

needs_onednn = pytest.mark.skipif(backprop.onednn_linear() is None,
                                  reason="this torch has no oneDNN")


@pytest.fixture(params=["aten", pytest.param("onednn", marks=needs_onednn)])
def products(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Whose matrix products the explicit step uses on every layer, however small."""
    monkeypatch.setattr(backprop, "ONEDNN_MIN", 0 if request.param == "onednn" else 2**62)
    return str(request.param)
