""" "At the next working hour": the pure rule, across weekends, time zones and DST."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from distributions.working_hours import (
    DEFAULT_WORKING_HOURS,
    WorkingHours,
    next_working_moment,
    parse_days,
    parse_time,
    time_zone_or_utc,
)

MADRID = ZoneInfo("Europe/Madrid")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


def test_inside_working_hours_the_moment_is_kept():
    moment = local(MADRID, 2026, 11, 25, 10, 30)  # a Wednesday
    assert next_working_moment(moment, zone=MADRID) == moment
    assert next_working_moment(moment, zone=MADRID).tzinfo == UTC


def test_the_start_is_inside_and_the_end_is_outside():
    start = local(MADRID, 2026, 11, 25, 9, 0)
    assert next_working_moment(start, zone=MADRID) == start
    end = local(MADRID, 2026, 11, 25, 17, 0)
    assert next_working_moment(end, zone=MADRID) == local(MADRID, 2026, 11, 26, 9, 0)
    just_before_end = local(MADRID, 2026, 11, 25, 16, 59, 59)
    assert next_working_moment(just_before_end, zone=MADRID) == just_before_end


def test_before_the_start_waits_for_the_same_morning():
    early = local(MADRID, 2026, 11, 25, 6, 15)
    assert next_working_moment(early, zone=MADRID) == local(MADRID, 2026, 11, 25, 9, 0)


def test_friday_evening_waits_for_monday_morning():
    friday = local(MADRID, 2026, 11, 27, 18, 0)
    assert next_working_moment(friday, zone=MADRID) == local(MADRID, 2026, 11, 30, 9, 0)
    saturday = local(MADRID, 2026, 11, 28, 12, 0)
    assert next_working_moment(saturday, zone=MADRID) == local(MADRID, 2026, 11, 30, 9, 0)


def test_the_same_utc_moment_depends_on_the_recipients_time_zone():
    # Wednesday 23:00 UTC: 18:00 in New York (after hours), Thursday 08:00 in Tokyo
    # (before hours), Thursday 00:00 in Madrid (night).
    moment = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert next_working_moment(moment, zone=NEW_YORK) == local(NEW_YORK, 2026, 11, 26, 9, 0)
    assert next_working_moment(moment, zone=TOKYO) == local(TOKYO, 2026, 11, 26, 9, 0)
    assert next_working_moment(moment, zone=MADRID) == local(MADRID, 2026, 11, 26, 9, 0)
    # Thursday 09:00 in Tokyo is Thursday 00:00 UTC; in New York, 14:00 UTC.
    assert next_working_moment(moment, zone=TOKYO) == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    assert next_working_moment(moment, zone=NEW_YORK) == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def test_a_weekday_in_utc_can_be_the_weekend_locally():
    # Monday 01:00 UTC is still Sunday 20:00 in New York: wait for Monday 09:00 there.
    moment = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert next_working_moment(moment, zone=NEW_YORK) == local(NEW_YORK, 2026, 11, 30, 9, 0)


def test_daylight_saving_change_keeps_the_local_start():
    # Clocks go forward in Madrid on Sunday 2026-03-29: Monday 09:00 is then UTC+2.
    saturday = local(MADRID, 2026, 3, 28, 20, 0)
    monday = next_working_moment(saturday, zone=MADRID)
    assert monday == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert monday.astimezone(MADRID).hour == 9


def test_a_start_inside_the_skipped_hour_goes_to_just_after_it():
    # 02:30 does not exist in Madrid on 2026-03-29 (02:00 jumps to 03:00).
    night_shift = WorkingHours(start=time(2, 30), end=time(6, 0), days=frozenset({7}))
    moment = local(MADRID, 2026, 3, 29, 1, 0)
    planned = next_working_moment(moment, zone=MADRID, hours=night_shift)
    assert planned == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 local, after the gap
    assert planned > moment


def test_custom_days_and_hours():
    weekend = WorkingHours(start=time(10, 0), end=time(14, 0), days=frozenset({6, 7}))
    wednesday = local(MADRID, 2026, 11, 25, 11, 0)
    assert next_working_moment(wednesday, zone=MADRID, hours=weekend) == local(
        MADRID, 2026, 11, 28, 10, 0
    )


def test_a_naive_moment_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_working_moment(datetime(2026, 11, 25, 10, 0), zone=MADRID)


def test_defaults_are_nine_to_five_monday_to_friday():
    assert (
        WorkingHours(start=time(9, 0), end=time(17, 0), days=frozenset({1, 2, 3, 4, 5}))
        == DEFAULT_WORKING_HOURS
    )


def test_working_hours_must_make_sense():
    with pytest.raises(ValueError, match="start before"):
        WorkingHours(start=time(17, 0), end=time(9, 0))
    with pytest.raises(ValueError, match="ISO weekday"):
        WorkingHours(days=frozenset({0}))


def test_parsing_days_and_times():
    assert parse_days([1, "tue", "Wednesday", "7"]) == frozenset({1, 2, 3, 7})
    with pytest.raises(ValueError, match="not a weekday"):
        parse_days(["someday"])
    with pytest.raises(ValueError, match="not a weekday"):
        parse_days([8])
    with pytest.raises(ValueError, match="at least one"):
        parse_days([])
    assert parse_time("9:30") == time(9, 30)
    with pytest.raises(ValueError, match="HH:MM"):
        parse_time("25:00")


def test_unknown_time_zones_fall_back_in_order():
    assert time_zone_or_utc("", "Not/AZone", "Asia/Tokyo") == TOKYO
    assert time_zone_or_utc(None, "nowhere") == ZoneInfo("UTC")
