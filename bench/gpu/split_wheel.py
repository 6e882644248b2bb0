"""Here (where PyPI answers): fetch the onnxruntime-gpu wheel for the GPU machine and split it into
chunks that each fit one device call, beside a manifest of sizes and sha256 sums.

    python bench/gpu/split_wheel.py                          # the installed version, for Python 3.12
    python bench/gpu/split_wheel.py --wheel some.whl --out .gpu_wheel --chunk-mib 40

A device call carries the working tree (tracked and untracked-not-ignored files) plus the paths it
names in `carry`, 64 MiB in all. So the chunk size is what is left of 64 MiB once the working tree
is counted, less a margin, and --out must be a folder git ignores (else every chunk would travel on
every call). It prints, call by call, what to carry and what to run; bench/gpu/README.md has the rest.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from join_wheel import MANIFEST, file_sha256

REPO = Path(__file__).resolve().parents[2]
CALL_LIMIT_BYTES = 64 << 20          # the device tool's limit on what one call carries
MARGIN_BYTES = 2 << 20               # the manifest, files added before the call, rounding
TARGET_PYTHON = "3.12"               # the GPU machine's python3 (KINDS.md, 2026-11)
TARGET_PLATFORM = "manylinux_2_28_x86_64"
PART = "part-{:02d}"


def download_wheel(version: str, dest: Path, python_version: str, platform: str) -> Path:
    """`pip download` the onnxruntime-gpu wheel for the target interpreter. Returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", f"onnxruntime-gpu=={version}", "--no-deps",
           "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
           "--platform", platform, "-d", str(dest)]
    subprocess.run(cmd, check=True)
    tag = "cp" + python_version.replace(".", "")
    wheels = sorted(dest.glob(f"onnxruntime_gpu-{version}-{tag}-*.whl"))
    if not wheels:
        raise SystemExit(f"error: pip left no onnxruntime_gpu-{version}-{tag}-*.whl in {dest}")
    return wheels[-1]


def travelling_bytes(repo: Path) -> int:
    """Bytes of the files a device call sends besides `carry`: tracked and untracked-not-ignored.
    Raises SystemExit outside a git checkout (the device tool sends a checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=repo, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise SystemExit(f"error: cannot list the files a device call sends ({err}); run this in "
                         f"the git checkout the device tool sends") from err
    files = (repo / name for name in out.decode().split("\0") if name)
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def is_ignored(repo: Path, folder: Path) -> bool:
    probe = folder.resolve() / PART.format(1)
    try:
        rel = probe.relative_to(repo)
    except ValueError:
        return True                       # outside the repo: it never travels unless carried
    return subprocess.run(["git", "check-ignore", "-q", str(rel)], cwd=repo).returncode == 0


def plan_chunk_bytes(wheel_bytes: int, budget_bytes: int) -> int:
    """Equal chunks, as few as fit the budget (the last one is the remainder)."""
    if budget_bytes <= 0:
        raise SystemExit("error: the working tree alone fills a device call; carry less")
    count = math.ceil(wheel_bytes / budget_bytes)
    return math.ceil(wheel_bytes / count)


def split(wheel: Path, out: Path, chunk_bytes: int) -> dict:
    """Write out/part-01.. and out/manifest.json. Returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*"):
        old.unlink()
    parts = []
    with open(wheel, "rb") as f:
        while data := f.read(chunk_bytes):
            path = out / PART.format(len(parts) + 1)
            path.write_bytes(data)
            parts.append({"name": path.name, "size": len(data), "sha256": file_sha256(path)})
    manifest = {"wheel": wheel.name, "size": wheel.stat().st_size, "sha256": file_sha256(wheel),
                "chunk_bytes": chunk_bytes, "parts": parts}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def print_plan(manifest: dict, out: Path, tree_bytes: int) -> None:
    try:
        folder = out.resolve().relative_to(REPO).as_posix()
    except ValueError:
        folder = str(out)
        print(f"note: {out} is outside the repo; carry takes paths inside it: move the folder into "
              "an ignored one there")
    mib = 1 << 20
    print(f"{manifest['wheel']}: {manifest['size'] / mib:.1f} MiB in {len(manifest['parts'])} chunks "
          f"of at most {manifest['chunk_bytes'] / mib:.1f} MiB; the working tree adds "
          f"{tree_bytes / mib:.1f} MiB to each call (limit {CALL_LIMIT_BYTES / mib:.0f} MiB)")
    print("Run these calls back to back (a warm machine goes back after 30 s idle):")
    for i, part in enumerate(manifest["parts"], 1):
        carry = [f"{folder}/{MANIFEST}", f"{folder}/{part['name']}"]
        print(f"  call {i}: carry={json.dumps(carry)}  "
              f"command='python3 bench/gpu/join_wheel.py {folder}'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a wheel already here (default: pip download)")
    parser.add_argument("--version", help="onnxruntime-gpu version (default: the one installed here)")
    parser.add_argument("--python-version", default=TARGET_PYTHON, help="the GPU machine's Python")
    parser.add_argument("--platform", default=TARGET_PLATFORM)
    parser.add_argument("--out", type=Path, default=REPO / ".gpu_wheel",
                        help="a folder git ignores (default .gpu_wheel/ in the repo)")
    parser.add_argument("--chunk-mib", type=float,
                        help="chunk size (default: what the working tree leaves of a call)")
    args = parser.parse_args(argv)
    if not is_ignored(REPO, args.out):
        raise SystemExit(f"error: {args.out} is not ignored by git, so every chunk would travel on "
                         f"every call; add it to .git/info/exclude or pick another --out")
    wheel = args.wheel
    if wheel is None:
        version = args.version or metadata.version("onnxruntime-gpu")
        wheel = download_wheel(version, args.out / "download", args.python_version, args.platform)
    tree_bytes = travelling_bytes(REPO)
    budget = CALL_LIMIT_BYTES - tree_bytes - MARGIN_BYTES
    if args.chunk_mib:
        chunk_bytes = int(args.chunk_mib * (1 << 20))
        if chunk_bytes > budget:
            raise SystemExit(f"error: --chunk-mib {args.chunk_mib} and the {tree_bytes >> 20} MiB "
                             f"working tree exceed a call's 64 MiB; use at most {budget / (1 << 20):.1f}")
    else:
        chunk_bytes = plan_chunk_bytes(wheel.stat().st_size, budget)
    manifest = split(wheel, args.out, chunk_bytes)
    print_plan(manifest, args.out, tree_bytes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
