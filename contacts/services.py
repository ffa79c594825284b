"""Writes on the contact directory: deduplicating upsert, manual edits, transactions, opt-outs.

Empty values: in `contact_upsert` (what workflows call) a mapped field that renders
empty never overwrites what the contact already has, and an empty embedded data value
never erases an existing one — a Salesforce record that lacks the phone today must
not wipe the phone another record gave us yesterday. Manual edits
(`contact_update`, the API and admin) do clear a field set to "": that is the
admin's explicit intent.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.exceptions import ContactError, DuplicateContactError
from contacts.models import (
    EMBEDDED_NAME_MAX,
    EMBEDDED_VALUE_MAX,
    Contact,
    Directory,
    MailingList,
    RetainedOptOut,
    Transaction,
    validate_time_zone,
)
from contacts.normalize import MATCH_KEYS, normalize_email, normalize_phone
from contacts.selectors import contact_find, contact_match, contacts_with_key
from contacts.signals import apply_retained_opt_outs, forget_retained_opt_outs

__all__ = [
    "CONTACT_VALUE_FIELDS",
    "FIELD_LABELS",
    "UpsertResult",
    "clean_contact_values",
    "clean_embedded_data",
    "contact_create",
    "contact_find",
    "contact_set_opt_out",
    "contact_update",
    "contact_upsert",
    "transaction_append",
]

logger = logging.getLogger(__name__)

CONTACT_VALUE_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "external_data_reference",
    "language",
    "time_zone",
)
FIELD_LABELS: dict[str, str] = {
    "first_name": "first name",
    "last_name": "last name",
    "email": "email",
    "phone": "phone",
    "external_data_reference": "external data reference",
    "language": "language",
    "time_zone": "time zone",
}
OPT_OUT_CHANNELS: tuple[str, ...] = ("email", "sms")
# The contact field each channel's opt-out is kept under (contacts.signals).
_OPT_OUT_KEYS = {"email": "email", "sms": "phone"}
# One retry is enough to absorb a concurrent creator; a third covers a creator and a
# concurrent key change. More would only hide a bug.
_UPSERT_ATTEMPTS = 3
_DUPLICATE_MESSAGES = {
    "email": "a contact with this email already exists in this directory",
    "external_data_reference": (
        "a contact with this external data reference already exists in this directory"
    ),
}


@dataclass
class UpsertResult:
    contact: Contact
    created: bool
    changed_fields: list[str]
    # Keys that could not be applied (they belong to another contact), said plainly.
    warnings: list[str] = field(default_factory=list)


def clean_contact_values(*, directory: Directory, values: Mapping[str, Any]) -> dict[str, str]:
    """Strip every value, normalise email and phone (E.164 in the directory's default
    country), check lengths and the time zone. Only keys of CONTACT_VALUE_FIELDS are
    kept. Raises one ContactError naming every field that is wrong."""
    clean: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key in CONTACT_VALUE_FIELDS:
        if key not in values:
            continue
        try:
            clean[key] = _clean_value(directory, key, values[key])
        except ValueError as error:
            errors[key] = str(error)
    if errors:
        raise ContactError.from_errors(errors)
    return clean


def _clean_value(directory: Directory, key: str, raw: Any) -> str:
    text = "" if raw is None else str(raw).strip()
    if "\x00" in text:
        # PostgreSQL cannot store it in a text column; no person's name holds one.
        raise ValueError(f"{FIELD_LABELS[key]} contains a NUL character (\\x00)")
    if key == "email":
        text = normalize_email(text)
    elif key == "phone":
        text = normalize_phone(text, directory.default_country)
    limit = Contact._meta.get_field(key).max_length
    if len(text) > limit:
        raise ValueError(
            f"{FIELD_LABELS[key]} is too long ({len(text)} characters; at most {limit})"
        )
    if key == "time_zone" and text:
        try:
            validate_time_zone(text)
        except Exception as error:
            raise ValueError(f"unknown time zone {text!r}") from error
    return text


def _clean_all(
    directory: Directory, values: Mapping[str, Any], embedded_data: Mapping[str, Any] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """clean_contact_values and clean_embedded_data, with the errors of both at once."""
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    data: dict[str, str] = {}
    try:
        clean = clean_contact_values(directory=directory, values=values)
    except ContactError as error:
        errors.update(error.errors)
    try:
        data = clean_embedded_data(embedded_data)
    except ContactError as error:
        errors.update(error.errors)
    if errors:
        raise ContactError.from_errors(errors)
    return clean, data


def clean_embedded_data(data: Mapping[str, Any] | None) -> dict[str, str]:
    """Names exactly as given (case, spaces, punctuation kept); values as strings."""
    clean: dict[str, str] = {}
    for name, value in (data or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise ContactError("embedded data field names must not be empty", field="embedded_data")
        if len(name) > EMBEDDED_NAME_MAX:
            raise ContactError(
                f"embedded data field name {name[:40]!r}… is longer than {EMBEDDED_NAME_MAX} "
                "characters",
                field="embedded_data",
            )
        text = "" if value is None else str(value)
        if "\x00" in name or "\x00" in text:
            raise ContactError(
                f"embedded data field {name!r} contains a NUL character (\\x00) in its "
                + ("name" if "\x00" in name else "value"),
                field="embedded_data",
            )
        if len(text) > EMBEDDED_VALUE_MAX:
            raise ContactError(
                f"embedded data field {name!r} is longer than {EMBEDDED_VALUE_MAX} characters",
                field="embedded_data",
            )
        clean[name] = text
    return clean


def _require_identity(values: Mapping[str, str]) -> None:
    if not any(values.get(key) for key in (*MATCH_KEYS, "phone")):
        raise ContactError(
            "cannot identify the contact: email, phone and external data reference are all empty"
        )


def contact_upsert(
    *,
    directory: Directory,
    values: Mapping[str, Any],
    embedded_data: Mapping[str, Any],
    mailing_list: MailingList | None = None,
) -> UpsertResult:
    """Create the contact `values` identify in `directory`, or update the one that
    matches by the directory's ordered rules (case-insensitive). Embedded data is merged;
    empty values never erase existing ones. Optionally adds it to `mailing_list`.

    Safe under concurrency: the unique constraints decide. When a concurrent run
    created the same person between our look-up and our insert, the insert fails, the
    attempt's savepoint rolls back, and the next attempt finds and updates that contact
    (PostgreSQL, READ COMMITTED). On SQLite the IMMEDIATE transaction serialises
    writers, so the look-up already sees it.
    """
    clean, data = _clean_all(directory, values, embedded_data)
    _require_identity(clean)
    if mailing_list is not None:
        _check_mailing_lists(directory.pk, [mailing_list], field="mailing_list")
    for attempt in range(1, _UPSERT_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                result = _upsert_once(directory=directory, values=clean, embedded_data=data)
                if mailing_list is not None:
                    mailing_list.contacts.add(result.contact)
            return result
        except IntegrityError:
            if attempt == _UPSERT_ATTEMPTS:
                raise
            logger.info(
                "contact upsert in directory %s raced a concurrent write; retrying", directory.pk
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _upsert_once(
    *, directory: Directory, values: dict[str, str], embedded_data: dict[str, str]
) -> UpsertResult:
    # Locked, so two runs updating the same contact merge their embedded data one after
    # the other instead of the second overwriting the first.
    contact = contact_match(directory=directory, values=values, lock=True)
    if contact is None:
        contact = Contact(
            directory=directory,
            embedded_data=dict(embedded_data),
            **{key: value for key, value in values.items() if value},
        )
        contact.save(force_insert=True)
        changed = [key for key in CONTACT_VALUE_FIELDS if values.get(key)]
        changed += [f"embedded_data.{name}" for name in embedded_data]
        return UpsertResult(contact=contact, created=True, changed_fields=changed)

    changed: list[str] = []
    warnings: list[str] = []
    for key in CONTACT_VALUE_FIELDS:
        new = values.get(key) or ""
        if not new:
            continue
        old = getattr(contact, key)
        if key in MATCH_KEYS:
            if old.lower() == new.lower():
                # A case-only difference is the same identity: keep the stored spelling.
                continue
            owner = (
                contacts_with_key(directory, key, new)
                .exclude(pk=contact.pk)
                .values_list("pk", flat=True)
                .first()
            )
            if owner is not None:
                warnings.append(
                    f"{FIELD_LABELS[key]} {new!r} already belongs to contact {owner}; "
                    f"contact {contact.pk} keeps {old!r}"
                )
                continue
        elif old == new:
            continue
        setattr(contact, key, new)
        changed.append(key)
    merged = dict(contact.embedded_data or {})
    for name, value in embedded_data.items():
        if name in merged and (merged[name] == value or value == ""):
            continue
        merged[name] = value
        changed.append(f"embedded_data.{name}")
    if changed:
        contact.embedded_data = merged
        update_fields = [key for key in changed if key in CONTACT_VALUE_FIELDS]
        if len(update_fields) < len(changed):
            update_fields.append("embedded_data")
        # A new address or number whose owner opted out (and whose contact was deleted
        # since) stays opted out here too: the person asked not to be contacted.
        channels = [channel for channel, key in _OPT_OUT_KEYS.items() if key in changed]
        for channel in apply_retained_opt_outs(contact, channels=channels):
            flag = f"{channel}_opted_out"
            update_fields += [flag, f"{flag}_at", f"{flag}_source"]
            key = _OPT_OUT_KEYS[channel]
            warnings.append(
                f"{FIELD_LABELS[key]} {getattr(contact, key)!r} was opted out "
                f"({getattr(contact, f'{flag}_source')}): contact {contact.pk} is now opted "
                f"out of {'SMS' if channel == 'sms' else channel}"
            )
        contact.save(update_fields=[*update_fields, "updated_at"])
    return UpsertResult(contact=contact, created=False, changed_fields=changed, warnings=warnings)


def transaction_append(
    *,
    contact: Contact,
    data: Mapping[str, Any],
    run_id: int | None,
    mailing_list: MailingList | None = None,
) -> tuple[Transaction, bool]:
    """Append a dated set of key/values to the contact's timeline; with `mailing_list`
    (of the contact's directory), make the contact a member of it too. Returns the
    transaction and whether the contact was added to the list."""
    record = Transaction.objects.create(
        contact=contact, data=clean_embedded_data(data), run_id=run_id
    )
    added = False
    if mailing_list is not None:
        _check_mailing_lists(contact.directory_id, [mailing_list], field="mailing_list")
        if not mailing_list.contacts.filter(pk=contact.pk).exists():
            mailing_list.contacts.add(contact)
            added = True
    return record, added


def contact_set_opt_out(*, contact: Contact, channel: str, opted_out: bool, source: str) -> bool:
    """Set or clear the contact's opt-out for `channel` ("email" | "sms"); returns whether
    it changed. `source` says what did it ("opt-out link", "SMS STOP", "admin alice")."""
    if channel not in OPT_OUT_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of: {', '.join(OPT_OUT_CHANNELS)}")
    flag = f"{channel}_opted_out"
    if getattr(contact, flag) == opted_out:
        return False
    now = timezone.now()
    changes = {
        flag: opted_out,
        f"{flag}_at": now,
        f"{flag}_source": source[:200],
        "updated_at": now,
    }
    # An UPDATE of these columns alone, so a concurrent embedded data merge is not undone.
    Contact.objects.filter(pk=contact.pk).update(**changes)
    for name, value in changes.items():
        setattr(contact, name, value)
    if not opted_out:
        # START, an admin: an opt-out kept from a deleted contact no longer holds.
        forget_retained_opt_outs(contact, channels=[channel])
    return True


def opt_out_retain(*, channel: str, value: str, source: str) -> None:
    """An opt-out whose contact no longer exists (deleted after the invitation went
    out): kept as a RetainedOptOut, so a contact created again with this address or
    number starts opted out, as if the contact had still been there."""
    if channel not in OPT_OUT_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of: {', '.join(OPT_OUT_CHANNELS)}")
    value = (value or "").strip()
    if channel == "email":
        value = value.lower()
    if not value:
        return
    RetainedOptOut.objects.update_or_create(
        channel=channel,
        value=value,
        defaults={"opted_out_at": timezone.now(), "source": source[:200]},
    )


def _check_keys_free(directory: Directory, values: Mapping[str, str], exclude_pk=None) -> None:
    for key in MATCH_KEYS:
        value = values.get(key) or ""
        if not value:
            continue
        queryset = contacts_with_key(directory, key, value)
        if exclude_pk is not None:
            queryset = queryset.exclude(pk=exclude_pk)
        if queryset.exists():
            raise DuplicateContactError(_DUPLICATE_MESSAGES[key], field=key)


def _check_mailing_lists(
    directory_id: int, mailing_lists: Iterable[MailingList], *, field: str = "mailing_lists"
) -> list:
    """The lists, each of the directory; ContactError (on `field`) for one that is not."""
    lists = list(mailing_lists)
    for mailing_list in lists:
        if mailing_list.directory_id != directory_id:
            raise ContactError(
                f"mailing list {mailing_list.pk} belongs to another directory", field=field
            )
    return lists


def _channels_moved(contact: Contact, values: Mapping[str, str]) -> list[str]:
    """The opt-out channels whose address or number `values` changes on `contact`."""
    return [
        channel
        for channel, key in _OPT_OUT_KEYS.items()
        if values.get(key) and values[key].lower() != (getattr(contact, key) or "").lower()
    ]


def _save_checked(contact: Contact, values: Mapping[str, str], **save_kwargs: Any) -> None:
    try:
        with transaction.atomic():
            contact.save(**save_kwargs)
    except IntegrityError:
        # A concurrent writer took the key after our check: the same answer as the check.
        _check_keys_free(contact.directory, values, exclude_pk=contact.pk)
        raise


@transaction.atomic
def contact_create(
    *,
    directory: Directory,
    values: Mapping[str, Any],
    embedded_data: Mapping[str, Any] | None = None,
    mailing_lists: Iterable[MailingList] = (),
    opted_out: Mapping[str, bool] | None = None,
    source: str = "",
) -> Contact:
    """Create a contact by hand (API, admin); refuses duplicates of email / external
    data reference within the directory with DuplicateContactError."""
    clean, data = _clean_all(directory, values, embedded_data)
    _require_identity(clean)
    lists = _check_mailing_lists(directory.pk, mailing_lists)
    _check_keys_free(directory, clean)
    contact = Contact(directory=directory, embedded_data=data, **clean)
    _save_checked(contact, clean, force_insert=True)
    if lists:
        contact.mailing_lists.set(lists)
    for channel, value in (opted_out or {}).items():
        if not value:
            # A new contact is opted in unless an opt-out was kept for this address or
            # number (contacts.signals): a false here, often just the default a client
            # sends, must not undo the person's own choice. Clearing it is an update.
            continue
        contact_set_opt_out(contact=contact, channel=channel, opted_out=True, source=source)
    return contact


@transaction.atomic
def contact_update(
    *,
    contact: Contact,
    values: Mapping[str, Any],
    embedded_data: Mapping[str, Any] | None = None,
    mailing_lists: Iterable[MailingList] | None = None,
    opted_out: Mapping[str, bool] | None = None,
    source: str = "",
) -> Contact:
    """Edit a contact by hand: given fields are set (an empty one is cleared), given
    embedded data replaces the old, given mailing lists replace the memberships."""
    directory = contact.directory
    clean, data = _clean_all(directory, values, embedded_data)
    # Checked before touching the instance, so a refused edit leaves it as it was.
    _require_identity({**{key: getattr(contact, key) for key in CONTACT_VALUE_FIELDS}, **clean})
    _check_keys_free(directory, clean, exclude_pk=contact.pk)
    moved = _channels_moved(contact, clean)
    for key, value in clean.items():
        setattr(contact, key, value)
    if embedded_data is not None:
        contact.embedded_data = data
    # An address or number whose owner opted out (their contact deleted since) keeps
    # its opt-out here too, as it does when a workflow gives it to a contact.
    apply_retained_opt_outs(contact, channels=moved)
    _save_checked(contact, clean)
    if mailing_lists is not None:
        contact.mailing_lists.set(_check_mailing_lists(directory.pk, mailing_lists))
    for channel, value in (opted_out or {}).items():
        contact_set_opt_out(contact=contact, channel=channel, opted_out=bool(value), source=source)
    return contact
