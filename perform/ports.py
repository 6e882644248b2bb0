"""MIDI ports: list them, find one by name, open it (real or virtual), notice when one vanishes.

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

import threading
import time
from collections import deque
from typing import Callable

import mido
import rtmidi
from mido.ports import BaseInput, BaseOutput

from .errors import PortError
from .port_match import DEFAULT_CLIENT, find_port, hardware_inputs

#: --api names -> python-rtmidi API constants.
API_NAMES = {
    "jack": "API_UNIX_JACK",
    "alsa": "API_LINUX_ALSA",
    "coremidi": "API_MACOSX_CORE",
    "windows": "API_WINDOWS_MM",
}
#: JACK hands our messages to the port once a period; closing sooner loses them (measured: all of a
#: final panic lost in 3 of 20 closes). 50 ms covers two periods of 1024 frames at 48 kHz.
JACK_DRAIN_S = 0.05
#: How often an input's reader thread looks for messages (seconds).
POLL_S = 0.001
#: Messages rtmidi keeps for the reader between two looks (a flood beyond it is dropped by rtmidi).
INPUT_QUEUE_SIZE = 8192

Callback = Callable[[mido.Message], None]


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


def api_name_of(rt: rtmidi.MidiIn | rtmidi.MidiOut) -> str:
    """The --api name of an open rtmidi client."""
    const = rt.get_current_api()
    for name, attr in API_NAMES.items():
        if getattr(rtmidi, attr, None) == const:
            return name
    return rtmidi.get_api_name(const)


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


# ----------------------------------------------------------------------------------------------
# Ports


class StampedQueue:
    """A bounded queue of (msg, t_s) fed from rtmidi threads; what does not fit is counted, not kept.

    `put` is fit to be an input callback: it stamps `now()` (time.perf_counter) and appends. The
    reader calls `drain` each tick.
    """

    def __init__(self, maxlen: int = 4096, now: Callable[[], float] = time.perf_counter) -> None:
        self.maxlen, self.now = maxlen, now
        self.dropped = 0
        self._items: deque[tuple[mido.Message, float]] = deque()

    def put(self, msg: mido.Message) -> None:
        t_s = self.now()
        if len(self._items) >= self.maxlen:
            self.dropped += 1
            return
        self._items.append((msg, t_s))

    def drain(self) -> list[tuple[mido.Message, float]]:
        out = []
        pop = self._items.popleft
        for _ in range(len(self._items)):
            out.append(pop())
        return out

    def __len__(self) -> int:
        return len(self._items)


class RtOutput(BaseOutput):
    """A mido output over an open rtmidi.MidiOut (one writer: the session's output loop).

    Closing waits until what was sent has left (JACK_DRAIN_S after the last send on JACK), so the
    note-offs of a final panic are not lost."""

    def __init__(self, rt: rtmidi.MidiOut, name: str, virtual: bool, target: str | None) -> None:
        self._rt, self.virtual, self.target = rt, virtual, target
        self.api = api_name_of(rt)
        self._last_send_s = float("-inf")
        super().__init__(name)

    def send(self, msg: mido.Message) -> None:
        if self.closed:
            raise ValueError(f"MIDI output {self.name!r} is closed")
        self._rt.send_message(msg.bytes())
        self._last_send_s = time.perf_counter()

    def _close(self) -> None:
        if self.api == "jack":
            wait_s = self._last_send_s + JACK_DRAIN_S - time.perf_counter()
            if wait_s > 0:
                time.sleep(wait_s)
        self._rt.close_port()
        self._rt.delete()


class RtInput(BaseInput):
    """A mido input over an open rtmidi.MidiIn. With a callback (given, or set as `.callback`
    later), each message goes to `callback(msg)` on this port's reader thread; without, to
    `receive()`.

    The reader thread polls rtmidi's queue every POLL_S instead of letting rtmidi call Python from
    JACK's process thread: closing a JACK client while its process thread waits for the GIL (held
    by the closing thread) gets that thread cancelled with the GIL's lock held, and the program
    hangs for good (seen in about one in eight SIGINTs with MIDI clock coming in). Polling costs
    about 4% of a core and up to POLL_S of lateness on each stamp.
    """

    def __init__(self, rt: rtmidi.MidiIn, name: str, virtual: bool, callback: Callback | None) -> None:
        self._rt, self.virtual, self.callback = rt, virtual, callback
        self.api = api_name_of(rt)
        self.invalid = 0
        super().__init__(name)
        self.names = [name]
        rt.ignore_types(sysex=True, timing=False, active_sense=True)  # keep clock for --sync
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._poll, name=f"midi in: {name}", daemon=True)
        self._reader.start()

    def _poll(self) -> None:
        get_message, stop = self._rt.get_message, self._stop
        while not stop.is_set():
            event = get_message()
            if event is None:
                time.sleep(POLL_S)
            else:
                self._deliver(event[0])

    def _deliver(self, data: list[int]) -> None:
        try:
            msg = mido.Message.from_bytes(data)
        except ValueError:
            self.invalid += 1
            return
        callback = self.callback
        if callback is not None:
            callback(msg)
        else:
            self._messages.append(msg)

    def _close(self) -> None:
        self._stop.set()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)
        self._rt.close_port()
        self._rt.delete()


class InputGroup:
    """Several inputs feeding one callback (the default: every hardware input). `names` says which."""

    def __init__(self, ports: list[RtInput]) -> None:
        self.ports = ports
        self.names = [p.name for p in ports]
        self.name = ", ".join(self.names) if ports else "(no input)"
        self.closed = False

    @property
    def callback(self) -> Callback | None:
        return self.ports[0].callback if self.ports else None

    @callback.setter
    def callback(self, func: Callback | None) -> None:
        for port in self.ports:
            port.callback = func

    def close(self) -> None:
        for port in self.ports:
            port.close()
        self.closed = True

    def __enter__(self) -> "InputGroup":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


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
