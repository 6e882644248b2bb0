"""Settings: one frozen dataclass per `config.toml` table, loaded with tomllib and type-checked.

    cfg = load_config("config.toml", overrides={"clock": {"bpm": 140}})
    cfg.clock.bpm  # 140.0

An unknown table or key, or a value of the wrong type, raises ConfigError naming the key, the file
and the valid keys. Defaults live here; the top-level config.toml mirrors them (a test keeps the two
in step).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .dynamics import parse_velocity
from .errors import ConfigError
from .steer import parse_key

MODES = ("call", "duet", "solo")
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class GridConfig:
    """The token language's grid: what a step is, and the caps of durations, pitches, velocities."""

    steps_per_beat: int = 4
    max_dur_steps: int = 32
    velocity_bins: int = 8
    pitch_min: int = 21
    pitch_max: int = 108

    def __post_init__(self) -> None:
        _check(self.steps_per_beat >= 1, "grid.steps_per_beat", self.steps_per_beat, "a whole number >= 1")
        _check(self.max_dur_steps >= 1, "grid.max_dur_steps", self.max_dur_steps, "a whole number >= 1")
        _check(1 <= self.velocity_bins <= 127, "grid.velocity_bins", self.velocity_bins, "1..127")
        _check(0 <= self.pitch_min <= self.pitch_max <= 127, "grid.pitch_min/pitch_max",
               (self.pitch_min, self.pitch_max), "0 <= pitch_min <= pitch_max <= 127")


@dataclass(frozen=True)
class ClockConfig:
    """Tempo and MIDI clock."""

    bpm: float = 120.0
    sync: bool = False
    send_clock: bool = False

    def __post_init__(self) -> None:
        _check(10.0 <= self.bpm <= 400.0, "clock.bpm", self.bpm, "a tempo from 10 to 400")


@dataclass(frozen=True)
class SamplingConfig:
    """How the next token is drawn from the model's logits. seed -1 draws a fresh seed."""

    temperature: float = 0.8          # the shipped model: its pitch-class entropy then matches its corpus
    top_k: int = 0
    top_p: float = 0.95
    seed: int = -1

    def __post_init__(self) -> None:
        _check(self.temperature > 0, "sampling.temperature", self.temperature, "a number > 0")
        _check(self.top_k >= 0, "sampling.top_k", self.top_k, "0 (off) or a whole number >= 1")
        _check(0 < self.top_p <= 1, "sampling.top_p", self.top_p, "a number in (0, 1]")


@dataclass(frozen=True)
class SteerConfig:
    """The player in control (perform.steer): key, register, density, separate temperatures,
    dynamics. key "" follows the player's key; else e.g. "D minor". velocity (perform.dynamics):
    "auto", "model", "player" or "fixed N". The defaults change nothing but the velocities of a
    model whose corpus had no dynamics once the player played: "auto" then follows the player's."""

    key_strength: float = 0.0         # 0: off .. 1: only the key's scale
    key: str = ""
    register_follow: float = 0.0      # 0: off .. 1: stay near the player's register
    density: float = 0.0              # -1: sparser .. 1: busier
    pitch_temperature: float = 1.0    # times the sampling temperature, for which pitch
    rhythm_temperature: float = 1.0   # times the sampling temperature, for note-or-step and durations
    key_half_life_beats: float = 8.0  # how fast the player's old notes fade (key, register, dynamics)
    velocity: str = "auto"            # "model", "player", "fixed N"; auto: model if it had dynamics

    def __post_init__(self) -> None:
        for name in ("key_strength", "register_follow"):
            _check(0 <= getattr(self, name) <= 1, f"steer.{name}", getattr(self, name), "a number in [0, 1]")
        _check(-1 <= self.density <= 1, "steer.density", self.density, "a number in [-1, 1]")
        for name in ("pitch_temperature", "rhythm_temperature", "key_half_life_beats"):
            _check(getattr(self, name) > 0, f"steer.{name}", getattr(self, name), "a number > 0")
        try:
            parse_key(self.key)
        except ValueError as err:
            raise ConfigError(f"steer.key = {err}") from None
        try:
            parse_velocity(self.velocity)
        except ValueError as err:
            raise ConfigError(f"steer.velocity = {err}") from None


