"""Quiet hours for SMS: when a send must wait, and until when; no Django imports.

A window is a local start and end time in one IANA time zone. It may cross midnight
(22:00-08:00: from 22:00 one evening to 08:00 the next morning). A send planned inside
the window is moved to the window's end, never dropped (SPEC F4). Local times are
resolved with zoneinfo, so daylight-saving changes and the recipient's own time zone
(a contact in Tokyo, a directory in New York) decide, not the server's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["QuietHours", "inside", "next_allowed", "resolve_time_zone"]


@dataclass(frozen=True)
class QuietHours:
    """[start, end) in `time_zone`; start == end means no quiet hours at all."""

    start: time
    end: time
    time_zone: str = "UTC"

    def describe(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.time_zone}"


def resolve_time_zone(*candidates: str | None) -> str:
    """The first of `candidates` that is a known IANA zone (the contact's, then the
    directory's), else UTC: an unknown name must not stop a send."""
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


def _zone(window: QuietHours) -> ZoneInfo:
    return ZoneInfo(resolve_time_zone(window.time_zone))


def _local_time_inside(local: time, window: QuietHours) -> bool:
    start, end = window.start, window.end
    if start == end:
        return False
    if start < end:
        return start <= local < end
    # Across midnight: the evening part or the morning part.
    return local >= start or local < end


def inside(moment: datetime, window: QuietHours | None) -> bool:
    """Whether `moment` (aware) falls inside the window, in the window's time zone."""
    if window is None:
        return False
    local = moment.astimezone(_zone(window))
    return _local_time_inside(local.time().replace(tzinfo=None), window)


def _at_local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # A wall-clock time that does not exist (skipped by a spring-forward change)
    # resolves, with fold=0, to the instant just after the gap: still "the end of the
    # window" as the recipient experiences it.
    return datetime.combine(day, clock, tzinfo=zone)


def next_allowed(moment: datetime, window: QuietHours | None) -> datetime:
    """`moment` itself when it is outside the window, else the window's end (UTC).

    `moment` must be aware. The result is always aware and in UTC when deferred.
    """
    if moment.tzinfo is None:
        raise ValueError("next_allowed needs an aware datetime")
    if not inside(moment, window):
        return moment
    assert window is not None  # inside() is False for no window
    zone = _zone(window)
    local = moment.astimezone(zone)
    day = local.date()
    if window.start > window.end and local.time().replace(tzinfo=None) >= window.start:
        # The evening part of a window across midnight ends the next morning.
        day = day + timedelta(days=1)
    end = _at_local(day, window.end, zone).astimezone(UTC)
    # Guards odd transitions (a window end inside a repeated autumn hour): the send
    # moves forward, never back.
    while end <= moment:
        day = day + timedelta(days=1)
        end = _at_local(day, window.end, zone).astimezone(UTC)
    return end
