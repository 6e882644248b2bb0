"""A JACK dummy server for tests and benchmarks: real MIDI ports with no sound card.

    with JackServer(period_frames=128) as server:   # sets JACK_DEFAULT_SERVER for us and children
        ...  # perform.ports.open_output(..., api="jack")

Each server gets a unique name (`-n`), so parallel runs never share one, and JACK_NO_START_SERVER is
set so that nothing ever starts a stray server of its own. The server is killed on exit, also when
the body raised.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

MISSING_REASON = ("jackd is not installed (apt-get install -y --no-install-recommends jackd2): "
                  "the real-port tests need a JACK dummy server")


def jack_available() -> str | None:
    """None when a JACK server can be started here and python-rtmidi speaks JACK; else why not."""
    if shutil.which("jackd") is None:
        return MISSING_REASON
    import rtmidi
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        return "this python-rtmidi was built without JACK support"
    return None


class JackServer:
    """`jackd --no-realtime [--sync] -n NAME -d dummy -r RATE -p PERIOD`, started and stopped around
    a block. `sync=False` is JACK's default (asynchronous) mode, the one a user's server runs in."""

    def __init__(self, period_frames: int = 128, rate_hz: int = 48000, ready_timeout_s: float = 15.0,
                 sync: bool = True):
        self.period_frames, self.rate_hz, self.sync = period_frames, rate_hz, sync
        self.ready_timeout_s = ready_timeout_s
        self.name = f"lstmjam-{os.getpid()}-{secrets.token_hex(3)}"
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)
        self._saved_env: dict[str, str | None] = {}

    @property
    def period_s(self) -> float:
        return self.period_frames / self.rate_hz

    @property
    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> "JackServer":
        reason = jack_available()
        if reason:
            raise RuntimeError(reason)
        for key, value in (("JACK_DEFAULT_SERVER", self.name), ("JACK_NO_START_SERVER", "1")):
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        # --sync (the default here): each cycle waits for every client. In the default (asynchronous)
        # mode a client that misses its cycle on a loaded machine loses the MIDI events it wrote in
        # it (seen: a MIDI clock pulse, a note-off); a real sound card's deadline does not apply to
        # the dummy. The timing tests want --sync; the exit tests run both.
        cmd = ["jackd", "--no-realtime", *(["--sync"] if self.sync else []), "-n", self.name,
               "-d", "dummy", "-r", str(self.rate_hz), "-p", str(self.period_frames)]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        import rtmidi
        deadline_s = time.monotonic() + self.ready_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}: {self.log_text[-2000:]}")
            try:
                rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK).delete()
                return
            except rtmidi.RtMidiError:
                if time.monotonic() > deadline_s:
                    raise RuntimeError(f"jackd not ready after {self.ready_timeout_s} s: "
                                       f"{self.log_text[-2000:]}") from None
                time.sleep(0.05)

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
        for sem in Path("/dev/shm").glob(f"jack_sem.*_{self.name}_*"):  # left by killed clients
            sem.unlink(missing_ok=True)


# A tiny model for the real-port tests and the live benchmark: untrained weights, the default grid.
_TINY_CHECKPOINT = """
import sys, torch
from perform.config import Config
from perform.tokens import Vocab
from train.checkpoint import save_checkpoint
from train.model import JamLSTM
torch.manual_seed(int(sys.argv[2]))
cfg = Config()
vocab = Vocab.from_grid(cfg.grid)
args = dict(vocab_size=vocab.size, embed_dim=16, hidden_size=32, num_layers=1, dropout=0.0)
model = JamLSTM(**args)
save_checkpoint(sys.argv[1], {"state_dict": model.state_dict(), "model_args": args,
                              "vocab": vocab.to_dict(), "config": cfg.to_dict()})
"""


def tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write tiny.pt and export it to tiny.onnx in `out_dir` (needs torch and onnx); return the .onnx."""
    import sys
    out_dir = Path(out_dir)
    ckpt, onnx_path = out_dir / "tiny.pt", out_dir / "tiny.onnx"
    subprocess.run([sys.executable, "-c", _TINY_CHECKPOINT, str(ckpt), str(seed)], check=True,
                   capture_output=True, text=True)
    done = subprocess.run([sys.executable, "-m", "export", str(ckpt), "-o", str(onnx_path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"export failed ({done.returncode}): {done.stdout}{done.stderr}")
    return onnx_path


# ---- an input flood: notes, sysex, clock, aftertouch, CCs -------------------------------------

#: One round of the flood: every kind a keyboard, a DAW or a broken device may pour into the input.
FLOOD_ROUND = (
    ("note_on", dict(note=60, velocity=1)), ("note_off", dict(note=60)),
    ("sysex", dict(data=(0x7D,) + (0x55,) * 30)), ("clock", {}), ("aftertouch", dict(value=64)),
    ("polytouch", dict(note=60, value=64)), ("control_change", dict(control=1, value=64)),
    ("control_change", dict(control=74, value=10)), ("pitchwheel", dict(pitch=100)), ("clock", {}),
)


def flood_messages() -> list:
    import mido
    return [mido.Message(kind, **fields) for kind, fields in FLOOD_ROUND]


def flood(port, rate_hz: float, seconds: float, stop=None) -> dict:
    """Send FLOOD_ROUND's messages round and round at `rate_hz` for `seconds` on `port` (a mido
    output), in bursts every millisecond on an absolute schedule. Returns {"sent": n, "rate_hz"}."""
    msgs = flood_messages()
    start_s = time.perf_counter()
    sent = 0
    while True:
        now_s = time.perf_counter()
        if now_s - start_s >= seconds or (stop is not None and stop.is_set()):
            break
        due = int((now_s - start_s) * rate_hz)
        while sent < due:
            port.send(msgs[sent % len(msgs)])
            sent += 1
        time.sleep(0.001)
    took_s = time.perf_counter() - start_s
    return {"sent": sent, "seconds": took_s, "rate_hz": sent / took_s if took_s else 0.0}