@dataclass(frozen=True)
class PortsConfig:
    """MIDI ports, matched by case-insensitive substring of their names. Empty: see the README."""

    output: str = ""
    input: str = ""
    api: str = ""
    virtual: bool = False
    channel: int = 1
    thru: bool = False
    reconnect: bool = True          # a vanished port: wait for it to return (False: exit, status 2)

    def __post_init__(self) -> None:
        _check(1 <= self.channel <= 16, "ports.channel", self.channel, "a MIDI channel 1..16")


@dataclass(frozen=True)
class PerformConfig:
    """The instrument: model, mode, turn taking."""

    model: str = ""
    mode: str = "call"
    providers: tuple[str, ...] = PROVIDERS
    answer_pause_beats: float = 2.0
    answer_bars: int = 2
    beats_per_bar: int = 4
    status_hz: float = 10.0

    def __post_init__(self) -> None:
        _check(self.mode in MODES, "perform.mode", self.mode, f"one of {list(MODES)}")
        _check(self.answer_pause_beats > 0, "perform.answer_pause_beats", self.answer_pause_beats, "> 0")
        _check(self.answer_bars >= 1, "perform.answer_bars", self.answer_bars, "a whole number >= 1")
        _check(self.beats_per_bar >= 1, "perform.beats_per_bar", self.beats_per_bar, ">= 1")


@dataclass(frozen=True)
class ControlsConfig:
    """Live controls: the CC number (0..127) that drives each; -1 turns one off."""

    cc_temperature: int = 1
    cc_mode: int = 20
    cc_mute: int = 21
    cc_answer_bars: int = 22
    cc_panic: int = 23
    cc_key_strength: int = 24
    cc_density: int = 25
    cc_register_follow: int = 26
    cc_velocity: int = 27           # 0: the configured [steer] velocity policy; 1..127: fixed at it
    cc_pitch_temperature: int = 28  # 0..127 -> 0.25..4 (64: 1)
    cc_rhythm_temperature: int = 29

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check(-1 <= value <= 127, f"controls.{f.name}", value, "a CC number 0..127, or -1 for off")


LR_SCHEDULES = ("cosine", "plateau")


@dataclass(frozen=True)
class TrainConfig:
    """Model sizes and the training run."""

    embed_dim: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 0.002
    max_epochs: int = 100
    patience: int = 5
    max_minutes: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    augment: bool = True
    transpose_semitones: int = 6
    lr_schedule: str = "cosine"     # "cosine": warmup then cosine to min_lr_fraction over max_epochs;
                                    # "plateau": halve after an epoch that does not improve
    warmup_steps: int = 200
    min_lr_fraction: float = 0.05
    max_steps: int = 0              # stop after this many optimizer steps in all (0: no limit)
    baseline_max_tokens: int = 2_000_000   # the n-gram baseline is fitted on at most this many

    def __post_init__(self) -> None:
        _check(0 <= self.dropout < 1, "train.dropout", self.dropout, "a number in [0, 1)")
        _check(self.lr_schedule in LR_SCHEDULES, "train.lr_schedule", self.lr_schedule,
               f"one of {list(LR_SCHEDULES)}")
        _check(self.warmup_steps >= 0, "train.warmup_steps", self.warmup_steps, "a whole number >= 0")
        _check(self.max_steps >= 0, "train.max_steps", self.max_steps, "a whole number >= 0 (0: no limit)")
        _check(self.baseline_max_tokens >= 0, "train.baseline_max_tokens", self.baseline_max_tokens,
               "a whole number >= 0 (0: every token)")
        _check(0 <= self.min_lr_fraction <= 1, "train.min_lr_fraction", self.min_lr_fraction,
               "a number in [0, 1]")
        _check(0 < self.val_fraction < 1, "train.val_fraction", self.val_fraction, "a number in (0, 1)")
        for name in ("embed_dim", "hidden_size", "num_layers", "seq_len", "batch_size", "max_epochs"):
            _check(getattr(self, name) >= 1, f"train.{name}", getattr(self, name), "a whole number >= 1")
        _check(0 <= self.transpose_semitones <= 24, "train.transpose_semitones", self.transpose_semitones,
               "0..24 (the largest random shift of a song, in semitones, when augment is on)")


