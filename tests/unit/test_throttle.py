"""The per-sender throttle: a burst is handled, one "slow down" covers the rest, a pause resets."""

from __future__ import annotations

from bridge.throttle import SenderThrottle, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_gets_its_burst_then_one_slow_down_then_silence() -> None:
    throttle = SenderThrottle(burst=5, per_s=0.5, clock=Clock())
    verdicts = [throttle.check("alice") for _ in range(40)]
    assert verdicts[:5] == [Verdict.HANDLE] * 5
    assert verdicts[5] == Verdict.SLOW_DOWN
    assert set(verdicts[6:]) == {Verdict.IGNORE}


def test_one_sender_does_not_use_up_anothers_share() -> None:
    throttle = SenderThrottle(burst=2, per_s=0.1, clock=Clock())
    for _ in range(10):
        throttle.check("alice")
    assert throttle.check("bob") == Verdict.HANDLE


def test_after_a_pause_commands_are_handled_again_and_a_new_flood_is_warned_again() -> None:
    clock = Clock()
    throttle = SenderThrottle(burst=2, per_s=1.0, clock=clock)
    assert [throttle.check("a") for _ in range(4)] == [
        Verdict.HANDLE,
        Verdict.HANDLE,
        Verdict.SLOW_DOWN,
        Verdict.IGNORE,
    ]
    clock.now += 1.0
    assert throttle.check("a") == Verdict.HANDLE
    assert throttle.check("a") == Verdict.SLOW_DOWN


def test_a_steady_typist_within_the_rate_is_never_throttled() -> None:
    clock = Clock()
    throttle = SenderThrottle(burst=8, per_s=0.5, clock=clock)
    for _ in range(100):
        assert throttle.check("a") == Verdict.HANDLE
        clock.now += 2.0
