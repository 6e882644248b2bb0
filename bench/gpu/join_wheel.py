"""On the GPU machine: gather the wheel's chunks, carried one device call at a time, then install it.

    python3 bench/gpu/join_wheel.py .gpu_wheel                     # each call, with that call's chunk
    python3 bench/gpu/join_wheel.py .gpu_wheel --target /tmp/ortgpu/site
    export PYTHONPATH=/tmp/ortgpu/site                             # once it says "installed"

Each call finds in PARTS the manifest and whichever chunks that call carried; a chunk whose size and
sha256 match the manifest is copied into --store (on the machine, outside the repo copy), one that
does not is refused. Once the store holds every chunk they are joined, the wheel's own sha256 is
checked, and `pip install --no-index --no-deps --target` installs it (a --target, so the machine's
own onnxruntime stays as it was; put the target first on PYTHONPATH to use it).

Exit status: 0 installed (or already installed), 3 waiting for more chunks, 1 a bad chunk, a bad
manifest or a failed install. Standard library only: it runs where nothing can be fetched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

MANIFEST = "manifest.json"
WAITING = 3
DONE_MARK = "installed.txt"


class JoinError(Exception):
    """A chunk, the manifest or the joined wheel is not what the manifest says."""


def file_sha256(path: Path, block_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict:
    """The manifest split_wheel.py wrote. Raises JoinError when it is missing or malformed."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        names = [p["name"] for p in manifest["parts"]]
        absent = [key for key in ("wheel", "size", "sha256") if key not in manifest]
        if absent:
            raise KeyError(f"no {absent}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise JoinError(f"{path}: no usable manifest ({err}); carry the {MANIFEST} that "
                        "split_wheel.py wrote beside the chunks") from err
    if any("/" in n or n.startswith(".") for n in names) or "/" in manifest["wheel"]:
        raise JoinError(f"{path}: chunk and wheel names must be plain file names")
    return manifest


def collect(parts: Path, store: Path, manifest: dict) -> list[str]:
    """Copy the verified chunks in `parts` into `store`. Returns the names still missing.
    Raises JoinError for a chunk that does not match the manifest (it is not copied)."""
    store.mkdir(parents=True, exist_ok=True)
    for part in manifest["parts"]:
        source, kept = parts / part["name"], store / part["name"]
        if kept.is_file() and kept.stat().st_size == part["size"]:
            continue                      # verified when it was copied
        if not source.is_file():
            continue
        size, digest = source.stat().st_size, file_sha256(source)
        if size != part["size"] or digest != part["sha256"]:
            raise JoinError(f"{source}: {size} bytes, sha256 {digest[:12]}..., but the manifest says "
                            f"{part['size']} bytes, {part['sha256'][:12]}...: split the wheel again "
                            "and carry that chunk again")
        partial = store / (part["name"] + ".tmp")
        shutil.copyfile(source, partial)
        partial.replace(kept)             # a chunk is in the store whole or not at all
    return [p["name"] for p in manifest["parts"] if not (store / p["name"]).is_file()]


def join(store: Path, manifest: dict) -> Path:
    """Concatenate the stored chunks into the wheel and check its sha256. Returns the wheel's path."""
    wheel = store / manifest["wheel"]
    with open(wheel, "wb") as out:
        for part in manifest["parts"]:
            with open(store / part["name"], "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    digest = file_sha256(wheel)
    if digest != manifest["sha256"]:
        wheel.unlink()
        raise JoinError(f"the joined {wheel.name} has sha256 {digest[:12]}..., not the manifest's "
                        f"{manifest['sha256'][:12]}...; its chunks verified, so the manifest belongs "
                        "to another split: carry the manifest and chunks of one split")
    return wheel


def install(wheel: Path, target: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", str(target), str(wheel)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise JoinError(f"pip install failed ({result.returncode}): {result.stderr.strip()[-800:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", type=Path, help="the folder this call carried (manifest + chunks)")
    parser.add_argument("--store", type=Path, default=Path("/tmp/ortgpu"),
                        help="where chunks are kept between calls (default /tmp/ortgpu)")
    parser.add_argument("--target", type=Path, help="pip --target (default STORE/site)")
    parser.add_argument("--no-install", action="store_true", help="join and check, do not install")
    args = parser.parse_args(argv)
    target = args.target or args.store / "site"
    try:
        manifest = read_manifest(args.parts)
        done = args.store / DONE_MARK
        if done.is_file() and done.read_text().strip() == manifest["sha256"]:
            print(f"{manifest['wheel']} already installed in {target}")
            return 0
        missing = collect(args.parts, args.store, manifest)
        have = len(manifest["parts"]) - len(missing)
        if missing:
            print(f"have {have}/{len(manifest['parts'])} chunks in {args.store}; still to carry: "
                  f"{', '.join(missing)}")
            return WAITING
        wheel = join(args.store, manifest)
        print(f"joined {wheel} ({manifest['size']} bytes, sha256 ok)")
        if args.no_install:
            return 0
        install(wheel, target)
        done.write_text(manifest["sha256"] + "\n")
        print(f"installed {manifest['wheel']} in {target}; export PYTHONPATH={target}")
        return 0
    except JoinError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
