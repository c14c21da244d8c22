"""Time parsing: each `<when>` form, DST in Europe/Paris, refusals, recurrences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.when import (
    Recurrence,
    WhenError,
    format_local,
    parse_recurrence,
    parse_when,
)

PARIS = ZoneInfo("Europe/Paris")
#: Saturday 2026-03-28 13:00 in Paris (CET, UTC+1); DST starts the next night at 02:00.
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 90m", utc(2026, 3, 28, 13, 30)),
        ("in 90 min", utc(2026, 3, 28, 13, 30)),
        ("in 2h", utc(2026, 3, 28, 14, 0)),
        ("in 2 hours", utc(2026, 3, 28, 14, 0)),
        ("in 1h30m", utc(2026, 3, 28, 13, 30)),
        ("in 3d", utc(2026, 3, 31, 12, 0)),
        ("In 1 Day", utc(2026, 3, 29, 12, 0)),
        ("13:30", utc(2026, 3, 28, 12, 30)),  # still ahead today
        ("12:30", utc(2026, 3, 29, 10, 30)),  # passed: tomorrow, now in CEST
        ("today 18:00", utc(2026, 3, 28, 17, 0)),
        ("tomorrow 09:00", utc(2026, 3, 29, 7, 0)),
        ("Tomorrow 9:00", utc(2026, 3, 29, 7, 0)),
        ("saturday 14:00", utc(2026, 3, 28, 13, 0)),  # today, still ahead
        ("sat 12:00", utc(2026, 4, 4, 10, 0)),  # today but passed: next week
        ("monday 08:30", utc(2026, 3, 30, 6, 30)),
        ("fri 18:00", utc(2026, 4, 3, 16, 0)),
        ("2026-12-01 09:00", utc(2026, 12, 1, 8, 0)),
        ("2026-12-01 09:00:30", utc(2026, 12, 1, 8, 0, 30)),
        ("2026-12-01 09:00 Z", utc(2026, 12, 1, 9, 0)),
        ("2026-12-01 09:00 UTC", utc(2026, 12, 1, 9, 0)),
        ("2026-12-01 09:00 +05:30", utc(2026, 12, 1, 3, 30)),
        ("2026-12-01 09:00 -0300", utc(2026, 12, 1, 12, 0)),
        ("2026-12-01 09:00 America/New_York", utc(2026, 12, 1, 14, 0)),
        ("2026-07-01 09:00 Europe/London", utc(2026, 7, 1, 8, 0)),
        ("2026-12-01T09:00", utc(2026, 12, 1, 8, 0)),
        ("2026-12-01T09:00Z", utc(2026, 12, 1, 9, 0)),
        ("2026-12-01T09:00:00+02:00", utc(2026, 12, 1, 7, 0)),
        ("2026-12-01T09:00 Asia/Tokyo", utc(2026, 12, 1, 0, 0)),
        ('"2026-12-01  09:00"', utc(2026, 12, 1, 8, 0)),
    ],
)
def test_each_form_lands_on_the_right_instant(text: str, expected: datetime) -> None:
    result = parse_when(text, now=NOW, tz=PARIS)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-29 01:30", utc(2026, 3, 29, 0, 30)),  # CET, before the change
        ("2026-03-29 02:30", utc(2026, 3, 29, 1, 30)),  # does not exist: moves to 03:30 CEST
        ("2026-03-29 03:30", utc(2026, 3, 29, 1, 30)),  # CEST
        ("2026-03-29 09:00", utc(2026, 3, 29, 7, 0)),
        ("tomorrow 02:30", utc(2026, 3, 29, 1, 30)),
        ("in 24h", utc(2026, 3, 29, 12, 0)),  # elapsed time, not wall time
    ],
)
def test_zoneless_times_across_spring_forward_in_paris(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW, tz=PARIS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-25 01:30", utc(2026, 10, 24, 23, 30)),  # CEST
        ("2026-10-25 02:30", utc(2026, 10, 25, 0, 30)),  # happens twice: the first (CEST)
        ("2026-10-25 03:30", utc(2026, 10, 25, 2, 30)),  # CET
        ("2026-10-26 09:00", utc(2026, 10, 26, 8, 0)),
        ("sunday 02:30", utc(2026, 10, 25, 0, 30)),
        ("tomorrow 09:00", utc(2026, 10, 25, 8, 0)),
    ],
)
def test_zoneless_times_across_fall_back_in_paris(text: str, expected: datetime) -> None:
    now = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)  # Saturday before the change
    assert parse_when(text, now=now, tz=PARIS) == expected


def test_past_time_is_refused_with_what_was_understood() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    with pytest.raises(WhenError) as info:
        parse_when("2025-01-01 09:00", now=now, tz=PARIS)
    assert str(info.value) == (
        "'2025-01-01 09:00' is in the past (2025-01-01 09:00 Europe/Paris = 08:00 UTC)"
    )


def test_today_at_a_passed_hour_is_in_the_past() -> None:
    with pytest.raises(WhenError, match=r"in the past .*12:00 Europe/Paris = 11:00 UTC"):
        parse_when("today 12:00", now=NOW, tz=PARIS)


def test_now_itself_is_not_in_the_future() -> None:
    with pytest.raises(WhenError, match="not in the future"):
        parse_when("in 0m", now=NOW, tz=PARIS)
    with pytest.raises(WhenError, match="in the past"):
        parse_when("2026-03-28 13:00", now=NOW, tz=PARIS)


def test_more_than_a_year_ahead_is_refused() -> None:
    with pytest.raises(WhenError, match=r"more than a year ahead \(2027-12-01 09:00 Europe/Paris"):
        parse_when("2027-12-01 09:00", now=NOW, tz=PARIS)
    with pytest.raises(WhenError, match="more than a year ahead"):
        parse_when("in 366d", now=NOW, tz=PARIS)
    with pytest.raises(WhenError, match="more than a year ahead"):
        parse_when("in 99999999999999999999d", now=NOW, tz=PARIS)
    assert parse_when("in 365d", now=NOW, tz=PARIS) == NOW + timedelta(days=365)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("garbage", "use: in 90m"),
        ("next week", "tomorrow HH:MM"),
        ("", "no time given"),
        ("in 3 fortnights", "unknown unit"),
        ("2026-02-30 09:00", "not a valid date"),
        ("25:00", "not a valid date"),
        ("2026-12-01 09:00 Mars/Olympus", "unknown time zone"),
        ("2026-12-01 09:00 +15:00", "not a valid UTC offset"),
        ("2026-12-01", "could not understand"),
        ("someday 09:00", "could not understand"),
    ],
)
def test_garbage_is_refused_saying_what_is_accepted(text: str, fragment: str) -> None:
    with pytest.raises(WhenError) as info:
        parse_when(text, now=NOW, tz=PARIS)
    assert fragment in info.value.message
    assert "\n" not in str(info.value)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_when("in 1h", now=datetime(2026, 1, 1), tz=PARIS)


@settings(max_examples=400, deadline=None)
@given(st.text() | st.from_regex(r"(in |tomorrow |mon |2026-0\d-\d\d[ T])?[\d:+ZTa-z/ -]{0,20}"))
def test_parse_when_only_ever_raises_when_error(text: str) -> None:
    try:
        result = parse_when(text, now=NOW, tz=PARIS)
    except WhenError as exc:
        assert exc.message
    else:
        assert result.tzinfo is UTC
        assert NOW < result <= NOW + timedelta(days=365)


def test_format_local_shows_local_and_utc() -> None:
    assert format_local(utc(2026, 12, 1, 8, 0), PARIS) == "2026-12-01 09:00 Europe/Paris (08:00 UTC)"
    assert (
        format_local(utc(2026, 12, 1, 23, 30), PARIS)
        == "2026-12-02 00:30 Europe/Paris (2026-12-01 23:30 UTC)"
    )
    assert format_local(utc(2026, 12, 1, 8, 0), ZoneInfo("UTC")) == "2026-12-01 08:00 UTC"


# --- recurrences ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "days", "hour", "minute", "text"),
    [
        ("daily 09:00", (0, 1, 2, 3, 4, 5, 6), 9, 0, "daily 09:00"),
        ("mon-fri 08:00", (0, 1, 2, 3, 4), 8, 0, "mon-fri 08:00"),
        ("sat,sun 10:30", (5, 6), 10, 30, "sat,sun 10:30"),
        ("Sat, Sun 10:30", (5, 6), 10, 30, "sat,sun 10:30"),
        ("monday 08:30", (0,), 8, 30, "mon 08:30"),
        ("weekdays 08:00", (0, 1, 2, 3, 4), 8, 0, "mon-fri 08:00"),
        ("weekends 10:00", (5, 6), 10, 0, "sat,sun 10:00"),
        ("every day 7:05", (0, 1, 2, 3, 4, 5, 6), 7, 5, "daily 07:05"),
        ("18:00", (0, 1, 2, 3, 4, 5, 6), 18, 0, "daily 18:00"),
        ("fri-mon 06:00", (0, 4, 5, 6), 6, 0, "mon,fri-sun 06:00"),
        ("mon,tue,wed,fri 09:15", (0, 1, 2, 4), 9, 15, "mon-wed,fri 09:15"),
        ("mondays and thursdays 18:00", (0, 3), 18, 0, "mon,thu 18:00"),
        ("mon – fri 08:00", (0, 1, 2, 3, 4), 8, 0, "mon-fri 08:00"),
    ],
)
def test_recurrence_specs_parse_and_normalize(
    spec: str, days: tuple[int, ...], hour: int, minute: int, text: str
) -> None:
    assert parse_recurrence(spec) == Recurrence(days, hour, minute, text)


def test_normalized_recurrence_text_parses_to_itself() -> None:
    for spec in ("mon-wed,fri 09:15", "mon,fri-sun 06:00", "daily 07:05", "sat,sun 10:00"):
        assert parse_recurrence(spec).text == spec


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("daily", "no time"),
        ("", "no time"),
        ("mon-fri 25:00", "not a time of day"),
        ("someday 09:00", "not a day"),
        ("mon-xyz 09:00", "not a day"),
        ("mon-tue-wed 09:00", "not a day"),
    ],
)
def test_bad_recurrence_is_refused(spec: str, fragment: str) -> None:
    with pytest.raises(WhenError, match=fragment):
        parse_recurrence(spec)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_recurrence_only_ever_raises_when_error(spec: str) -> None:
    try:
        rec = parse_recurrence(spec)
    except WhenError as exc:
        assert exc.message
    else:
        assert rec.days_of_week
        assert parse_recurrence(rec.text) == rec


def test_recurrence_next_after_crosses_spring_forward() -> None:
    rec = parse_recurrence("mon-fri 08:00")
    friday_after = utc(2026, 3, 27, 7, 0)  # Fri 08:00 CET exactly: strictly after -> Monday
    assert rec.next_after(friday_after, PARIS) == utc(2026, 3, 30, 6, 0)  # Mon 08:00 CEST
    daily = parse_recurrence("daily 09:00")
    assert daily.next_after(utc(2026, 3, 28, 8, 0), PARIS) == utc(2026, 3, 29, 7, 0)
    gap = parse_recurrence("daily 02:30")
    assert gap.next_after(utc(2026, 3, 28, 12, 0), PARIS) == utc(2026, 3, 29, 1, 30)
    assert gap.next_after(utc(2026, 3, 29, 1, 30), PARIS) == utc(2026, 3, 30, 0, 30)


def test_recurrence_next_after_crosses_fall_back_firing_once() -> None:
    rec = parse_recurrence("daily 02:30")
    first = rec.next_after(utc(2026, 10, 24, 12, 0), PARIS)
    assert first == utc(2026, 10, 25, 0, 30)  # the first 02:30 (CEST)
    second = rec.next_after(first, PARIS)
    assert second == utc(2026, 10, 26, 1, 30)  # not the repeated 02:30 CET an hour later
    weekly = parse_recurrence("sun 09:00")
    assert weekly.next_after(utc(2026, 10, 18, 8, 0), PARIS) == utc(2026, 10, 25, 8, 0)


def test_recurrence_next_after_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_recurrence("daily 09:00").next_after(datetime(2026, 1, 1), PARIS)


@pytest.mark.parametrize(
    "spec", ["daily 09:00", "mon-fri 08:00", "sat,sun 10:30", "mon,thu 18:05", "sun 01:45"]
)
@pytest.mark.parametrize("start", [utc(2026, 3, 25, 12, 0, 30), utc(2026, 10, 21, 12, 0, 30)])
def test_cron_fields_are_accepted_by_apscheduler(spec: str, start: datetime) -> None:
    from apscheduler.triggers.cron import CronTrigger

    rec = parse_recurrence(spec)
    trigger = CronTrigger(**rec.cron_fields(), timezone=PARIS)
    after = start
    for _ in range(12):  # walk across a DST change
        expected = rec.next_after(after, PARIS)
        fire = trigger.get_next_fire_time(None, after)
        # compare in UTC: aware datetimes in a gap or fold never compare equal across zones
        assert fire.astimezone(UTC) == expected
        after = expected + timedelta(seconds=30)


def test_apscheduler_skips_the_midnight_after_spring_forward_but_next_after_does_not() -> None:
    """APScheduler 3.11.3 CronTrigger skips 00:xx on the day after a spring-forward.

    This is why recurring posts must be due by `Recurrence.next_after` (the database is the
    source of truth) and the cron job only a wake-up. If the second assertion starts failing,
    APScheduler has fixed the bug.
    """
    from apscheduler.triggers.cron import CronTrigger

    rec = parse_recurrence("daily 00:15")
    after = utc(2026, 3, 28, 23, 30)  # Sun 2026-03-29 00:30 CET, a few hours before the change
    assert rec.next_after(after, PARIS) == utc(2026, 3, 29, 22, 15)  # Mon 00:15 CEST
    fire = CronTrigger(**rec.cron_fields(), timezone=PARIS).get_next_fire_time(None, after)
    assert fire.astimezone(UTC) == utc(2026, 3, 30, 22, 15)  # Tue: Monday was skipped


def test_apscheduler_fires_twice_in_the_fall_back_hour_but_next_after_once() -> None:
    """APScheduler 3.11.3 CronTrigger also fires the repeated 02:30 (fold=1) on fall-back day;
    `next_after` fires once, at the first 02:30 (the documented rule)."""
    from apscheduler.triggers.cron import CronTrigger

    rec = parse_recurrence("daily 02:30")
    first = utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert rec.next_after(first, PARIS) == utc(2026, 10, 26, 1, 30)
    trigger = CronTrigger(**rec.cron_fields(), timezone=PARIS)
    fire = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert fire.astimezone(UTC) == utc(2026, 10, 25, 1, 30)  # 02:30 CET, an hour later


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.integers(0, 6), min_size=1, unique=True),
    hour=st.integers(3, 23),  # 00:xx and 02:xx hit the APScheduler bugs pinned above
    minute=st.integers(0, 59),
    after_minutes=st.integers(0, 366 * 24 * 60),
)
def test_next_after_agrees_with_apscheduler(
    days: list[int], hour: int, minute: int, after_minutes: int
) -> None:
    from apscheduler.triggers.cron import CronTrigger

    names = ",".join(("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d] for d in sorted(days))
    rec = parse_recurrence(f"{names} {hour:02d}:{minute:02d}")
    after = utc(2026, 1, 1, 0, 0, 30) + timedelta(minutes=after_minutes)
    trigger = CronTrigger(**rec.cron_fields(), timezone=PARIS)
    assert rec.next_after(after, PARIS) == trigger.get_next_fire_time(None, after).astimezone(UTC)
