"""onnxruntime-gpu where CUDA cannot start (this CPU-only machine's real failure, no fake): the
engine falls back to the CPU and says why in one line, and none of onnxruntime's own multi-line log
reaches stderr. Each case runs in a subprocess: onnxruntime logs from C++ straight to file
descriptor 2, where capsys cannot see it. Skipped where CUDA works or onnxruntime has no CUDA."""

import re
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from perform.engine import CPU, CUDA

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "default.onnx"
NOTE = re.compile(r'CUDAExecutionProvider unavailable \((?P<reason>[^\n]+)\); '
                  r'using CPUExecutionProvider\. See README "Using a GPU"\.')
ORT_LOG = re.compile(r"\[[EWIV]:onnxruntime:")          # onnxruntime's logger: "[E:onnxruntime:Default, ..."

RAW = """
import sys, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
print(session.get_providers()[0])
"""
ENGINE = """
import sys
from perform.engine import Engine
engine = Engine(sys.argv[1])                # the default providers: CUDA, then the CPU
print(engine.provider)
print(engine.fallback, file=sys.stderr)
"""


def python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def raw_failure() -> str:
    """What onnxruntime alone prints when CUDA fails here: the oracle for the tests below."""
    if CUDA not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider: nothing to fall back from")
    result = python("-c", RAW, str(MODEL))
    assert result.returncode == 0, result.stderr
    if result.stdout.strip() == CUDA:
        pytest.skip("CUDA starts on this machine: nothing falls back")
    return result.stderr


def test_onnxruntime_alone_prints_a_multi_line_log(raw_failure):
    assert ORT_LOG.search(raw_failure) and len(raw_failure.strip().splitlines()) >= 2


def test_the_engine_says_why_in_one_line(raw_failure):
    result = python("-c", ENGINE, str(MODEL))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == CPU
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and NOTE.fullmatch(lines[0]), result.stderr
    missing = re.search(r"with error: (\S+\.so[.\d]*): cannot open shared object file", raw_failure)
    if missing:                                   # onnxruntime's own log names the missing library
        reason = NOTE.fullmatch(lines[0])["reason"]
        assert reason == f"{missing[1]}: cannot open shared object file"


def test_perform_prints_the_note_once_and_renders(raw_failure, tmp_path):
    """Needs perform/cli.py's load_generator to print `note: {engine.fallback}`."""
    out = tmp_path / "x.mid"
    result = python("-m", "perform", "--out", str(out), "--bars", "1", "--model", str(MODEL))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("note: ") and NOTE.fullmatch(lines[0].removeprefix("note: "))
    assert lines[1].startswith(f"wrote {out}: ") and out.is_file()
    assert not ORT_LOG.search(result.stderr)
