"""Noticing that a port we play on or listen to vanished (its program closed or crashed), and that
it came back.

    watch = PortWatch(PortLister("jack").list, output="synth:in", inputs=["keys:out"],
                      on_lost=..., on_back=...)
    watch.start()          # a thread lists the ports every poll_s
    ...
    watch.close()

On JACK, sending to a port whose peer died raises nothing: the messages just go nowhere. So a
thread lists the ports every `poll_s` and calls `on_lost(kind, name)` when a watched port is no
longer listed, and `on_back(kind, name)` when a port of that exact name is listed again (`kind` is
"output" or "input"). The callbacks run on the watch thread: they must be quick and thread-safe
(set a flag, enqueue, open a port).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable

Lister = Callable[[], tuple[list[str], list[str]]]
Notify = Callable[[str, str], None]
POLL_S = 0.25


class PortWatch:
    """Polls `lister()` -> (inputs, outputs) on a thread; see the module docstring."""

    def __init__(self, lister: Lister, output: str | None, inputs: Iterable[str], *,
                 on_lost: Notify, on_back: Notify, poll_s: float = POLL_S,
                 close_lister: Callable[[], None] | None = None) -> None:
        self.lister, self.poll_s = lister, poll_s
        self.watched = ([("output", output)] if output else []) + [("input", n) for n in inputs]
        self.on_lost, self.on_back = on_lost, on_back
        self.gone: set[tuple[str, str]] = set()
        self.errors = 0
        self._close_lister = close_lister
        self._lister_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="port watch", daemon=True)

    def start(self) -> "PortWatch":
        if self.watched:
            self._thread.start()
        return self

    def check(self) -> None:
        """List the ports once and report what vanished or came back since the last check."""
        inputs, outputs = self.lister()
        listed = {"input": set(inputs), "output": set(outputs)}
        for kind, name in self.watched:
            present = name in listed[kind]
            if not present and (kind, name) not in self.gone:
                self.gone.add((kind, name))
                self.on_lost(kind, name)
            elif present and (kind, name) in self.gone:
                self.gone.discard((kind, name))
                self.on_back(kind, name)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.poll_s):
                try:
                    self.check()
                except Exception:  # noqa: BLE001 - a failed listing (server busy) is retried next poll
                    self.errors += 1
        finally:
            self._release_lister()

    def close(self) -> None:
        """Stop polling (waiting up to 2 s for a listing under way). The lister is closed by the
        thread that uses it: here when the thread has ended (or never ran), else by the thread as
        it ends; never from under a listing stuck in a busy JACK server (closing a JACK client
        there hung the exit)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self._release_lister()

    def _release_lister(self) -> None:
        with self._lister_lock:
            close, self._close_lister = self._close_lister, None
        if close is not None:
            close()
