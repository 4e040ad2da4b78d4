"""The alternating-block measurement of benchmarks/advi_speed.py, on a fake clock."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from advi_speed import alternating_block_rates  # noqa: E402


class FakeMachine:
    """A clock that steppers advance; its speed changes from round to round (drift)."""

    def __init__(self, slowdowns):
        self.now = 0.0
        self.slowdowns = list(slowdowns)
        self.round = 0
        self.calls = []

    def stepper(self, name, seconds):
        def step():
            self.calls.append(name)
            self.now += seconds * self.slowdowns[self.round]

        return step

    def end_round(self):
        self.round += 1
        return float(self.round)


def test_rates_per_round_follow_the_drift_and_the_ratio_does_not():
    machine = FakeMachine([1.0, 2.0, 0.5])
    rates = alternating_block_rates(
        machine.stepper("a", 0.02),
        machine.stepper("b", 0.03),
        rounds=3,
        block=4,
        between=machine.end_round,
        clock=lambda: machine.now,
    )
    np.testing.assert_allclose(rates["first"], [50.0, 25.0, 100.0])
    np.testing.assert_allclose(rates["second"], [100 / 3, 50 / 3, 200 / 3])
    np.testing.assert_allclose(np.divide(rates["first"], rates["second"]), 1.5)
    assert rates["between"] == [1.0, 2.0, 3.0]
    # blocks alternate: four of the first, four of the second, per round
    assert machine.calls == (["a"] * 4 + ["b"] * 4) * 3


def test_without_between_nothing_is_collected():
    machine = FakeMachine([1.0])
    rates = alternating_block_rates(
        machine.stepper("a", 0.5),
        machine.stepper("b", 0.25),
        rounds=1,
        block=2,
        clock=lambda: machine.now,
    )
    assert rates["between"] == []
    np.testing.assert_allclose([rates["first"][0], rates["second"][0]], [2.0, 4.0])


def test_untimed_steps_open_each_block():
    machine = FakeMachine([1.0, 1.0])
    slow_first = {"left": 1}

    def first():
        machine.calls.append("a")
        machine.now += 1.0 if slow_first["left"] else 0.1
        slow_first["left"] = 0

    rates = alternating_block_rates(
        first,
        machine.stepper("b", 0.2),
        rounds=2,
        block=2,
        clock=lambda: machine.now,
        skip=1,
    )
    np.testing.assert_allclose(rates["first"], [10.0, 10.0])  # the slow call was not timed
    np.testing.assert_allclose(rates["second"], [5.0, 5.0])
    assert machine.calls == (["a"] * 3 + ["b"] * 3) * 2
