"""Campaign options of the distribute task: send at the next working hour, reminder,
thank-you — their config validation (HTTP 400 per field) and the send-time plan.

Kept beside xmflows.contact_mapping rather than inside the task module so the task
type stays about its run, and so other task types could offer the same options.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rest_framework import serializers

from contacts.models import Contact, Directory
from core.strict_serializer import StrictSerializer
from distributions.send_checks import REMINDER_WHEN
from distributions.working_hours import (
    DEFAULT_WORKING_HOURS,
    WorkingHours,
    next_working_moment,
    parse_days,
    time_zone_or_utc,
)

__all__ = [
    "FOLLOW_UP_KEYS",
    "ReminderSerializer",
    "ThankYouSerializer",
    "follow_up_config",
    "follow_up_text_errors",
    "planned_send_time",
    "working_hours_of",
]

SUBJECT_MAX = 998
BODY_MAX = 200_000
SMS_TEXT_MAX = 1600
MAX_REMINDER_DAYS = 365
FOLLOW_UP_KEYS = ("reminder", "thank_you")
EMAIL_CHANNELS = ("email",)


def _template(max_length: int) -> serializers.CharField:
    # Kept exactly as typed (trim_whitespace=False), like every piped-text template.
    return serializers.CharField(
        max_length=max_length,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
    )


class FollowUpMessageSerializer(StrictSerializer):
    """The texts of a follow-up: subject and body (email) or text (SMS), piped text
    rendered from the invitation's frozen snapshot.

    The texts the task's channel needs are checked together with the other fields
    (a missing subject is reported beside a missing `after_days`, not after it)."""

    follow_up_name = ""  # "reminder" or "thank_you": how the messages name it

    subject = _template(SUBJECT_MAX)
    body = _template(BODY_MAX)
    text = _template(SMS_TEXT_MAX)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        task = getattr(self.parent, "initial_data", None)
        channel = task.get("channel") if isinstance(task, dict) else None
        missing = follow_up_text_errors(self.follow_up_name, data, channel)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if missing and isinstance(error.detail, dict):
                raise serializers.ValidationError({**missing, **error.detail}) from None
            raise
        if missing:
            raise serializers.ValidationError(missing)
        return value


class ReminderSerializer(FollowUpMessageSerializer):
    follow_up_name = "reminder"

    after_days = serializers.IntegerField(min_value=1, max_value=MAX_REMINDER_DAYS)
    when = serializers.ChoiceField(choices=list(REMINDER_WHEN), default=REMINDER_WHEN[0])


class ThankYouSerializer(FollowUpMessageSerializer):
    follow_up_name = "thank_you"


def follow_up_text_errors(key: str, config: Any, channel: str | None) -> dict[str, list[str]]:
    """The texts a configured follow-up (`key`: reminder or thank_you) lacks on the
    task's channel: subject and body for email, text for SMS. {} when none, or when
    the follow-up is not configured."""
    if not isinstance(config, dict) or not config:
        return {}
    channel = channel or "email"
    needed = ("subject", "body") if channel in EMAIL_CHANNELS else ("text",)
    # A text that is not a string is reported by its own field ("Not a valid string").
    blank = [
        name
        for name, value in ((name, config.get(name)) for name in needed)
        if value is None or (isinstance(value, str) and not value.strip())
    ]
    by = _CHANNEL_WORDS.get(channel, channel)
    return {name: [f"a {key.replace('_', '-')} by {by} needs a {name}"] for name in blank}


# How a message names a channel ("a reminder by two-way SMS needs a text").
_CHANNEL_WORDS = {"email": "email", "sms": "SMS", "sms_survey": "two-way SMS"}


def follow_up_config(config: dict[str, Any]) -> dict[str, Any]:
    """What the distribution keeps of the task's follow-ups (only those configured)."""
    return {key: dict(config[key]) for key in FOLLOW_UP_KEYS if config.get(key)}


def working_hours_of(directory: Directory | None) -> WorkingHours:
    """The directory's working hours; the defaults (09:00 to 17:00, Monday to Friday) when
    it has none or they cannot be read."""
    if directory is None:
        return DEFAULT_WORKING_HOURS
    try:
        return WorkingHours(
            start=directory.working_hours_start,
            end=directory.working_hours_end,
            days=parse_days(directory.working_days or []),
        )
    except (TypeError, ValueError):
        return DEFAULT_WORKING_HOURS


def planned_send_time(
    *, now: datetime, delay_minutes: int, next_working_hour: bool, contact: Contact
) -> datetime | None:
    """When the line should be sent; None for "now".

    The delay comes first; "at the next working hour" then moves the moment to the
    start of the next working period when it falls outside working hours, in the
    contact's time zone, else its directory's (contacts.Directory.default_time_zone).
    """
    moment = now + timedelta(minutes=delay_minutes) if delay_minutes else now
    if next_working_hour:
        directory = contact.directory
        zone = time_zone_or_utc(contact.time_zone, directory.default_time_zone)
        moment = next_working_moment(moment, zone=zone, hours=working_hours_of(directory))
    return moment if moment > now else None


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def planned_send_reason(
    *,
    now: datetime,
    send_at: datetime | None,
    delay_minutes: int,
    next_working_hour: bool,
    contact: Contact,
) -> str:
    """Why planned_send_time put the send at `send_at`, in words ("" for "now"): the
    reports say it beside the line's "Scheduled for …"."""
    if send_at is None:
        return ""
    reasons = []
    if delay_minutes:
        reasons.append(
            f"the task's send delay of {delay_minutes} minute{'s' * (delay_minutes != 1)}"
        )
    if next_working_hour and send_at > now + timedelta(minutes=delay_minutes):
        directory = contact.directory
        zone = time_zone_or_utc(contact.time_zone, directory.default_time_zone)
        hours = working_hours_of(directory)
        days = ", ".join(_DAY_NAMES[day - 1] for day in sorted(hours.days))
        reasons.append(
            f"the next working hour ({days} {hours.start:%H:%M}-{hours.end:%H:%M}, {zone})"
        )
    return "waiting for " + " and ".join(reasons) if reasons else ""
