"""Working hours and "the next working hour" for delayed sends: pure, no Django imports.

A send configured with `send_at_next_working_hour` goes out at its planned moment
when that falls inside the recipient's working hours, else at the start of the next
working period, in the recipient's time zone (the contact's, else its directory's).
Working hours are a daily window [start, end) on some weekdays; a moment exactly at
`end` is outside (the day is over), a moment exactly at `start` is inside.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_WORKING_HOURS",
    "WEEKDAY_NAMES",
    "WorkingHours",
    "next_working_moment",
    "parse_days",
    "parse_time",
    "time_zone_or_utc",
]

# ISO weekday numbers (Monday = 1 … Sunday = 7), as datetime.isoweekday() gives them.
WEEKDAY_NAMES: dict[str, int] = {
    "mon": 1,
    "tue": 2,
    "wed": 3,
    "thu": 4,
    "fri": 5,
    "sat": 6,
    "sun": 7,
}


@dataclass(frozen=True)
class WorkingHours:
    """A daily window [start, end) on the given ISO weekdays (1 = Monday)."""

    start: time = time(9, 0)
    end: time = time(17, 0)
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("working hours must start before they end (same day)")
        if not self.days or not self.days <= frozenset(range(1, 8)):
            raise ValueError("working days are ISO weekday numbers 1 (Monday) to 7 (Sunday)")

    def contains(self, local: datetime) -> bool:
        """Whether a local (wall-clock) moment is inside working hours."""
        return local.isoweekday() in self.days and self.start <= local.time() < self.end


DEFAULT_WORKING_HOURS = WorkingHours()


def time_zone_or_utc(*names: str | None) -> ZoneInfo:
    """The first of `names` that is a known IANA time zone, else UTC."""
    for name in names:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def _local_to_utc(day_start: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in `zone` as UTC. A time that does not exist that day (the
    hour skipped when clocks go forward) is taken as the moment just after the gap,
    which is when the clock on the wall next shows a time at or after it."""
    aware = day_start.replace(tzinfo=zone)
    moment = aware.astimezone(UTC)
    round_trip = moment.astimezone(zone).replace(tzinfo=None)
    if round_trip != day_start:
        # In the gap: fold=0 maps it before the gap; the same wall time with fold=1
        # maps it after. Take the later, so a send is never earlier than planned.
        moment = max(moment, day_start.replace(tzinfo=zone, fold=1).astimezone(UTC))
    return moment


def next_working_moment(
    moment: datetime, *, zone: ZoneInfo, hours: WorkingHours = DEFAULT_WORKING_HOURS
) -> datetime:
    """`moment` itself when it is inside working hours in `zone`, else the start of the
    next working period; always an aware UTC datetime, never earlier than `moment`.

    `moment` must be aware (a naive datetime is ambiguous across time zones).
    """
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if hours.contains(wall):
        return moment.astimezone(UTC)
    # At most 8 days ahead there is a working day (days is never empty).
    for offset in range(8):
        day = (wall + timedelta(days=offset)).date()
        if day.isoweekday() not in hours.days:
            continue
        start = _local_to_utc(datetime.combine(day, hours.start), zone)
        if start > moment:
            return start
    raise AssertionError("unreachable: a working day exists within a week")  # pragma: no cover


def parse_time(value: str | time) -> time:
    """'09:00' or '9:30' (24-hour clock) as a time; raises ValueError with the reason."""
    if isinstance(value, time):
        return value
    text = str(value or "").strip()
    parts = text.split(":")
    if len(parts) != 2 or not all(part.isdecimal() for part in parts):
        raise ValueError(f"not a time of day: {text!r}; use HH:MM such as 09:00")
    hour, minute = int(parts[0]), int(parts[1])
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"not a time of day: {text!r}; use HH:MM such as 09:00")
    return time(hour, minute)


def parse_days(values: Iterable[int | str]) -> frozenset[int]:
    """Weekdays given as ISO numbers (1 = Monday) or names ("mon", "Tuesday")."""
    days: set[int] = set()
    for value in values:
        if isinstance(value, bool):
            raise ValueError(f"not a weekday: {value!r}")
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip().lower()
            number = int(text) if text.isdecimal() else WEEKDAY_NAMES.get(text[:3], 0)
            if not text.isdecimal() and text not in (text[:3], _full_name(text[:3])):
                number = 0
        if not 1 <= number <= 7:
            raise ValueError(f"not a weekday: {value!r}; use 1 (Monday) to 7 (Sunday) or mon…sun")
        days.add(number)
    if not days:
        raise ValueError("give at least one working day")
    return frozenset(days)


def _full_name(short: str) -> str:
    return {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }.get(short, "")
