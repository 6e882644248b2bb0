"""`perform`: the live instrument, or an offline render to a .mid file.

    perform --list-ports
    perform --port "IAC"                          # answer on an output; listen to every keyboard
    perform --port synth --input keys --mode duet --bpm 96 --thru --record jam.mid
    perform --virtual                             # ports "lstm-jam out"/"lstm-jam in" for a DAW
    perform --out song.mid --bars 8 [--prime phrase.mid] [--form "verse chorus verse"]
    perform --port synth --input keys --key-strength 0.8 --register-follow 0.5 --density 0.3
    perform --port synth --input keys --velocity "fixed 100"   # or auto, model, player
    perform --out song.mid --png --prime phrase.mid            # song.png: a piano roll beside it

Settings come from config.toml (or --config FILE), then `--set table.key=value`, then the options
below. Ctrl-C or SIGTERM stop it; every way out silences the notes it played.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from .clock import period_s_from_bpm
from .config import MODES, Config, GridConfig, load_config, merge_overrides, parse_set_option
from .errors import ConfigError, JamError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="perform", description="An LSTM that jams with you over MIDI.",
                                epilog="Settings: config.toml, then --set, then these options.")
    p.add_argument("--config", help="a config.toml (default: ./config.toml when present)")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override any setting, e.g. --set perform.answer_bars=4")
    p.add_argument("--model", help="the .onnx model (default: models/default.onnx)")
    g = p.add_argument_group("playing")
    g.add_argument("--mode", choices=MODES, help="call (answer when you pause), duet, solo")
    g.add_argument("--bpm", type=float, help="tempo in beats per minute")
    g.add_argument("--temperature", type=float, help="sampling temperature (lower: safer)")
    g.add_argument("--top-k", type=int, help="sample among the k likeliest tokens (0: off)")
    g.add_argument("--top-p", type=float, help="nucleus sampling mass")
    g.add_argument("--seed", type=int, help="random seed (-1: fresh)")
    g.add_argument("--answer-bars", type=int, help="how many bars an answer lasts (call mode)")
    g.add_argument("--pause-beats", type=float, help="silence, in beats, before it answers")
    g.add_argument("--seconds", type=float, help="stop after this many seconds")
    g.add_argument("--quiet", action="store_true", help="no status line")
    g.add_argument("--record", metavar="FILE.mid", help="write the jam (player, instrument)")
    g.add_argument("--stats-json", metavar="FILE", help="write timing figures as JSON on exit")
    st = p.add_argument_group("steering (the player in control; [steer] in config.toml)")
    st.add_argument("--key-strength", type=float, help="0..1: keep the answer in the key (1: only its scale)")
    st.add_argument("--key", help='the key, e.g. "D minor", "F# major" (default: follow the player)')
    st.add_argument("--register-follow", type=float, help="0..1: stay near the player's register")
    st.add_argument("--density", type=float, help="-1..1: sparser .. busier")
    st.add_argument("--pitch-temperature", type=float, help="times --temperature, for the pitches")
    st.add_argument("--rhythm-temperature", type=float,
                    help="times --temperature, for note-or-rest and durations")
    st.add_argument("--velocity", help='how loud it answers: auto (default), model, player, "fixed N"')
    m = p.add_argument_group("MIDI")
    m.add_argument("--list-ports", action="store_true", help="list MIDI inputs and outputs")
    m.add_argument("--port", help="output port: part of its name")
    m.add_argument("--input", help="input port: part of its name (default: every hardware input)")
    m.add_argument("--no-input", action="store_true", help="open no input (solo)")
    m.add_argument("--virtual", action="store_true",
                   help="open virtual ports for a DAW (the input stays real when --input names one)")
    m.add_argument("--api", help="rtmidi backend: jack, alsa, coremidi, windows")
    m.add_argument("--channel", type=int, help="output MIDI channel 1..16")
    m.add_argument("--thru", action="store_true", default=None, help="echo the player to the output")
    m.add_argument("--no-reconnect", action="store_false", dest="reconnect", default=None,
                   help="exit (status 2) when a port vanishes, instead of waiting for it to return")
    m.add_argument("--sync", action="store_true", default=None, help="follow incoming MIDI clock")
    m.add_argument("--send-clock", action="store_true", default=None, help="send MIDI clock")
    o = p.add_argument_group("offline")
    o.add_argument("--out", metavar="FILE.mid", help="render to a MIDI file instead of playing")
    o.add_argument("--bars", type=int, help="bars to render (per section with --form)")
    o.add_argument("--prime", metavar="FILE.mid", help="music the model hears first")
    o.add_argument("--form", help='song form, e.g. "verse chorus verse chorus bridge chorus"')
    o.add_argument("--png", action="store_true", default=None,
                   help="also write FILE.png, a piano roll (the prime and the answer in two colours)")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    sets: dict[str, dict] = {}
    for text in args.set:
        table, key, value = parse_set_option(text)
        sets.setdefault(table, {})[key] = value
    options = {
        "clock": {"bpm": args.bpm, "sync": args.sync, "send_clock": args.send_clock},
        "sampling": {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
                     "seed": args.seed},
        "steer": {"key_strength": args.key_strength, "key": args.key,
                  "register_follow": args.register_follow, "density": args.density,
                  "pitch_temperature": args.pitch_temperature,
                  "rhythm_temperature": args.rhythm_temperature, "velocity": args.velocity},
        "ports": {"output": args.port, "input": args.input, "api": args.api,
                  "virtual": args.virtual or None, "channel": args.channel, "thru": args.thru,
                  "reconnect": args.reconnect},
        "perform": {"model": args.model, "mode": args.mode, "answer_bars": args.answer_bars,
                    "answer_pause_beats": args.pause_beats},
    }
    return load_config(args.config, merge_overrides(sets, options))


def load_generator(cfg: Config):
    """(generator, provider, vocab) for the configured model."""
    from .engine import Engine
    from .model_file import default_model_path
    engine = Engine(cfg.perform.model or default_model_path(), cfg.perform.providers)
    if engine.fallback:
        print(f"note: {engine.fallback}", file=sys.stderr)
    from .generator import Generator
    from .sampling import Sampler
    from .steer import Steerer
    s = cfg.sampling
    sampler = Sampler(s.temperature, s.top_k, s.top_p, s.seed)
    steering = Steerer(cfg.steer, engine.vocab)
    return Generator(engine, sampler, steering=steering), engine.provider, engine.vocab


def with_model_grid(cfg: Config, vocab) -> Config:
    """The model defines the grid it speaks; the config's [grid] yields to it."""
    grid = GridConfig(vocab.steps_per_beat, vocab.max_dur_steps, vocab.velocity_bins,
                      vocab.pitch_min, vocab.pitch_max)
    return dataclasses.replace(cfg, grid=grid)


