"""Interpreting `<when>` texts and recurrence specs as UTC instants, DST-correct.

Local wall times (no zone given) are in the operator's zone `tz`, converted with the zoneinfo
`fold=0` rule:

- a time that does not exist (skipped by a spring-forward, e.g. 02:30 on 2026-03-29 in
  Europe/Paris) is read with the offset in force *before* the change, which moves it forward
  by the gap: 02:30 becomes 03:30 CEST (01:30 UTC);
- a time that happens twice (fall-back, e.g. 02:30 on 2026-10-25 in Europe/Paris) is the
  first occurrence: 02:30 CEST (00:30 UTC).

Every refusal is a `WhenError` whose message says what was understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.i18n import _

MAX_AHEAD = timedelta(days=365)

ACCEPTED_FORMS = (
    "in 90m, in 2 h, in 3d, HH:MM, today HH:MM, tomorrow HH:MM, friday HH:MM, "
    "YYYY-MM-DD HH:MM[:SS] [zone], YYYY-MM-DDTHH:MM[:SS][zone] "
    "(zone: Z, UTC, +01:00 or a name like Europe/Paris)"
)

#: every duration unit `in <n><unit>` accepts -> minutes (the grammar's too)
UNIT_MINUTES: dict[str, int] = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 1),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 60),
    **dict.fromkeys(("d", "day", "days"), 24 * 60),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 24 * 60),
}
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: every weekday word `<when>` and `/every` accept -> 0=Monday .. 6=Sunday (the grammar's too)
WEEKDAY_INDEX: dict[str, int] = {
    **{name: i for i, name in enumerate(_DAY_NAMES)},
    **{
        name: i
        for i, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
    "tues": 1,
    "thur": 3,
    "thurs": 3,
}

_IN_RE = re.compile(r"in\s+((?:[0-9]+\s*[a-z]+\s*)+)", re.IGNORECASE)
_IN_PART_RE = re.compile(r"([0-9]+)\s*([a-z]+)", re.IGNORECASE)
_HHMM = r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})"
_CLOCK_RE = re.compile(_HHMM)
_DAY_CLOCK_RE = re.compile(r"(?P<day>[a-z]+)\s+" + _HHMM, re.IGNORECASE)
_ABSOLUTE_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:T|\s+)" + _HHMM + r"(?::(?P<second>[0-9]{2}))?"
    r"(?:\s*(?P<zone>\S+))?",
    re.IGNORECASE,
)
_OFFSET_RE = re.compile(r"(?P<sign>[+-])(?P<h>[0-9]{2}):?(?P<m>[0-9]{2})?")
_RECURRENCE_TIME_RE = re.compile(r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})")


class WhenError(ValueError):
    """That time could not be accepted; the message says what was understood and why."""

    def __init__(self, message: str) -> None:
        #: one line for the person who typed the time
        self.message = message
        super().__init__(message)


def _clip(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _zone_name(tz: tzinfo) -> str:
    return tz.key if isinstance(tz, ZoneInfo) else str(tz)


def _describe(dt: datetime, tz: tzinfo, joiner: str) -> str:
    """`2026-12-01 09:00 Europe/Paris` + joiner + `08:00 UTC` (UTC date shown if different).

    A moment when `tz` is at UTC+0 is shown once, as UTC: `2026-12-01 08:00 UTC`.
    """
    local = dt.astimezone(tz)
    utc = dt.astimezone(UTC)
    if local.utcoffset() == timedelta(0):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    utc_text = f"{utc:%H:%M}" if utc.date() == local.date() else f"{utc:%Y-%m-%d %H:%M}"
    return f"{local:%Y-%m-%d %H:%M} {_zone_name(tz)}" + joiner.format(f"{utc_text} UTC")


def format_local(dt: datetime, tz: ZoneInfo) -> str:
    """`dt` for people: `2026-12-01 09:00 Europe/Paris (08:00 UTC)`."""
    return _describe(dt, tz, " ({})")


def format_timestamp(ts: float, tz: ZoneInfo) -> str:
    """An epoch timestamp for people, like `format_local`."""
    return format_local(datetime.fromtimestamp(ts, UTC), tz)


def _understood(dt: datetime, tz: tzinfo) -> str:
    return _describe(dt, tz, " = {}")


def _localize(day: date, clock: time, tz: tzinfo) -> datetime:
    """The UTC instant of a wall time in `tz` (fold=0: gaps move forward, overlaps first)."""
    return datetime.combine(day, clock, tzinfo=tz).replace(fold=0).astimezone(UTC)


def _clock(hour: str, minute: str, second: str | None = None) -> time:
    h, m, s = int(hour), int(minute), int(second or 0)
    if h > 23 or m > 59 or s > 59:
        raise ValueError("clock out of range")
    return time(h, m, s)


def _zone(text: str) -> tzinfo:
    """A zone token: Z, UTC, GMT, +01:00, +0100, +01, or an IANA name."""
    if text.upper() in {"Z", "UTC", "GMT"}:
        return UTC
    m = _OFFSET_RE.fullmatch(text)
    if m is not None:
        minutes = int(m.group("h")) * 60 + int(m.group("m") or 0)
        if minutes > 14 * 60 or int(m.group("m") or 0) > 59:
            raise WhenError(_("{text!r} is not a valid UTC offset").format(text=text))
        sign = -1 if m.group("sign") == "-" else 1
        return timezone(sign * timedelta(minutes=minutes))
    name = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if "/" in name and ".." not in name and not name.startswith("/"):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise WhenError(_(
        "unknown time zone {clip!r} (use Z, +01:00 or e.g. Europe/Paris)"
    ).format(clip=_clip(text, 40)))


def _unparseable(text: str) -> WhenError:
    return WhenError(_(
        "could not understand the time {clip!r}; use: {ACCEPTED_FORMS}"
    ).format(clip=_clip(text), ACCEPTED_FORMS=ACCEPTED_FORMS))


def _interpret(text: str, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The instant `text` names, or None when it matches no form. May raise WhenError."""
    today = now.astimezone(tz).date()

    m = _IN_RE.fullmatch(text)
    if m is not None:
        total = 0
        for number, unit in _IN_PART_RE.findall(m.group(1)):
            factor = UNIT_MINUTES.get(unit.lower())
            if factor is None:
                raise WhenError(_(
                    "unknown unit {unit!r} in {clip!r} (use m, h or d, like in 90m)"
                ).format(unit=unit, clip=_clip(text)))
            if len(number) > 9:
                raise WhenError(_("{clip!r} is more than a year ahead").format(clip=_clip(text)))
            total += int(number) * factor
        if total > MAX_AHEAD.days * 24 * 60:
            raise WhenError(_("{clip!r} is more than a year ahead").format(clip=_clip(text)))
        if total == 0:
            raise WhenError(_("{clip!r} is now, not in the future").format(clip=_clip(text)))
        return now + timedelta(minutes=total)

    m = _CLOCK_RE.fullmatch(text)
    if m is not None:
        clock = _clock(m.group("hour"), m.group("minute"))
        candidate = _localize(today, clock, tz)
        if candidate <= now:
            candidate = _localize(today + timedelta(days=1), clock, tz)
        return candidate

    m = _DAY_CLOCK_RE.fullmatch(text)
    if m is not None:
        word = m.group("day").lower()
        clock = _clock(m.group("hour"), m.group("minute"))
        if word == "today":
            return _localize(today, clock, tz)
        if word == "tomorrow":
            return _localize(today + timedelta(days=1), clock, tz)
        weekday = WEEKDAY_INDEX.get(word)
        if weekday is None:
            return None
        for offset in range(8):
            day = today + timedelta(days=offset)
            if day.weekday() == weekday:
                candidate = _localize(day, clock, tz)
                if candidate > now:
                    return candidate
        return None  # pragma: no cover - a weekday always recurs within 8 days

    m = _ABSOLUTE_RE.fullmatch(text)
    if m is not None:
        day = date(int(m.group("year")), int(m.group("month")), int(m.group("day")))
        clock = _clock(m.group("hour"), m.group("minute"), m.group("second"))
        zone_text = m.group("zone")
        if zone_text is None:
            return _localize(day, clock, tz)
        zone = _zone(zone_text)
        return datetime.combine(day, clock, tzinfo=zone).replace(fold=0).astimezone(UTC)
    return None


