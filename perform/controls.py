"""Live controls: CC numbers from config [controls] mapped to the instrument's settings.

    temperature  value 0..127 -> 0.1..2.0 (linear), set on the generator's sampler
    mode         0..42 call, 43..85 duet, 86..127 solo
    mute         >= 64 mutes (the instrument keeps listening), < 64 unmutes
    answer bars  0..127 -> 1..8 bars
    panic        >= 64: every note off now, turn taking reset
    key strength 0..127 -> 0..1 (linear), set on the generator's steering (perform.steer)
    density      0..127 -> -1..1, 64 exactly 0 (neutral)
    register     0..127 -> 0..1 register follow
    velocity     0 -> the configured [steer] velocity policy, 1..127 -> every note at that velocity
    pitch / rhythm temperature  0..127 -> 0.25..4 (log scale), 64 exactly 1
    velocity     0: the [steer] velocity policy configured; 1..127: every answer note at that velocity
A CC number of -1 turns a control off.
"""

from __future__ import annotations

from dataclasses import replace

from .config import MODES

TEMPERATURE_MIN, TEMPERATURE_MAX = 0.1, 2.0
MAX_ANSWER_BARS = 8


def temperature_from_cc(value: int) -> float:
    return TEMPERATURE_MIN + (TEMPERATURE_MAX - TEMPERATURE_MIN) * value / 127.0


def mode_from_cc(value: int) -> str:
    return MODES[min(value * len(MODES) // 128, len(MODES) - 1)]


def answer_bars_from_cc(value: int) -> int:
    return 1 + value * MAX_ANSWER_BARS // 128


def unit_from_cc(value: int) -> float:
    """0..127 -> 0.0..1.0."""
    return value / 127.0


def density_from_cc(value: int) -> float:
    """0..127 -> -1.0..1.0 with the centre 64 exactly 0."""
    return max(-1.0, min(1.0, (value - 64) / 63.0))


def aspect_temperature_from_cc(value: int) -> float:
    """0..127 -> 0.25..4.0 on a log scale, the centre 64 exactly 1 (neutral)."""
    return 4.0 ** max(-1.0, min(1.0, (value - 64) / 63.0))


STEER_CONTROLS = {"key_strength": unit_from_cc, "density": density_from_cc,
                  "register_follow": unit_from_cc,
                  "pitch_temperature": aspect_temperature_from_cc,
                  "rhythm_temperature": aspect_temperature_from_cc}


class Controls:
    """The live-changeable settings and the CC map that changes them."""

    def __init__(self, config, generator) -> None:
        c = config.controls
        self.generator = generator
        self.mode = config.perform.mode
        self.muted = False
        self.answer_bars = config.perform.answer_bars
        self.temperature = config.sampling.temperature
        self.velocity_policy = config.steer.velocity       # what CC value 0 goes back to
        actions = {c.cc_temperature: "temperature", c.cc_mode: "mode", c.cc_mute: "mute",
                   c.cc_answer_bars: "answer_bars", c.cc_panic: "panic",
                   c.cc_key_strength: "key_strength", c.cc_density: "density",
                   c.cc_register_follow: "register_follow", c.cc_velocity: "velocity",
                   c.cc_pitch_temperature: "pitch_temperature",
                   c.cc_rhythm_temperature: "rhythm_temperature"}
        self.by_cc = {cc: name for cc, name in actions.items() if cc >= 0}

    def handles(self, control: int) -> bool:
        return control in self.by_cc

    def apply(self, control: int, value: int) -> str | None:
        """Apply a CC; returns the action's name when the session must act on it (mode and mute
        changes cut a running answer, panic silences everything), else None."""
        action = self.by_cc.get(control)
        if action == "temperature":
            self.set_temperature(temperature_from_cc(value))
        elif action == "answer_bars":
            self.answer_bars = answer_bars_from_cc(value)
        elif action == "mode":
            mode = mode_from_cc(value)
            changed, self.mode = mode != self.mode, mode
            return "mode" if changed else None
        elif action == "mute":
            muted = value >= 64
            changed, self.muted = muted != self.muted, muted
            return "mute" if changed and muted else None
        elif action == "panic" and value >= 64:
            return "panic"
        elif action in STEER_CONTROLS:
            self.set_steering(**{action: STEER_CONTROLS[action](value)})
        elif action == "velocity":
            self.set_steering(velocity=f"fixed {value}" if value > 0 else self.velocity_policy)
        return None

    def set_steering(self, **values) -> None:
        """Change steering settings (perform.steer) live; a generator without steering ignores it."""
        steering = getattr(self.generator, "steering", None)
        if steering is not None:
            steering.settings = replace(steering.settings, **values)

    def set_temperature(self, temperature: float) -> None:
        self.temperature = temperature
        sampler = getattr(self.generator, "sampler", None)
        if sampler is not None:
            sampler.temperature = temperature
