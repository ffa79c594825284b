"""Directories, mailing lists, contacts with embedded data, and their transactions."""

import math
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from contacts.normalize import MATCH_KEYS, normalize_country
from core.fields import OrderedJSONField

DEFAULT_MATCH_RULES = ["email", "external_data_reference"]


def default_match_rules() -> list[str]:
    # A callable, so directories never share (and mutate) one list object.
    return list(DEFAULT_MATCH_RULES)


def validate_match_rules(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("match rules must be a non-empty list such as ['email']")
    unknown = [rule for rule in value if rule not in MATCH_KEYS]
    if unknown:
        raise ValidationError(
            f"unknown match rule {unknown[0]!r}; a rule is one of: {', '.join(MATCH_KEYS)}"
        )
    if len(set(value)) != len(value):
        raise ValidationError("each match rule may appear only once")


def validate_country(value: str) -> None:
    try:
        normalize_country(value)
    except ValueError as error:
        raise ValidationError(str(error)) from error


def validate_time_zone(value: str) -> None:
    if not value:
        return
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationError(
            f"unknown time zone {value!r}: use an IANA name such as Europe/Madrid"
        ) from error


DEFAULT_WORKING_DAYS = [1, 2, 3, 4, 5]


def default_working_days() -> list[int]:
    return list(DEFAULT_WORKING_DAYS)


def validate_working_days(value) -> None:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(day, int) and not isinstance(day, bool) for day in value)
        or not all(1 <= day <= 7 for day in value)
    ):
        raise ValidationError(
            "working days are a non-empty list of ISO weekday numbers, 1 (Monday) to 7 (Sunday)"
        )


EMBEDDED_NAME_MAX = 200
EMBEDDED_VALUE_MAX = 10_000