@dataclass(frozen=True)
class PathsConfig:
    """Where things are kept. Relative paths are relative to the working directory."""

    cache_dir: str = ".cache/lstm-jam"
    out_dir: str = "runs/latest"


@dataclass(frozen=True)
class Config:
    grid: GridConfig = field(default_factory=GridConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    steer: SteerConfig = field(default_factory=SteerConfig)
    ports: PortsConfig = field(default_factory=PortsConfig)
    perform: PerformConfig = field(default_factory=PerformConfig)
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (tuples as lists), fit for JSON and TOML."""
        out: dict[str, dict[str, Any]] = {}
        for table in dataclasses.fields(self):
            section = dataclasses.asdict(getattr(self, table.name))
            out[table.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
        return out


DEFAULT_CONFIG_NAME = "config.toml"


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is out of range; expected {expected}")


def _table_classes() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field's type; ints are accepted for floats, lists for tuples."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} = {value!r} must be a list of strings, e.g. [\"a\", \"b\"]")
        return tuple(value)
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, annotation)
    if not ok:
        raise ConfigError(f"{where} = {value!r} must be of type {annotation.__name__}")
    return value


def _build(data: Mapping[str, Any], source: str, base: Config | None = None) -> Config:
    classes = _table_classes()
    base = base or Config()
    tables: dict[str, Any] = {}
    for table_name, table_data in data.items():
        if table_name not in classes:
            raise ConfigError(f"unknown table [{table_name}] in {source}; valid tables: {sorted(classes)}")
        if not isinstance(table_data, Mapping):
            raise ConfigError(f"{table_name} in {source} must be a table, e.g. [{table_name}]")
        cls = classes[table_name]
        hints = typing.get_type_hints(cls)
        valid = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for key, value in table_data.items():
            if key not in hints:
                raise ConfigError(f"unknown key '{key}' in [{table_name}] of {source}; valid keys: {valid}")
            values[key] = _coerce(value, hints[key], f"{table_name}.{key} in {source}")
        try:
            tables[table_name] = dataclasses.replace(getattr(base, table_name), **values)
        except ConfigError as err:
            raise ConfigError(f"{err} (in {source})") from None
    return dataclasses.replace(base, **tables)


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Read `path` (or ./config.toml when it exists, else the defaults) and apply `overrides`.

    Raises ConfigError for a missing or malformed file, an unknown table or key, or a wrong type.
    """
    config = Config()
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = DEFAULT_CONFIG_NAME
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; pass an existing file to --config") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config file {path}: {err}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path} is not valid TOML: {err}; fix that line or delete the file") from err
        config = _build(data, str(path), config)
    if overrides:
        config = _build({k: v for k, v in overrides.items() if v}, "the command line", config)
    return config


def parse_set_option(text: str) -> tuple[str, str, Any]:
    """Parse `--set table.key=value` (value in TOML syntax; a bare word is taken as a string)."""
    name, sep, raw = text.partition("=")
    table, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"--set {text!r} must look like table.key=value, e.g. --set clock.bpm=140")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return table, key, value


def merge_overrides(*parts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge override dicts; later ones win. None values are dropped (an option not given)."""
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for table, values in part.items():
            for key, value in values.items():
                if value is not None:
                    merged.setdefault(table, {})[key] = value
    return merged


def to_toml(config: Config) -> str:
    """Render a config as TOML text (the shape of the top-level config.toml)."""
    lines: list[str] = []
    for table, values in config.to_dict().items():
        lines.append(f"[{table}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
