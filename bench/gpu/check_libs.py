"""Which CUDA and cuDNN libraries onnxruntime's CUDA provider needs, and whether they resolve here.

    python bench/gpu/check_libs.py                  # here, or python3 on the GPU machine
    python bench/gpu/check_libs.py --preload        # after onnxruntime.preload_dlls() (pip nvidia-*)
    python bench/gpu/check_libs.py --json

It reads the ELF DT_NEEDED entries of capi/libonnxruntime_providers_cuda.so (the libraries the
loader must find before the provider can start) and adds the ones onnxruntime opens at run time
(cuDNN, NVRTC, cuFFT: its own preload list). Each is looked up as the loader would (RPATH,
LD_LIBRARY_PATH, RUNPATH, the ldconfig cache, the default folders) and, when that fails, in the
site-packages `nvidia/*/lib` folders that torch's CUDA builds install (usable through
LD_LIBRARY_PATH or `onnxruntime.preload_dlls()`). Last it loads the provider library with ctypes and
prints what the loader says. Exit status: 0 it loads, 1 it does not, 2 no CUDA provider library.
Linux, 64-bit little-endian ELF only.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import os
import site
import struct
import subprocess
import sys
from pathlib import Path

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 1, 5, 15, 29
DEFAULT_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib",
                "/usr/lib")
DRIVER = "libcuda.so.1"


def elf_dynamic(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(DT_NEEDED names, DT_RPATH folders, DT_RUNPATH folders) of a 64-bit little-endian ELF file.
    Raises ValueError for anything else."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            raise ValueError(f"{path} is not a 64-bit little-endian ELF file; try `ldd {path}`")
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        loads, dynamic = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
            if p_type == PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            return [], [], []
        f.seek(dynamic[0])
        raw = f.read(dynamic[1])
        entries = [struct.unpack_from("<qQ", raw, at) for at in range(0, len(raw) - 15, 16)]
        strtab = next(v for t, v in entries if t == DT_STRTAB)
        base = next(off + strtab - va for va, off, size in loads if va <= strtab < va + size)

        def string(offset: int) -> str:
            f.seek(base + offset)
            return f.read(4096).split(b"\0", 1)[0].decode()

        found: dict[int, list[str]] = {DT_NEEDED: [], DT_RPATH: [], DT_RUNPATH: []}
        for tag, value in entries:
            if tag == 0:
                break
            if tag in found:
                found[tag].append(string(value))
    origin = str(path.resolve().parent)
    folders = {t: [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
                   for text in found[t] for d in text.split(":") if d] for t in (DT_RPATH, DT_RUNPATH)}
    return found[DT_NEEDED], folders[DT_RPATH], folders[DT_RUNPATH]


def ldconfig_cache() -> dict[str, str]:
    """soname -> path from `ldconfig -p` (empty when there is no ldconfig)."""
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run([exe, "-p"], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        cache: dict[str, str] = {}
        for line in out.splitlines()[1:]:
            name, _, target = line.strip().partition(" => ")
            cache.setdefault(name.split(" (")[0], target)
        return cache
    return {}


def resolve(name: str, rpath: list[str], runpath: list[str], cache: dict[str, str]) -> str | None:
    """Where the dynamic loader would find `name`, or None."""
    env = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for folder in [*(rpath if not runpath else []), *env, *runpath]:
        if (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    if name in cache:
        return cache[name]
    return next((str(Path(d) / name) for d in DEFAULT_DIRS if (Path(d) / name).is_file()), None)


def nvidia_site_folders() -> list[Path]:
    """The `nvidia/*/lib` folders of pip's CUDA packages (nvidia-cublas, nvidia-cudnn-cu13, ...)."""
    roots = dict.fromkeys([*site.getsitepackages(), site.getusersitepackages(), *sys.path])
    return sorted({lib for root in roots if root and Path(root, "nvidia").is_dir()
                   for lib in Path(root, "nvidia").glob("*/lib") if lib.is_dir()})


def runtime_libraries(ort) -> list[str]:
    """What onnxruntime opens at run time besides DT_NEEDED, as its own preload list names them."""
    try:
        return [parts[-1] for parts in ort._get_nvidia_dll_paths(False)]   # private, may go away
    except (AttributeError, TypeError):
        return []


def load_error(path: str) -> str | None:
    try:
        ctypes.CDLL(path)
    except OSError as err:
        return str(err)
    return None


def check(preload: bool) -> dict:
    import onnxruntime as ort
    capi = Path(ort.__file__).parent / "capi"
    library = capi / "libonnxruntime_providers_cuda.so"
    try:
        from onnxruntime.capi import build_and_package_info as info
    except ImportError:
        info = None
    report = {"onnxruntime": ort.__version__, "package": getattr(info, "package_name", None),
              "built_for_cuda": getattr(info, "cuda_version", None), "provider_library": str(library),
              "found": library.is_file(), "available_providers": ort.get_available_providers(),
              "libraries": []}
    if not report["found"]:
        report["load_error"] = f"no {library.name}: this onnxruntime has no CUDA provider"
        return report
    needed, rpath, runpath = elf_dynamic(library)
    cache, site_dirs = ldconfig_cache(), nvidia_site_folders()
    report["nvidia_site_folders"] = [str(d) for d in site_dirs]
    runtime = [n for n in runtime_libraries(ort) if n not in needed]
    for kind, names in (("needed", needed), ("run time", runtime)):
        for name in names:
            site_path = next((str(d / name) for d in site_dirs if (d / name).is_file()), None)
            report["libraries"].append({"name": name, "kind": kind, "path": resolve(name, rpath, runpath, cache),
                                        "site_path": site_path})
    if preload:
        with contextlib.redirect_stdout(io.StringIO()) as said:
            ort.preload_dlls()
        report["preload_said"] = said.getvalue().strip()
    report["load_error"] = load_error(str(library))
    return report


def print_report(report: dict) -> None:
    print(f"{report['package']} {report['onnxruntime']} (built for CUDA {report['built_for_cuda']}); "
          f"providers listed: {report['available_providers']}")
    print(f"provider library: {report['provider_library']}")
    for entry in report["libraries"]:
        where = entry["path"] or "NOT FOUND"
        if entry["path"] is None and entry["site_path"]:
            where += f" (in site-packages: {entry['site_path']}; LD_LIBRARY_PATH or preload_dlls())"
        if entry["name"] == DRIVER and entry["path"] is None:
            where += " (the NVIDIA driver's: no pip package provides it)"
        print(f"  {entry['kind']:<8} {entry['name']:<24} {where}")
    print(f"nvidia site-packages folders: {report.get('nvidia_site_folders') or 'none'}")
    if report.get("preload_said"):
        print(f"preload_dlls said: {report['preload_said']}")
    error = report["load_error"]
    print(f"load test: {'the provider library loads' if error is None else 'it does not load: ' + error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preload", action="store_true",
                        help="call onnxruntime.preload_dlls() before the load test")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = check(args.preload)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    if not report["found"]:
        return 2
    return 0 if report["load_error"] is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
