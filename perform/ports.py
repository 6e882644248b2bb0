"""MIDI ports: list them, find one by name, open it (real or virtual), notice when one vanishes.
The port objects live in perform.port_io, name matching in perform.port_match (both re-exported).

    inputs, outputs = list_ports(api="jack")
    out = open_output("synth")                    # case-insensitive substring of a listed output
    out = open_output(None, virtual=True)         # "lstm-jam out", for a DAW to connect to
    inp = open_input(None, callback=queue.put)    # every hardware input; inp.names says which

Names are matched by case-insensitive substring; an exact (case-insensitive) match wins over other
substring matches. No match, or several, raises PortError listing what is available. A name that
matches nothing never creates a port: only `virtual=True` creates one.

The input callback (mido's convention: `callback(msg)`, settable as `port.callback` after opening)
runs on the port's reader thread. It must only stamp and enqueue: `StampedQueue.put` is such a
callback. Closing an output on JACK waits until what was sent has left (a panic's note-offs).
"""

from __future__ import annotations

import time
from typing import Callable

import rtmidi

from .errors import PortError
from .port_io import (API_NAMES, INPUT_QUEUE_SIZE, Callback, InputGroup, RtInput, RtOutput,  # noqa: F401
                      StampedQueue, api_name_of)
from .port_match import DEFAULT_CLIENT, find_port, hardware_inputs  # noqa: F401 (re-exported)

# ----------------------------------------------------------------------------------------------
# APIs and listing


def api_names() -> list[str]:
    """The --api names this python-rtmidi was built with, e.g. ['alsa', 'jack']."""
    compiled = set(rtmidi.get_compiled_api())
    return [name for name, const in API_NAMES.items() if getattr(rtmidi, const, None) in compiled]


def resolve_api(api: str | None) -> int:
    """Map an --api name (None or "" for the system default) to an rtmidi API constant."""
    if not api:
        return rtmidi.API_UNSPECIFIED
    key = api.strip().lower()
    if key not in API_NAMES:
        raise PortError(f"unknown MIDI api {api!r}; valid: {sorted(API_NAMES)} "
                        f"(built into this python-rtmidi: {api_names()})")
    const = getattr(rtmidi, API_NAMES[key], None)
    if const not in rtmidi.get_compiled_api():
        raise PortError(f"MIDI api {key!r} is not built into this python-rtmidi; "
                        f"available: {api_names()}; pick one with --api")
    return const


def _client(kind: type, api: str | None, client_name: str | None = None):
    """An rtmidi MidiIn/MidiOut on `api`. With no api, try the system default, then each API."""
    candidates = [resolve_api(api)]
    if not api:
        candidates += list(rtmidi.get_compiled_api())
    failures = []
    extra = {"queue_size_limit": INPUT_QUEUE_SIZE} if kind is rtmidi.MidiIn else {}
    for const in candidates:
        try:
            return kind(rtapi=const, name=client_name or None, **extra)
        except rtmidi.RtMidiError as err:
            failures.append(f"{rtmidi.get_api_name(const) or 'default'}: {err}")
    hint = ("start a JACK server (jackd -d dummy) or load the ALSA sequencer (modprobe snd-seq)"
            if "jack" in api_names() else "check that the MIDI system is running")
    raise PortError(f"cannot reach a MIDI system ({'; '.join(failures)}); {hint}, "
                    f"or pick another with --api {api_names()}")


def list_ports(api: str | None = None) -> tuple[list[str], list[str]]:
    """(inputs, outputs): the names of the ports we can listen to and the ports we can play on."""
    midi_in = _client(rtmidi.MidiIn, api)
    midi_out = _client(rtmidi.MidiOut, api_name_of(midi_in))
    try:
        return list(midi_in.get_ports()), list(midi_out.get_ports())
    finally:
        midi_in.delete()
        midi_out.delete()


class PortLister:
    """Lists the ports over two clients kept open, for polling a few times a second (list_ports
    opens and closes clients each time). Use from one thread."""

    def __init__(self, api: str | None = None, client_name: str = f"{DEFAULT_CLIENT} watch") -> None:
        self._in = _client(rtmidi.MidiIn, api, client_name)
        try:
            self._out = _client(rtmidi.MidiOut, api_name_of(self._in), client_name)
        except BaseException:
            self._in.delete()
            raise

    def list(self) -> tuple[list[str], list[str]]:
        """(inputs, outputs), as list_ports."""
        return list(self._in.get_ports()), list(self._out.get_ports())

    def close(self) -> None:
        self._in.delete()
        self._out.delete()


def format_port_list(api: str | None = None) -> str:
    """What --list-ports prints."""
    inputs, outputs = list_ports(api)
    lines = ["MIDI inputs (--input):"] + ([f"  {n}" for n in inputs] or ["  (none)"])
    lines += ["MIDI outputs (--port):"] + ([f"  {n}" for n in outputs] or ["  (none)"])
    return "\n".join(lines)


