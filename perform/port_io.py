"""The port objects: mido ports over open rtmidi clients, and the queue an input callback feeds.

    out = RtOutput(rt_midi_out, name, virtual=False, target=name)   # perform.ports opens these
    inp = RtInput(rt_midi_in, name, virtual=False, callback=queue.put)

The input callback (mido's convention: `callback(msg)`, settable as `port.callback` after opening)
runs on the port's reader thread. It must only stamp and enqueue: `StampedQueue.put` is such a
callback. Closing an output on JACK makes sure no note it started is left on (see RtOutput).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import mido
import rtmidi
from mido.ports import BaseInput, BaseOutput

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
#: On closing a JACK output, the note-offs for every pitch it played go out this many times more,
#: JACK_DRAIN_S apart: in JACK's default (asynchronous) mode a cycle that a client misses on a busy
#: machine loses its MIDI, a note-off in the middle of a jam as well as a final panic (measured by
#: bench/exits.py on a loaded 2-core machine: 4 notes left on in 100 exits, each one's note-off
#: dropped mid-jam while every final panic arrived; with the repeats none in 600, though JACK
#: dropped 133 messages in 15 of them).
JACK_REPEATS = 2
#: How often an input's reader thread looks for messages (seconds).
POLL_S = 0.001
#: Messages rtmidi keeps for the reader between two looks (a flood beyond it is dropped by rtmidi).
INPUT_QUEUE_SIZE = 8192

Callback = Callable[[mido.Message], None]


def api_name_of(rt: rtmidi.MidiIn | rtmidi.MidiOut) -> str:
    """The --api name of an open rtmidi client."""
    const = rt.get_current_api()
    for name, attr in API_NAMES.items():
        if getattr(rtmidi, attr, None) == const:
            return name
    return rtmidi.get_api_name(const)


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

    Closing on JACK leaves no note on, whatever JACK dropped: it sends a note-off for every
    (channel, pitch) this port ever sent a note-on for, then all-notes-off on those channels,
    JACK_REPEATS times, waits JACK_DRAIN_S after each send and after the last (the messages reach
    the port at the next period; closing sooner loses them), then closes. Other APIs close at once."""

    def __init__(self, rt: rtmidi.MidiOut, name: str, virtual: bool, target: str | None) -> None:
        self._rt, self.virtual, self.target = rt, virtual, target
        self.api = api_name_of(rt)
        self._last_send_s = float("-inf")
        self._played: set[tuple[int, int]] = set()      # (channel, pitch) of every note-on sent
        super().__init__(name)

    def send(self, msg: mido.Message) -> None:
        if self.closed:
            raise ValueError(f"MIDI output {self.name!r} is closed")
        self._rt.send_message(msg.bytes())
        self._last_send_s = time.perf_counter()
        if msg.type == "note_on" and msg.velocity > 0:
            self._played.add((msg.channel, msg.note))

    def _close(self) -> None:
        try:
            if self.api == "jack":
                self._drain_jack()
        finally:
            self._rt.close_port()
            self._rt.delete()

    def _drain_jack(self) -> None:
        for _ in range(JACK_REPEATS if self._played else 0):
            self._wait_since_last_send(JACK_DRAIN_S)
            for channel, pitch in sorted(self._played):
                self._rt.send_message([0x80 | channel, pitch, 0])
            for channel in sorted({channel for channel, _ in self._played}):
                self._rt.send_message([0xB0 | channel, 123, 0])
            self._last_send_s = time.perf_counter()
        self._wait_since_last_send(JACK_DRAIN_S)

    def _wait_since_last_send(self, seconds: float) -> None:
        wait_s = self._last_send_s + seconds - time.perf_counter()
        if wait_s > 0:
            time.sleep(wait_s)


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
