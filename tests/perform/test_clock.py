import pytest

from perform.clock import TickClock, period_s_from_bpm
from perform.errors import ConfigError

from fakes import FakeClock


def test_period_comes_from_bpm_and_steps_per_beat():
    assert period_s_from_bpm(120, 4) == pytest.approx(0.125)
    assert period_s_from_bpm(90, 3) == pytest.approx(60 / 270)
    with pytest.raises(ConfigError, match="bpm"):
        period_s_from_bpm(0, 4)


def test_deadlines_are_absolute_and_do_not_drift():
    fake = FakeClock(t0_s=5.0)
    clock = TickClock(120, 4, now=fake.now, sleep=fake.sleep)
    clock.start()
    for tick in range(1, 100_001):        # slept towards each deadline, with a little jitter
        clock.sleep_until(clock.deadline_s(tick))
        fake.t += 0.0003
        clock.mark(tick)
    assert clock.deadline_s(100_000) == pytest.approx(5.0 + 100_000 * 0.125, abs=1e-9)
    assert fake.t == pytest.approx(5.0 + 100_000 * 0.125 + 0.0003, abs=1e-6)
    assert clock.late_ticks == 0


def test_late_ticks_are_counted():
    fake = FakeClock(t0_s=0.0)
    clock = TickClock(120, 4, now=fake.now, sleep=fake.sleep, late_after_s=0.002)
    clock.start()
    fake.t = clock.deadline_s(1) + 0.001
    clock.mark(1)
    fake.t = clock.deadline_s(2) + 0.010
    clock.mark(2)
    assert clock.late_ticks == 1 and clock.max_lateness_s == pytest.approx(0.010)


def test_tempo_change_moves_the_reference_without_drift():
    fake = FakeClock(t0_s=0.0)
    clock = TickClock(120, 4, now=fake.now, sleep=fake.sleep)
    clock.start()
    clock.set_bpm(60, at_tick=8)                       # 8 ticks at 0.125 s, then 0.25 s
    assert clock.deadline_s(8) == pytest.approx(1.0)
    assert clock.deadline_s(12) == pytest.approx(2.0)
    assert clock.steps_at(2.0) == pytest.approx(12)
    assert clock.tempo_changes == [(0.0, 120.0), (8.0, 60.0)]


def test_sleep_until_does_not_sleep_past_the_deadline():
    slept = []
    fake = FakeClock(t0_s=0.0)
    clock = TickClock(120, 4, now=fake.now, sleep=lambda s: slept.append(s))
    clock.start()
    clock.sleep_until(0.3)
    fake.t = 0.5
    clock.sleep_until(0.3)                              # already past: no sleep at all
    assert slept == [pytest.approx(0.3)]


def test_the_last_stretch_before_a_deadline_is_spun_not_slept():
    import time
    slept = []
    clock = TickClock(120, 4, now=time.perf_counter, sleep=lambda s: slept.append(s), spin_s=0.002)
    clock.start()
    deadline_s = time.perf_counter() + 0.010
    clock.sleep_until(deadline_s)                       # sleeps all but the spin
    assert slept == [pytest.approx(0.008, abs=0.002)]
    clock.sleep_until(time.perf_counter() + 0.001)      # within the spin: no sleep, returns on time
    assert len(slept) == 1


def test_pulse_grid_follows_the_least_delayed_pulses():
    from perform.clock import PulseGrid
    grid = PulseGrid(window=48, min_pulses=12)
    period_s = 0.02
    for i in range(11):
        grid.add(i, 1.0 + i * period_s)
    assert grid.line() is None                            # not enough pulses yet
    for i in range(11, 60):
        late_s = 0.015 if i % 3 == 0 else (0.001 if i % 2 else 0.0)   # many pulses late
        grid.add(i, 1.0 + i * period_s + late_s)
    assert grid.pulse_s() == pytest.approx(period_s, abs=1e-6)
    assert grid.time_of_pulse(100) == pytest.approx(1.0 + 100 * period_s, abs=1e-5)
    assert grid.index_at(1.0 + 70.5 * period_s) == pytest.approx(70.5, abs=1e-3)
    grid.add(0, 5.0)                                      # the master started again
    assert len(grid.pulses) == 1 and grid.line() is None
