"""Read a corpus into tokens (cached) and say what was read.

    python -m train prepare [PATH ...] [--json] [--no-cache] [--config FILE] [--tracks 0,1]
                            [--workers N] [--set table.key=value ...]
                            [--out-shards DIR [--shard-files N]]

No PATH: music21's bundled Bach chorales. PATHs are MIDI files (.mid .midi .kar .rmi), music21 scores
(.mxl .xml .musicxml .abc .krn) or folders of them (searched recursively). Prints files read, files
skipped each with its reason, notes, tokens, steps, vocabulary size and seconds; --json prints the
same as one JSON object. With --out-shards DIR the tokens are written to DIR as memory-mappable
shards (train.shards), N files per shard; a killed run continues where it stopped when the same
command is run again. Exit status 0, or 2 with `error: ...` for a mistake (a missing path, nothing
readable, a bad setting).
"""

from __future__ import annotations

import argparse
import json
import sys

from perform.config import load_config, parse_set_option
from perform.errors import ConfigError, JamError
from perform.tokens import Vocab

from .corpus import READ_SUFFIXES, Corpus, load_corpus
from .shards import DEFAULT_SHARD_FILES, prepare_shards


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", help="MIDI files, scores or folders (none: Bach chorales)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-cache", action="store_true", help="read every file afresh")
    p.add_argument("--config", help="a config.toml (default: ./config.toml when present)")
    p.add_argument("--tracks", help="MIDI track (or score part) indices to keep, e.g. 0,1 "
                                    "(default: every track but drums)")
    p.add_argument("--workers", type=int, help="reader processes (default: one per core; 1 reads serially)")
    p.add_argument("--out-shards", metavar="DIR",
                   help="write token shards to DIR for `python -m train DIR` (resumable)")
    p.add_argument("--shard-files", type=int, default=DEFAULT_SHARD_FILES, metavar="N",
                   help=f"files per shard (default {DEFAULT_SHARD_FILES}; a kill loses at most one shard)")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override a setting, e.g. --set grid.steps_per_beat=2")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        corpus = prepare(args)
    except JamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.out_shards:
            print(f"interrupted; the finished shards in {args.out_shards} are kept: run the same "
                  "command again to continue", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(corpus.summary()))
    else:
        print(format_summary(corpus))
    return 0


def prepare(args: argparse.Namespace):
    """The Corpus read (or, with --out-shards, the ShardReport of the shards written)."""
    overrides: dict[str, dict] = {}
    for text in args.set:
        table, key, value = parse_set_option(text)
        overrides.setdefault(table, {})[key] = value
    cfg = load_config(args.config, overrides)
    if args.out_shards:
        return prepare_shards(args.paths or None, Vocab.from_grid(cfg.grid), args.out_shards,
                              cache_dir=cfg.paths.cache_dir, use_cache=not args.no_cache,
                              workers=args.workers, progress=sys.stderr.isatty(),
                              tracks=parse_tracks(args.tracks), shard_files=args.shard_files)
    return load_corpus(args.paths or None, Vocab.from_grid(cfg.grid), cache_dir=cfg.paths.cache_dir,
                       use_cache=not args.no_cache, workers=args.workers,
                       progress=sys.stderr.isatty(), tracks=parse_tracks(args.tracks))


def parse_tracks(text: str | None) -> list[int] | None:
    """'0,2' -> [0, 2]; None -> None. Raises ConfigError for anything else."""
    if text is None:
        return None
    try:
        tracks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        tracks = []
    if not tracks or min(tracks) < 0:
        raise ConfigError(f"--tracks {text!r} must be track numbers from 0, separated by commas, "
                          "e.g. --tracks 0,1")
    return tracks


def format_summary(corpus) -> str:
    s = corpus.summary()
    lines = [f"read {s['files_ok']} file(s) ({s['from_cache']} from the cache), "
             f"skipped {s['files_skipped']}, in {s['seconds']:.2f} s"]
    if "out_shards" in s:
        lines[0] = (f"{s['out_shards']}: {s['shards']} shard(s); {lines[0]}"
                    + (f"; {s['files_earlier']} file(s) were done by an earlier run and not read "
                       "again" if s["files_earlier"] else ""))
    lines += [
             f"songs {s['songs']}, notes {s['notes']:,}, tokens {s['tokens']:,}, "
             f"steps {s['steps']:,}, vocabulary {s['vocab_size']} tokens"]
    if corpus.ignored:
        shown = ", ".join(corpus.ignored[:5]) + (f" and {len(corpus.ignored) - 5} more"
                                                  if len(corpus.ignored) > 5 else "")
        lines.append(f"ignored {len(corpus.ignored)} file(s) of other types (read are "
                     f"{' '.join(READ_SUFFIXES)}): {shown}")
    if corpus.skipped:
        lines.append("skipped:")
        lines += [f"  {file}: {reason}" for file, reason in corpus.skipped]
    if corpus.warnings:
        lines.append("read with repairs or cuts:")
        lines += [f"  {file}: {reason}" for file, reason in corpus.warnings]
    return "\n".join(lines)