def validate_embedded_data(value) -> None:
    """An object of field names to values (text, numbers, true/false or null): what the
    admin may type; workflows and the API go through contacts.services, which also
    turns every value into text."""
    if not isinstance(value, dict):
        raise ValidationError(
            "embedded data must be a JSON object of field names and values, "
            'e.g. {"Region": "Norte"}'
        )
    for name, item in value.items():
        if not name.strip() or len(name) > EMBEDDED_NAME_MAX:
            raise ValidationError(
                f"embedded data field names must be 1 to {EMBEDDED_NAME_MAX} characters"
            )
        if isinstance(item, (dict, list)):
            raise ValidationError(
                f"embedded data field {name!r} holds a list or an object; values are text"
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise ValidationError(f"embedded data field {name!r} is not a finite number")
        if "\x00" in name or "\x00" in str(item):
            raise ValidationError(f"embedded data field {name!r} contains a NUL character")
        if len(str(item)) > EMBEDDED_VALUE_MAX:
            raise ValidationError(
                f"embedded data field {name!r} is longer than {EMBEDDED_VALUE_MAX} characters"
            )


def quiet_hours_problem(start, end) -> dict[str, str] | None:
    """Quiet hours need both ends (one alone would be saved and never apply)."""
    if (start is None) == (end is None):
        return None
    missing = "quiet_hours_end" if end is None else "quiet_hours_start"
    return {missing: "set both ends of the quiet hours, or neither"}


class Directory(models.Model):
    """A set of contacts in which a person exists once (deduplicated)."""

    name = models.CharField(max_length=200, unique=True)
    default_country = models.CharField(
        max_length=2,
        default="US",
        validators=[validate_country],
        help_text="Phone numbers without a leading + are read as national numbers of this country.",
    )
    match_rules = models.JSONField(
        default=default_match_rules,
        validators=[validate_match_rules],
        help_text=(
            'Ordered, case-insensitive keys an incoming contact is matched on: "email", '
            '"external_data_reference".'
        ),
    )
    default_time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Used for quiet hours when a contact's own time zone is unknown.",
    )
    # SMS quiet hours: a text due inside them waits for their end (never dropped), in
    # the contact's time zone, else default_time_zone. May cross midnight (22:00 to
    # 08:00); both unset (or equal) means none.
    quiet_hours_start = models.TimeField(
        null=True, blank=True, help_text="No email or SMS sent from this local time… (e.g. 21:00)."
    )
    quiet_hours_end = models.TimeField(
        null=True, blank=True, help_text="…until this local time (e.g. 08:00)."
    )
    # "Send at the next working hour" (distribute task) waits for these, in the
    # contact's time zone, else default_time_zone. End is exclusive: 17:00 is after hours.
    working_hours_start = models.TimeField(
        default=time(9, 0), help_text="Start of working hours (local time)."
    )
    working_hours_end = models.TimeField(
        default=time(17, 0), help_text="End of working hours (local time, exclusive)."
    )
    working_days = models.JSONField(
        default=default_working_days,
        validators=[validate_working_days],
        help_text="ISO weekday numbers: 1 = Monday … 7 = Sunday.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "directories"
        constraints = [
            models.CheckConstraint(
                condition=Q(working_hours_start__lt=F("working_hours_end")),
                name="directory_working_hours_order",
                violation_error_message="working hours must start before they end",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        problem = quiet_hours_problem(self.quiet_hours_start, self.quiet_hours_end)
        if problem:
            raise ValidationError(problem)


class MailingList(models.Model):
    """A distribution list of a directory's contacts; a contact may be on several."""

    directory = models.ForeignKey(Directory, on_delete=models.PROTECT, related_name="mailing_lists")
    name = models.CharField(max_length=200)
    contacts = models.ManyToManyField("Contact", related_name="mailing_lists", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "name"],
                name="mailing_list_name_unique_in_directory",
                violation_error_message=(
                    "a mailing list with this name already exists in this directory"
                ),
            )
        ]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    directory = models.ForeignKey(Directory, on_delete=models.PROTECT, related_name="contacts")
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +14155550100")
    external_data_reference = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=20, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone])
    # Opt-out state per channel; *_at and *_source record the last change and what made
    # it (an opt-out link, an SMS keyword, an admin), so "why was nothing sent?" has an
    # answer.
    email_opted_out = models.BooleanField(default=False)
    email_opted_out_at = models.DateTimeField("Email opt-out last changed", null=True, blank=True)
    email_opted_out_source = models.CharField(
        "Email opt-out last changed by", max_length=200, blank=True
    )
    sms_opted_out = models.BooleanField(default=False)
    sms_opted_out_at = models.DateTimeField("SMS opt-out last changed", null=True, blank=True)
    sms_opted_out_source = models.CharField(
        "SMS opt-out last changed by", max_length=200, blank=True
    )
    # Field names are kept exactly as typed (case, spaces, punctuation): surveys match
    # them by exact name.
    embedded_data = OrderedJSONField(default=dict, blank=True, validators=[validate_embedded_data])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Deduplication is enforced by the database, so two runs creating the same
            # new person at the same moment end with one contact (the loser's insert
            # fails and contact_upsert re-reads). Blank keys are not identities.
            models.UniqueConstraint(
                F("directory"),
                Lower("email"),
                name="contact_email_unique_in_directory",
                condition=~Q(email=""),
                violation_error_message=(
                    "a contact with this email already exists in this directory"
                ),
            ),
            models.UniqueConstraint(
                F("directory"),
                Lower("external_data_reference"),
                name="contact_extref_unique_in_directory",
                condition=~Q(external_data_reference=""),
                violation_error_message=(
                    "a contact with this external data reference already exists in this directory"
                ),
            ),
        ]
        indexes = [
            # Searching runs, outbox and contacts by email across directories.
            models.Index(Lower("email"), name="contact_email_lower"),
            # Inbound SMS (STOP, two-way surveys) finds contacts by number.
            models.Index(fields=["phone"], name="contact_phone"),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return (
            f"{name} <{self.email}>" if self.email else name or self.phone or f"Contact {self.pk}"
        )


class Transaction(models.Model):
    """A dated set of key/values on a contact's touchpoint timeline."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="transactions")
    created_at = models.DateTimeField(auto_now_add=True)
    data = OrderedJSONField(default=dict, blank=True)
    # The workflow run that appended it. A plain number, not a foreign key: contacts
    # imports no sibling app (CONVENTIONS.md), and history cleanup of runs must not
    # delete a contact's timeline.
    run_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["contact", "-created_at"], name="transaction_timeline")]

    def __str__(self) -> str:
        return f"Transaction {self.pk} of contact {self.contact_id}"


class RetainedOptOut(models.Model):
    """An opt-out that outlives its contact: deleting an opted-out contact (a privacy
    request, a clean-up) must not let the next Salesforce message create the person
    again and send to them (SPEC: opted-out contacts are never sent to). A contact
    created later with this address or number starts opted out; clearing that
    contact's opt-out (START, an admin) forgets the record."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    channel = models.CharField(max_length=5, choices=Channel.choices)
    # An email address in lower case, or an E.164 number.
    value = models.CharField(max_length=254)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField("What opted them out", max_length=200, blank=True)
    former_contact_id = models.BigIntegerField(null=True, blank=True)
    kept_at = models.DateTimeField("Kept when the contact was deleted", auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "retained opt-out"
        constraints = [
            models.UniqueConstraint(fields=["channel", "value"], name="retained_opt_out_unique")
        ]

    def __str__(self) -> str:
        return f"{self.value} ({self.get_channel_display()})"
