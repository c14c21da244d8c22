"""The local Bot API server's flood control, on a fake clock: the rules in its module docstring."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.telegram_api import FloodControl, FloodRefused, Limits

ALICE, BOB = 1, 2


def refused(flood: FloodControl, chat_id: int | None, now: float, *, paid: bool = False) -> FloodRefused:
    with pytest.raises(FloodRefused) as caught:
        flood.admit(chat_id, paid=paid, now=now)
    return caught.value


def test_a_chat_takes_a_burst_of_three_then_one_per_second() -> None:
    flood = FloodControl(Limits(global_per_s=100))
    for i in range(3):
        flood.admit(ALICE, paid=False, now=i * 0.01)
    no = refused(flood, ALICE, 0.05)
    assert (no.scope, no.retry_after) == ("chat", 1)
    for i in range(3):  # another chat is untouched
        flood.admit(BOB, paid=False, now=0.06 + i * 0.01)
    flood.admit(ALICE, paid=False, now=1.06)  # the 1 s penalty is over and one token refilled
    assert refused(flood, ALICE, 1.07).scope == "chat"


def test_the_global_limit_is_a_sliding_second_and_its_penalty_stops_every_chat() -> None:
    flood = FloodControl(Limits(global_per_s=5))
    for chat in range(5):
        flood.admit(chat, paid=False, now=0.1 * chat)
    no = refused(flood, 99, 0.45)
    assert (no.scope, no.retry_after) == ("global", 1)
    assert flood.remaining(now=0.45) == pytest.approx(1.0)
    # a client that waits retry_after is served again
    flood.admit(100, paid=False, now=1.45)


def test_sending_under_a_penalty_doubles_what_remains_up_to_the_cap() -> None:
    flood = FloodControl(Limits(global_per_s=1, max_penalty_s=20))
    flood.admit(1, paid=False, now=0.0)
    seen = [refused(flood, 2 + i, 0.0).retry_after for i in range(7)]
    assert seen == [1, 2, 4, 8, 16, 20, 20]
    assert flood.remaining(now=0.0) == pytest.approx(20)


def test_a_fixed_step_growth_rule() -> None:
    flood = FloodControl(Limits(global_per_s=1, penalty_factor=1, penalty_step_s=3))
    flood.admit(1, paid=False, now=0.0)
    assert [refused(flood, 1, 0.5).retry_after for _ in range(3)] == [1, 4, 7]


def test_growth_can_be_turned_off() -> None:
    flood = FloodControl(Limits(global_per_s=1, penalty_factor=1, penalty_step_s=0))
    flood.admit(1, paid=False, now=0.0)
    assert {refused(flood, 2, 0.1 * i).retry_after for i in range(9)} == {1}


def test_a_chat_penalty_grows_only_for_that_chat() -> None:
    flood = FloodControl(Limits(global_per_s=100, per_chat_burst=1))
    flood.admit(ALICE, paid=False, now=0.0)
    assert [refused(flood, ALICE, 0.1).retry_after for _ in range(3)] == [1, 2, 4]
    flood.admit(BOB, paid=False, now=0.1)
    assert flood.remaining(now=0.1) == 0
    assert flood.remaining(ALICE, now=0.1) == pytest.approx(4.0)


def test_lowered_limits_apply_to_the_next_request() -> None:
    flood = FloodControl(Limits(global_per_s=30))
    for chat in range(10):
        flood.admit(chat, paid=False, now=0.01 * chat)
    flood.configure(Limits(global_per_s=5, per_chat_burst=1), now=0.2)
    assert refused(flood, 50, 0.2).scope == "global"
    # the window must drain to 4 sends before a fifth fits: the 6th oldest leaves at 1.05
    assert flood.remaining(now=0.2) == pytest.approx(1.0)
    flood.admit(51, paid=False, now=1.2)
    flood.admit(52, paid=False, now=1.21)
    # the lowered burst also applies to a chat's bucket at once
    assert refused(flood, 52, 1.22).scope == "chat"


def test_paid_sends_have_their_own_ceiling_and_still_obey_the_chat_limit() -> None:
    flood = FloodControl(Limits(global_per_s=2, paid_per_s=10))
    flood.admit(0, paid=False, now=0.0)
    flood.admit(1, paid=False, now=0.0)
    assert refused(flood, 2, 0.0).scope == "global"
    for chat in range(10, 20):
        flood.admit(chat, paid=True, now=0.01)
    assert refused(flood, 30, 0.02, paid=True).scope == "paid"
    assert refused(flood, 40, 0.02).scope == "global"
    flood = FloodControl(Limits(paid_per_s=10))
    for _ in range(3):
        flood.admit(ALICE, paid=True, now=0.0)
    assert refused(flood, ALICE, 0.0, paid=True).scope == "chat"


def test_requests_without_a_chat_count_only_globally() -> None:
    flood = FloodControl(Limits(global_per_s=2))
    flood.admit(None, paid=False, now=0.0)
    flood.admit(None, paid=False, now=0.0)
    assert refused(flood, None, 0.0).scope == "global"


@pytest.mark.parametrize(
    "changes",
    [{"global_per_s": 0}, {"per_chat_burst": 0}, {"penalty_factor": 0.5}, {"max_penalty_s": 0}],
)
def test_nonsense_limits_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limits(**changes)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 0.2), st.integers(0, 4), st.booleans()), min_size=1, max_size=300),
    st.integers(1, 8),
    st.integers(1, 4),
)
def test_accepted_sends_never_exceed_the_limits(
    requests: list[tuple[float, int, bool]], global_per_s: int, burst: int
) -> None:
    limits = Limits(global_per_s=global_per_s, per_chat_per_s=2, per_chat_burst=burst, paid_per_s=3)
    flood = FloodControl(limits)
    now, accepted = 0.0, []
    for gap, chat, paid in requests:
        now += gap
        try:
            flood.admit(chat, paid=paid, now=now)
        except FloodRefused as refusal:
            assert refusal.retry_after >= 1
            continue
        accepted.append((now, chat, paid))
    for at, _, paid in accepted:
        in_window = [a for a in accepted if at - 1.0 < a[0] <= at and a[2] == paid]
        assert len(in_window) <= (3 if paid else global_per_s)
    for chat in range(5):
        times = [at for at, c, _ in accepted if c == chat]
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                # a bucket never gives more than its burst plus what refilled meanwhile
                assert j - i + 1 <= burst + (times[j] - start) * 2 + 1e-9