def parse_when(text: str, *, now: datetime, tz: ZoneInfo) -> datetime:
    """The aware UTC instant `text` names, strictly after `now` and at most a year ahead.

    `now` must be aware. Times without a zone are wall times in `tz` (see the module
    docstring for DST). `HH:MM` is its next occurrence (today if still ahead, else tomorrow);
    `<weekday> HH:MM` is the next such moment strictly after now (today if still ahead).
    Raises `WhenError` for anything unparseable, past, or more than 365 days ahead.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC)
    cleaned = " ".join(text.split())
    if len(cleaned) >= 2 and cleaned[0] in '"“”„' and cleaned[-1] in '"“”':
        cleaned = " ".join(cleaned[1:-1].split())
    if not cleaned:
        raise WhenError(_("no time given; use: {ACCEPTED_FORMS}").format(ACCEPTED_FORMS=ACCEPTED_FORMS))
    try:
        when = _interpret(cleaned, now, tz)
    except WhenError:
        raise
    except (ValueError, OverflowError):
        raise WhenError(_("{clip!r} is not a valid date and time").format(clip=_clip(cleaned))) from None
    if when is None:
        raise _unparseable(cleaned)
    if when <= now:
        raise WhenError(_(
            "{clip!r} is in the past ({understood})"
        ).format(clip=_clip(cleaned), understood=_understood(when, tz)))
    if when - now > MAX_AHEAD:
        raise WhenError(_(
            "{clip!r} is more than a year ahead ({understood})"
        ).format(clip=_clip(cleaned), understood=_understood(when, tz)))
    return when


@dataclass(frozen=True)
class Recurrence:
    """A weekly pattern: these weekdays (0=Monday) at hour:minute, operator's local time."""

    days_of_week: tuple[int, ...]  #: sorted, unique, 0=Mon .. 6=Sun
    hour: int
    minute: int
    text: str  #: normalized spec, e.g. "mon-fri 08:00"

    def cron_fields(self) -> dict[str, str]:
        """Keyword arguments for APScheduler's `CronTrigger` (with the operator's timezone)."""
        if len(self.days_of_week) == 7:
            day_of_week = "*"
        else:
            day_of_week = ",".join(_DAY_NAMES[d] for d in self.days_of_week)
        return {"day_of_week": day_of_week, "hour": str(self.hour), "minute": str(self.minute)}

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first occurrence strictly after `after` (aware), as aware UTC; DST-correct.

        A wall time in a spring-forward gap moves forward by the gap; a wall time that happens
        twice fires once, at its first occurrence (the module's fold=0 rule).
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("after must be an aware datetime")
        after = after.astimezone(UTC)
        start = after.astimezone(tz).date() - timedelta(days=1)
        clock = time(self.hour, self.minute)
        for offset in range(10):
            day = start + timedelta(days=offset)
            if day.weekday() in self.days_of_week:
                candidate = _localize(day, clock, tz)
                if candidate > after:
                    return candidate
        raise ValueError("recurrence has no days")  # pragma: no cover - days is never empty


def _day_range(first: int, last: int) -> list[int]:
    """Days from first to last inclusive, wrapping past Sunday (fri-mon)."""
    return [(first + k) % 7 for k in range((last - first) % 7 + 1)]


def _days_text(days: tuple[int, ...]) -> str:
    """Compact day list: runs of 3+ as ranges (`mon-fri`), others comma-separated."""
    if len(days) == 7:
        return "daily"
    parts: list[str] = []
    run: list[int] = []
    for day in [*days, 99]:
        if run and day == run[-1] + 1:
            run.append(day)
            continue
        if len(run) >= 3:
            parts.append(f"{_DAY_NAMES[run[0]]}-{_DAY_NAMES[run[-1]]}")
        else:
            parts.extend(_DAY_NAMES[d] for d in run)
        run = [day]
    return ",".join(parts)


def _day_word(word: str) -> int | None:
    if word in WEEKDAY_INDEX:
        return WEEKDAY_INDEX[word]
    if word.endswith("s") and word[:-1] in WEEKDAY_INDEX:  # "mondays"
        return WEEKDAY_INDEX[word[:-1]]
    return None


_FILLER = frozenset({"and", "every", "on"})
_GROUP_WORDS: dict[str, tuple[int, ...]] = {
    "daily": tuple(range(7)),
    "everyday": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "weekday": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "weekend": (5, 6),
}


def parse_recurrence(spec: str) -> Recurrence:
    """Parse a weekly recurrence: `<days> HH:MM` or `HH:MM` (daily).

    Days: `daily`, `every day`, `weekdays`, `weekends`, day names (`mon`, `monday`,
    `mondays`), ranges (`mon-fri`, wrapping `fri-mon`) and lists (`sat,sun`, `sat, sun`).
    Raises `WhenError` saying what was not understood.
    """
    cleaned = " ".join(spec.replace("–", "-").replace("—", "-").lower().split())
    if len(cleaned) >= 2 and cleaned[0] in '"“”„' and cleaned[-1] in '"“”':
        cleaned = cleaned[1:-1].strip()
    example = 'use e.g. "daily 09:00", "mon-fri 08:00", "sat,sun 10:30", "weekdays 08:00"'
    words = cleaned.split(" ")
    m = _RECURRENCE_TIME_RE.fullmatch(words[-1]) if cleaned else None
    if m is None:
        raise WhenError(_(
            "no time (HH:MM) at the end of {clip!r}; {example}"
        ).format(clip=_clip(spec), example=example))
    hour, minute = int(m.group("hour")), int(m.group("minute"))
    if hour > 23 or minute > 59:
        raise WhenError(_(
            "{words!r} is not a time of day; {example}"
        ).format(words=words[-1], example=example))
    day_text = " ".join(words[:-1])
    day_text = re.sub(r"\bevery\s+day\b", "daily", day_text)
    day_text = re.sub(r"\s*-\s*", "-", day_text)
    days: set[int] = set()
    items = [item for item in re.split(r"[,\s]+", day_text) if item and item not in _FILLER]
    if not items:
        days = set(range(7))
    for item in items:
        if item in _GROUP_WORDS:
            days.update(_GROUP_WORDS[item])
            continue
        ends = item.split("-")
        if len(ends) == 2:
            first, last = _day_word(ends[0]), _day_word(ends[1])
            if first is not None and last is not None:
                days.update(_day_range(first, last))
                continue
        elif len(ends) == 1:
            single = _day_word(item)
            if single is not None:
                days.add(single)
                continue
        raise WhenError(_(
            "{clip!r} is not a day or day range; {example}"
        ).format(clip=_clip(item, 30), example=example))
    ordered = tuple(sorted(days))
    return Recurrence(ordered, hour, minute, f"{_days_text(ordered)} {hour:02d}:{minute:02d}")


__all__ = [
    "ACCEPTED_FORMS",
    "MAX_AHEAD",
    "UNIT_MINUTES",
    "WEEKDAY_INDEX",
    "Recurrence",
    "WhenError",
    "format_local",
    "format_timestamp",
    "parse_recurrence",
    "parse_when",
]
