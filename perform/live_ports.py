"""The live instrument's ports, and what happens when one vanishes mid-jam.

    live = LivePorts(cfg, listener, no_input=False)     # opens the output and the inputs
    session = Session(cfg, generator, live.output, listener=listener, ...)
    stats = live.run(session, max_ticks)                # watches the ports while it plays
    live.close()

Output vanished (its program closed or crashed): the session ends its run silencing what it can
(on JACK a dead port swallows the note-offs; the synth is gone with it anyway), we say so, wait
until a port of that exact name is listed again, reopen it, send all-notes-off on it and play on
from the current tick. Input vanished: the player's held notes are released (an all-notes-off is
put in the input queue), we say so and reopen it when it returns; the instrument plays on.
With `reconnect=False` (--no-reconnect) either one ends the run with a PortError (exit status 2).
Ctrl-C while waiting stops as usual.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TextIO

import mido

from .errors import PortError
from . import ports
from .watch import PortWatch

WAIT_POLL_S = 0.1


class LivePorts:
    """Opens the configured output and inputs; `run` plays a session and reconnects."""

    def __init__(self, cfg, listener, no_input: bool, stderr: TextIO | None = None,
                 poll_s: float = 0.25, lister: Callable[[str | None], object] | None = None) -> None:
        self.api = cfg.ports.api or None
        self.reconnect = cfg.ports.reconnect
        self.listener = listener
        self.stderr = stderr or sys.stderr
        self.poll_s, self._make_lister = poll_s, lister or ports.PortLister
        self.inputs = None
        self.reopened: list = []
        self.watch: PortWatch | None = None
        self.session = None
        self._output_back = threading.Event()
        self.closed = False
        self.output = ports.open_output(cfg.ports.output or None, api=self.api, virtual=cfg.ports.virtual)
        try:
            if not no_input:
                # --virtual opens a virtual input too, unless --input names a real one to listen to
                self.inputs = ports.open_input(cfg.ports.input or None, api=self.api,
                                         virtual=cfg.ports.virtual and not cfg.ports.input,
                                         callback=listener.callback)
        except BaseException:
            self.output.close()
            raise

    def watched_inputs(self) -> list[str]:
        if self.inputs is None or getattr(self.inputs, "virtual", False):
            return []
        return list(getattr(self.inputs, "names", []))

    def run(self, session, max_ticks: int | None = None) -> dict:
        """session.run(); when the output vanishes, wait for it and resume (unless reconnect is
        off: then the PortError goes up). Returns the session's stats."""
        self.session = session
        self._start_watch()
        while True:
            try:
                return session.run(max_ticks=max_ticks)
            except PortError as err:
                target = getattr(self.output, "target", None)
                if not self.reconnect or target is None:
                    raise
                self._say(f"error: {err}. Its notes were silenced as far as possible; waiting for "
                          f"{target!r} to return (Ctrl-C stops; --no-reconnect exits instead)")
                port = self._wait_for_output(target, session)
                if port is None:
                    return session.stats()
                old, self.output = self.output, port
                session.replace_output(port)
                _close_quietly(old)
                self._say(f"reconnected to MIDI output {target!r}; playing on")

    def _start_watch(self) -> None:
        if self.watch is not None:
            return
        target = getattr(self.output, "target", None)
        inputs = self.watched_inputs()
        if target is None and not inputs:
            return
        try:
            lister = self._make_lister(self.api)
        except PortError:
            if self.session.stopping:   # a Ctrl-C interrupted JACK's reply: we stop anyway
                return
            raise
        self.watch = PortWatch(lister.list, target, inputs, on_lost=self._lost, on_back=self._back,
                               poll_s=self.poll_s, close_lister=lister.close).start()

    def _wait_for_output(self, target: str, session):
        """Reopen `target` once it is listed again; None when stopped (Ctrl-C) while waiting."""
        while not session.stopping:
            gone = self.watch is not None and ("output", target) in self.watch.gone
            if not gone or self._output_back.is_set():
                self._output_back.clear()
                try:
                    return ports.open_output(target, api=self.api)
                except PortError:
                    pass                  # not back yet, or gone again: keep waiting
            time.sleep(WAIT_POLL_S)
        return None

    # on the watch thread ---------------------------------------------------------------------------
    def _lost(self, kind: str, name: str) -> None:
        if kind == "output":
            self.session.port_lost(f"MIDI output {name!r} vanished (its program closed or crashed); "
                                   "check it with --list-ports")
        elif not self.reconnect:
            self.session.port_lost(f"MIDI input {name!r} vanished (its program closed or crashed "
                                   "or the keyboard was unplugged); check it with --list-ports")
        else:
            self.listener.callback(mido.Message("control_change", control=123, value=0))
            self._say(f"warning: MIDI input {name!r} vanished; its held notes were released. "
                      "Playing on, and listening again when it returns")

    def _back(self, kind: str, name: str) -> None:
        if kind == "output":
            self._output_back.set()
            self.listener.wake()
            return
        if not self.reconnect:
            return
        try:
            self.reopened.append(ports.open_input(name, api=self.api, callback=self.listener.callback))
        except PortError as err:
            self._say(f"warning: MIDI input {name!r} is back but cannot be opened: {err}")
            return
        self._say(f"listening to MIDI input {name!r} again")

    def _say(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)

    def close(self) -> None:
        """Close the output first (on JACK it delivers the final note-offs: what matters most),
        then stop watching and close the inputs. Again: nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            self.output.close()
        finally:
            if self.watch is not None:
                self.watch.close()
            for port in self.reopened + ([self.inputs] if self.inputs is not None else []):
                _close_quietly(port)


def _close_quietly(port) -> None:
    try:
        port.close()
    except Exception:  # noqa: BLE001 - closing a port whose peer died must not hide the real exit
        pass