SWITCH_INTERVAL_S = 0.0002


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        check_options(args)
        if args.list_ports:
            from .ports import format_port_list
            print(format_port_list(cfg.ports.api or None))
            return 0
        generator, provider, vocab = load_generator(cfg)
        cfg = with_model_grid(cfg, vocab)
        if args.out:
            return render_to_file(args, cfg, generator)
        # The loop thread must get the interpreter back within a fraction of a tick when it wakes,
        # not after the default 5 ms switch interval of whichever thread (port poller, watch) holds it.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        return play_live(args, cfg, generator, provider)
    except JamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def check_options(args: argparse.Namespace) -> None:
    offline = [name for name in ("bars", "prime", "form", "png") if getattr(args, name) is not None]
    if offline and not args.out:
        raise ConfigError(f"--{offline[0]} is for offline rendering; add --out FILE.mid")
    if args.out and args.bars is not None and args.bars < 1:
        raise ConfigError(f"--bars {args.bars} must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        raise ConfigError(f"--seconds {args.seconds} must be more than 0")
    if args.png and Path(args.out).suffix.lower() == ".png":
        raise ConfigError(f"--out {args.out} names the MIDI file; --png writes the .png beside it: "
                          f"use --out FILE.mid")
    if args.out and args.record:
        raise ConfigError("--record is for live playing; --out already writes a file")


def render_to_file(args: argparse.Namespace, cfg: Config, generator) -> int:
    from .render import parse_form, read_prime, render, write_midi
    grid = cfg.grid
    prime = read_prime(args.prime, grid.steps_per_beat, grid.max_dur_steps) if args.prime else []
    form = parse_form(args.form)
    bars = args.bars or 8
    steps_per_bar = cfg.perform.beats_per_bar * grid.steps_per_beat
    notes = render(generator, bars, steps_per_bar, form, prime)
    total_steps = bars * steps_per_bar * max(len(form), 1)
    path = write_midi(notes, args.out, cfg.clock.bpm, grid.steps_per_beat, total_steps,
                      cfg.ports.channel - 1, cfg.perform.beats_per_bar)
    print(f"wrote {path}: {len(notes)} notes, {total_steps // steps_per_bar} bars at "
          f"{cfg.clock.bpm:g} bpm", file=sys.stderr)
    if args.png:
        from .pianoroll import spans_from_notes, write_piano_roll
        png, offset = path.with_suffix(".png"), max((n.start_step + 1 for n in prime), default=0)
        answer = spans_from_notes(clip_notes(notes, total_steps), offset)
        write_piano_roll(png, spans_from_notes(prime), answer, grid.steps_per_beat,
                         cfg.perform.beats_per_bar)
        print(f"wrote {png}: the piano roll", file=sys.stderr)
    return 0


def clip_notes(notes, total_steps: int) -> list:
    """The notes as the file holds them: durations cut at `total_steps`."""
    return [dataclasses.replace(n, dur_steps=min(n.dur_steps, total_steps - n.start_step))
            for n in notes if n.start_step < total_steps]


def play_live(args: argparse.Namespace, cfg: Config, generator, provider: str) -> int:
    from .listener import CLOCK_TYPES, IGNORED_TYPES, Listener
    from .live_ports import LivePorts
    from .record import Recorder
    from .session import Session
    from .status import StatusLine
    recorder = (Recorder(args.record, cfg.grid.steps_per_beat, cfg.perform.beats_per_bar)
                if args.record else None)
    listener = Listener(ignored=IGNORED_TYPES if cfg.clock.sync else IGNORED_TYPES | CLOCK_TYPES)
    with ExitStack() as stack:
        live = LivePorts(cfg, listener, no_input=args.no_input)
        stack.callback(live.close)
        output, inputs = live.output, live.inputs
        follower = _clock_follower() if cfg.clock.sync else None
        status = StatusLine(max_hz=cfg.perform.status_hz, enabled=not args.quiet)
        session = Session(cfg, generator, output, listener=listener, provider=provider,
                          recorder=recorder, status=status, clock_follower=follower)
        _announce(cfg, output, inputs, provider)
        max_ticks = None
        if args.seconds:
            max_ticks = int(args.seconds / period_s_from_bpm(cfg.clock.bpm, cfg.grid.steps_per_beat))
        stats = None
        with _signals_stop(session) as signals:
            try:
                stats = live.run(session, max_ticks=max_ticks)
            finally:
                signals.closing = True        # a signal now waits for the ports to close: on JACK
                live.close()                  # that delivers the final note-offs
                if args.stats_json:
                    Path(args.stats_json).write_text(json.dumps(stats or session.stats(), indent=1))
        if stats.get("input_dropped"):
            print(f"note: {stats['input_dropped']} input messages were dropped (more arrived than the "
                  f"input queue holds); {stats['input_received']} were heard", file=sys.stderr)
        if stats["errors"]:
            print(f"error: {stats['errors'][0]}", file=sys.stderr)
            return 2
    return 0


def _clock_follower():
    from .midiclock import MidiClockFollower
    return MidiClockFollower()


def _announce(cfg: Config, output, inputs, provider: str) -> None:
    names = getattr(inputs, "names", None) if inputs is not None else []
    heard = ", ".join(names) if names else "nothing (no MIDI input; try --input NAME)"
    print(f"lstm-jam: {cfg.perform.mode} at {cfg.clock.bpm:g} bpm on {provider}; out: {output.name}; "
          f"in: {heard}. Ctrl-C stops.", file=sys.stderr)
    if not names and cfg.perform.mode != "solo":
        print(f"warning: {cfg.perform.mode} mode answers what it hears, and it hears no input; "
              f"name one with --input (see --list-ports) or use --mode solo", file=sys.stderr)


class _signals_stop:
    """SIGINT and SIGTERM ask the session to stop (it then silences its notes); a second signal
    interrupts at once (the session still silences on the way out), except while the notes are
    being silenced or (once `closing` is set) the ports closed: then it is ignored (that is short)."""

    def __init__(self, session) -> None:
        self.session = session
        self.closing = False
        self.previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.session.closing or self.closing:
            return                      # already silencing: let it finish
        if self.session.stopping:
            raise KeyboardInterrupt
        self.session.stop()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
