"""bench/gpu/: a fake wheel split, carried chunk by chunk and joined; check_libs against the loader."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU = REPO / "bench" / "gpu"


def run(script, *args, **kwargs):
    return subprocess.run([sys.executable, str(GPU / script), *map(str, args)], capture_output=True,
                          text=True, timeout=60, **kwargs)


@pytest.fixture
def split(tmp_path):
    """A 250 kB fake wheel split into 100 kB chunks: (wheel bytes, folder with manifest + chunks)."""
    data = bytes(range(256)) * 976 + b"tail"
    wheel = tmp_path / "fake_pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(data)
    result = run("split_wheel.py", "--wheel", wheel, "--out", tmp_path / "chunks",
                 "--chunk-mib", 100_000 / (1 << 20))
    assert result.returncode == 0, result.stderr
    assert "3 chunks" in result.stdout
    return data, tmp_path / "chunks"


def carry(chunks: Path, call_dir: Path, *names: str) -> Path:
    """What one device call finds in its repo copy: the manifest and the chunks it carried."""
    shutil.rmtree(call_dir, ignore_errors=True)
    call_dir.mkdir()
    for name in ("manifest.json", *names):
        shutil.copyfile(chunks / name, call_dir / name)
    return call_dir


def test_chunks_carried_in_three_calls_join_into_the_same_wheel(split, tmp_path):
    data, chunks = split
    manifest = json.loads((chunks / "manifest.json").read_text())
    assert [p["size"] for p in manifest["parts"]] == [100_000, 100_000, len(data) - 200_000]
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    store, call = tmp_path / "store", tmp_path / "call"
    for name, expected in (("part-02", "have 1/3"), ("part-01", "have 2/3")):
        result = run("join_wheel.py", carry(chunks, call, name), "--store", store, "--no-install")
        assert result.returncode == 3 and expected in result.stdout, result.stdout + result.stderr
    assert "still to carry: part-03" in result.stdout
    result = run("join_wheel.py", carry(chunks, call, "part-03"), "--store", store, "--no-install")
    assert result.returncode == 0, result.stderr
    assert (store / manifest["wheel"]).read_bytes() == data


def test_a_corrupt_chunk_is_refused_and_not_kept(split, tmp_path):
    _, chunks = split
    call = carry(chunks, tmp_path / "call", "part-01")
    (call / "part-01").write_bytes(b"x" + (call / "part-01").read_bytes()[1:])
    result = run("join_wheel.py", call, "--store", tmp_path / "store", "--no-install")
    assert result.returncode == 1
    assert re.search(r"error: .*part-01: 100000 bytes, sha256 .* carry that chunk again", result.stderr)
    assert not (tmp_path / "store" / "part-01").exists()


def test_a_manifest_from_another_split_fails_the_joined_checksum(split, tmp_path):
    _, chunks = split
    manifest = json.loads((chunks / "manifest.json").read_text())
    manifest["sha256"] = "0" * 64
    (chunks / "manifest.json").write_text(json.dumps(manifest))
    call = carry(chunks, tmp_path / "call", "part-01", "part-02", "part-03")
    result = run("join_wheel.py", call, "--store", tmp_path / "store", "--no-install")
    assert result.returncode == 1 and "the joined fake_pkg-1.0-py3-none-any.whl has sha256" in result.stderr
    assert not (tmp_path / "store" / manifest["wheel"]).exists()


def test_the_default_chunk_leaves_room_for_the_working_tree(tmp_path):
    """A 150 MiB wheel: equal chunks, each plus the working tree within a call's 64 MiB."""
    sys.path.insert(0, str(GPU))
    try:
        import split_wheel
    finally:
        sys.path.remove(str(GPU))
    tree = split_wheel.travelling_bytes(REPO)
    budget = split_wheel.CALL_LIMIT_BYTES - tree - split_wheel.MARGIN_BYTES
    chunk = split_wheel.plan_chunk_bytes(150 << 20, budget)
    assert chunk + tree <= 64 << 20 and chunk * -(-(150 << 20) // chunk) >= 150 << 20
    assert -(-(150 << 20) // chunk) == -(-(150 << 20) // budget)      # no more chunks than needed


ort = pytest.importorskip("onnxruntime")
CUDA_LIB = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"


@pytest.mark.skipif(not CUDA_LIB.is_file() or not sys.platform.startswith("linux"),
                    reason="needs onnxruntime-gpu on Linux")
def test_check_libs_agrees_with_the_loader(tmp_path):
    """Each DT_NEEDED library it calls missing is the one ldd calls 'not found', the load error names
    one of them, and a library in a site-packages nvidia/*/lib folder is pointed out there."""
    fake_site = tmp_path / "nvidia" / "cu13" / "lib"
    fake_site.mkdir(parents=True)
    (fake_site / "libcublasLt.so.13").write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = run("check_libs.py", "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    needed = {e["name"]: e for e in report["libraries"] if e["kind"] == "needed"}
    assert "libcudart.so.13" in needed or "libcudart.so.12" in needed
    if shutil.which("ldd"):
        ldd = subprocess.run(["ldd", str(CUDA_LIB)], capture_output=True, text=True).stdout
        missing = {m for m in re.findall(r"^\s*(\S+) => not found", ldd, re.M)}
        assert {n for n, e in needed.items() if e["path"] is None} == missing & needed.keys()
    if report["load_error"] is not None:
        named = report["load_error"].split(":")[0]
        assert named not in needed or needed[named]["path"] is None
    entry = needed.get("libcublasLt.so.13")
    if entry is not None and entry["path"] is None:
        assert entry["site_path"] == str(fake_site / "libcublasLt.so.13")
