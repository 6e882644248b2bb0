"""How each steering control moves the music: bench/music.py run once per setting, one curve each.

    python bench/steering.py --json                      # models/default.onnx, --n 30 per point
    python bench/steering.py --json --n 60 --model runs/x/model.onnx

Curves (each point is bench/music.py's unprimed and primed sections with that one control set and
the others at their defaults; the same --seed, phrases and renders for every point):
    key_strength       0, 0.25, 0.5, 0.75, 1: primed pitch-class correlation with the prime, the
                       share of the answer's notes in the key the steering followed, and in the
                       prime's own estimated key; unprimed scale consistency with --key "C major"
    density            -1, -0.5, 0, 0.5, 1: notes per beat (unprimed and primed)
    register_follow    0, 0.5, 1: register gap between prime and answer (semitones)
    velocity           model, player: correlation of the prime's mean velocity with the answer's
    pitch_temperature  0.5, 1, 1.5: pitch-class entropy of the unprimed renders (bits)
`monotonic` says whether each curve's figure moves one way only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_music", HERE / "music.py")
music = importlib.util.module_from_spec(_spec)
sys.modules["bench_music"] = music       # its dataclasses look their module up
_spec.loader.exec_module(music)          # also puts the repository (not bench/) on sys.path

CURVES = {
    "key_strength": (["--key-strength"], [0.0, 0.25, 0.5, 0.75, 1.0]),
    "density": (["--density"], [-1.0, -0.5, 0.0, 0.5, 1.0]),
    "register_follow": (["--register-follow"], [0.0, 0.5, 1.0]),
    "velocity": (["--velocity"], ["model", "player"]),
    "pitch_temperature": (["--pitch-temperature"], [0.5, 1.0, 1.5]),
}


def figures(result: dict) -> dict:
    u, p = result["unprimed"], result["primed"]
    return {
        "primed_pc_correlation": p["model"]["pc_correlation"]["median"],
        "in_steered_key": p["scale_consistency_vs_steered_key"]["median"],
        "in_prime_key": p["scale_consistency_vs_prime_key"]["median"],
        "register_gap": p["model"]["register_gap"],
        "velocity_correlation": p["model"].get("velocity_correlation"),
        "notes_per_beat_unprimed": u["notes_per_beat"]["median"],
        "notes_per_beat_primed": p["continuation"]["notes_per_beat"]["median"],
        "pitch_class_entropy_bits": u["pitch_class_entropy_bits"]["median"],
        "unprimed_scale_consistency": u["scale_consistency"]["median"],
    }


WATCH = {"key_strength": "in_steered_key", "density": "notes_per_beat_unprimed",
         "register_follow": "register_gap", "velocity": "velocity_correlation",
         "pitch_temperature": "pitch_class_entropy_bits"}


def monotonic(values: list) -> bool:
    pairs = [(a, b) for a, b in zip(values, values[1:]) if a is not None and b is not None]
    return all(a <= b for a, b in pairs) or all(a >= b for a, b in pairs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="an .onnx file (default: models/default.onnx)")
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    base = ["--n", str(args.n), "--seed", str(args.seed), "--sections", "unprimed", "primed"]
    if args.model:
        base += ["--model", args.model]
    out: dict = {"n": args.n, "seed": args.seed, "curves": {}}
    for name, (flag, values) in CURVES.items():
        points = []
        for value in values:
            extra = ["--key", "C major"] if name == "key_strength" else []
            music.say(f"{name} = {value}")
            result = music.run(music.parse_args([*base, *flag, str(value)], _sampling()))
            unkeyed = {}
            if name == "key_strength":     # the unprimed renders follow no player: a fixed key
                keyed = music.run(music.parse_args([*base, *flag, str(value), *extra], _sampling()))
                unkeyed = {"unprimed_scale_consistency_c_major":
                           keyed["unprimed"]["scale_consistency"]["median"]}
            points.append({"value": value, **figures(result), **unkeyed})
        watched = [pt[WATCH[name]] for pt in points]
        out["curves"][name] = {"watch": WATCH[name], "points": points,
                               "monotonic": monotonic(watched)}
    out["model"] = result["model"]["path"]
    print(json.dumps(out, indent=2) if args.json else out)
    return 0


def _sampling():
    from perform.config import load_config
    return load_config().sampling


if __name__ == "__main__":
    raise SystemExit(main())
