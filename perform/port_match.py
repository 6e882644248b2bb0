"""Matching port names: a user's query against the listed names, and which inputs are keyboards.

    find_port("iac", ["IAC Driver Bus 1", "Synth"])       # -> "IAC Driver Bus 1"
    hardware_inputs(names, "jack")                        # system:, a2j:, Midi-Bridge: ports

Pure functions of names (no MIDI system needed); perform.ports uses them when opening ports.
"""

from __future__ import annotations

import re
from typing import Iterable

from .errors import PortError

DEFAULT_CLIENT = "lstm-jam"
#: Port names that are loopback or pass-through buses, never a player's keyboard.
_NOT_HARDWARE = ("midi through", "through port", "iac", "loopmidi", "rtmidi")


def find_port(query: str, names: Iterable[str], kind: str = "output") -> str:
    """The one name in `names` that `query` matches (case-insensitive substring); else PortError."""
    names = list(names)
    option = "--port" if kind == "output" else "--input"
    if not names:
        raise PortError(f"no MIDI {kind}s available at all (looking for {query!r}); start your synth "
                        f"or DAW, or use --virtual and connect to it (see README: MIDI routing)")
    needle = query.strip().lower()
    found = [n for n in names if needle in n.lower()]
    exact = [n for n in found if n.lower() == needle]
    if len(exact) == 1:
        return exact[0]
    if len(found) == 1:
        return found[0]
    if not found:
        raise PortError(f"no MIDI {kind} matching {query!r}; available: {names}; "
                        f"try --list-ports and pass part of one of these names to {option}")
    raise PortError(f"{len(found)} MIDI {kind}s match {query!r}: {found}; "
                    f"pass a longer part of the name to {option}")


def hardware_inputs(names: Iterable[str], api: str, client_name: str = DEFAULT_CLIENT) -> list[str]:
    """The inputs a player's keyboard could be: not ours, not a loopback/through or software port.

    JACK: only physical ports (`system:` from jackd's MIDI driver, `a2j:` from the ALSA bridge,
    `Midi-Bridge:` from PipeWire).
    ALSA: kernel clients (client number < 128) other than Midi Through. CoreMIDI and Windows: every
    port but loopback buses (IAC, loopMIDI) and rtmidi's own default-named clients.
    """
    own = re.compile(rf"^{re.escape(client_name.lower())}(-\d+)?:") if client_name else None
    chosen = []
    for name in names:
        low = name.lower()
        if own and own.match(low):
            continue
        if any(word in low for word in _NOT_HARDWARE):
            continue
        if api == "jack" and not low.startswith(("system:", "a2j:", "midi-bridge:")):
            continue
        if api == "alsa":
            m = re.search(r"\s(\d+):(\d+)$", name)
            if m and (int(m.group(1)) >= 128 or int(m.group(1)) == 14):
                continue
        chosen.append(name)
    return chosen