def port_exists(name: str, api: str | None = None, kind: str = "output") -> bool:
    """Whether a port of exactly this name is listed now (to notice a vanished port)."""
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', not {kind!r}")
    inputs, outputs = list_ports(api)
    return name in (inputs if kind == "input" else outputs)


def _open_existing(rt, query: str, kind: str, client_name: str) -> str:
    """Open a connection from `rt` to the listed port `query` matches; return its full name."""
    name = find_port(query, rt.get_ports(), kind)
    names = rt.get_ports()  # re-read: the index must be the one of `name` now
    if name not in names:
        raise PortError(f"MIDI {kind} {name!r} vanished while opening it; available: {names}")
    local = f"{client_name or 'lstm-jam'} {'out' if kind == 'output' else 'in'}"
    try:
        rt.open_port(names.index(name), local)
    except rtmidi.RtMidiError as err:
        raise PortError(f"cannot open MIDI {kind} {name!r}: {err}; is another program holding it?") from err
    return name


def _open_virtual(rt, port_name: str) -> None:
    try:
        rt.open_virtual_port(port_name)
    except (NotImplementedError, rtmidi.RtMidiError) as err:
        raise PortError(f"cannot open a virtual port {port_name!r} with the {api_name_of(rt)} api "
                        f"({err or 'not supported'}); on Windows create a loopMIDI port and pass "
                        "its name to --port / --input instead (see README: MIDI routing)") from err


def open_output(name: str | None, api: str | None = None, virtual: bool = False,
                client_name: str = DEFAULT_CLIENT) -> RtOutput:
    """Open the output `name` matches, or (virtual=True) a virtual one named `name` or
    "<client_name> out". Raises PortError when none or several match, or the system is down."""
    rt = _client(rtmidi.MidiOut, api, client_name)
    try:
        if virtual:
            port_name = name or f"{client_name} out"
            _open_virtual(rt, port_name)
            return RtOutput(rt, port_name, virtual=True, target=None)
        if not name:
            raise PortError(f"no MIDI output chosen; available: {rt.get_ports()}; pass --port NAME "
                            "(part of a name), or --virtual for a DAW to connect to")
        target = _open_existing(rt, name, "output", client_name)
        return RtOutput(rt, target, virtual=False, target=target)
    except BaseException:
        rt.delete()
        raise


def open_input(name: str | None, api: str | None = None, virtual: bool = False,
               callback: Callback | None = None,
               client_name: str = DEFAULT_CLIENT) -> RtInput | InputGroup:
    """Open the input `name` matches; a virtual one (virtual=True, named `name` or
    "<client_name> in"); or, with no name, every hardware input (an InputGroup, maybe empty).
    Every result has `.names`, the inputs chosen. Raises PortError as open_output does."""
    if not virtual and not name:
        return _open_hardware_inputs(api, callback, client_name)
    rt = _client(rtmidi.MidiIn, api, client_name)
    try:
        if virtual:
            port_name = name or f"{client_name} in"
            _open_virtual(rt, port_name)
            return RtInput(rt, port_name, virtual=True, callback=callback)
        source = _open_existing(rt, name, "input", client_name)
        return RtInput(rt, source, virtual=False, callback=callback)
    except BaseException:
        rt.delete()
        raise


def _open_hardware_inputs(api: str | None, callback: Callback | None, client_name: str) -> InputGroup:
    probe = _client(rtmidi.MidiIn, api)
    api_used, names = api_name_of(probe), list(probe.get_ports())
    probe.delete()
    ports: list[RtInput] = []
    try:
        for name in hardware_inputs(names, api_used, client_name):
            rt = _client(rtmidi.MidiIn, api_used, client_name)
            try:
                # Exact name: open_port by index, no substring matching for the chosen ones.
                index = rt.get_ports().index(name)
                rt.open_port(index, f"{client_name} in")
            except (ValueError, rtmidi.RtMidiError):
                rt.delete()  # it vanished between listing and opening: skip it
                continue
            ports.append(RtInput(rt, name, virtual=False, callback=callback))
    except BaseException:
        for port in ports:
            port.close()
        raise
    return InputGroup(ports)


def wait_for_port(name: str, api: str | None = None, kind: str = "output", timeout_s: float = 5.0,
                  sleep: Callable[[float], None] = time.sleep,
                  now: Callable[[], float] = time.monotonic) -> bool:
    """Poll until a port of exactly `name` is listed; False after timeout_s (for reconnecting)."""
    deadline_s = now() + timeout_s
    while True:
        if port_exists(name, api, kind):
            return True
        if now() >= deadline_s:
            return False
        sleep(0.1)


__all__ = ["API_NAMES", "DEFAULT_CLIENT", "InputGroup", "PortLister", "RtInput", "RtOutput", "StampedQueue",
           "api_names", "find_port", "format_port_list", "hardware_inputs", "list_ports",
           "open_input", "open_output", "port_exists", "resolve_api", "wait_for_port"]
