"""Shared fixtures. `jack_server`: a JACK dummy server for the tests that go through real MIDI ports
(--sync); `jack_server_async`: one in JACK's default mode, for the exit tests.

jack_server is one server per test session (starting one takes about a second), with a unique
name exported as JACK_DEFAULT_SERVER to this process and to every subprocess it starts. Tests that
use either are skipped, with the reason, where jackd is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("lstm_jam_tests_jack", Path(__file__).with_name("jack.py"))
jack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jack)

#: 128 frames at 48 kHz: a 2.7 ms period; measured port-to-port p50 0.8 ms, p99 2.2 ms on this machine.
JACK_PERIOD_FRAMES = 128


@pytest.fixture(scope="session")
def jack_server():
    reason = jack.jack_available()
    if reason:
        pytest.skip(reason)
    with jack.JackServer(period_frames=JACK_PERIOD_FRAMES) as server:
        yield server


@pytest.fixture
def jack_server_async():
    """A JACK dummy server in JACK's default (asynchronous) mode, the one a user's server runs in:
    a client that misses a cycle on a busy machine loses that cycle's MIDI. One per test (while it
    runs it is JACK_DEFAULT_SERVER); don't use it beside jack_server in one test."""
    reason = jack.jack_available()
    if reason:
        pytest.skip(reason)
    with jack.JackServer(period_frames=JACK_PERIOD_FRAMES, sync=False) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A tiny untrained model exported to .onnx (for the tests that run `perform` on real ports)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    return jack.tiny_model(tmp_path_factory.mktemp("model"))


def pytest_collection_modifyitems(config, items):
    """Tests that use a JACK server carry the `jack` marker (`-m "not jack"` leaves them out)."""
    for item in items:
        if {"jack_server", "jack_server_async"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.jack)
