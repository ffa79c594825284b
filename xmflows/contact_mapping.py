"""Contact field mapping shared by the task types that save a contact (add_to_directory,
distribute_survey): config validation, rendering with piped text, saving."""

import functools
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from rest_framework import serializers

from contacts.exceptions import ContactError
from contacts.models import Contact, Directory, MailingList
from contacts.services import (
    EMBEDDED_NAME_MAX,
    EMBEDDED_VALUE_MAX,
    FIELD_LABELS,
    clean_contact_values,
    contact_upsert,
)
from core.job_memo import memoized, recall, remember
from core.piped_text import render
from core.strict_serializer import StrictSerializer
from xmflows.task_types.base import TaskContext, TaskError

__all__ = [
    "MAPPED_CONTACT_FIELDS",
    "ContactMappingSerializer",
    "ContactSaveResult",
    "EmbeddedDataMappingField",
    "load_mailing_list",
    "render_contact_values",
    "save_contact_from_mapping",
    "validate_mailing_list_id",
]

# The contact fields a task maps from the event, in the order the editor shows them.
MAPPED_CONTACT_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "external_data_reference",
    "language",
)
TEMPLATE_MAX = 2000
# Fields left out (with a warning) when not required and their value cannot be read
# (or is too long: a picklist label "English (United States)" as the language).
OPTIONAL_IF_UNREADABLE = frozenset({"email", "phone", "language"})
EMBEDDED_FIELDS_MAX = 100


def _template_field() -> serializers.CharField:
    # trim_whitespace=False: a template is kept exactly as typed; values are trimmed
    # after rendering instead.
    return serializers.CharField(
        allow_blank=True,
        required=False,
        default="",
        max_length=TEMPLATE_MAX,
        trim_whitespace=False,
    )


class ContactMappingSerializer(StrictSerializer):
    """The "contact" object of a task definition: one piped-text template per field."""

    first_name = _template_field()
    last_name = _template_field()
    email = _template_field()
    phone = _template_field()
    external_data_reference = _template_field()
    language = _template_field()


class EmbeddedDataMappingField(serializers.DictField):
    """{"Embedded data field name": "piped-text template"}; names kept exactly as typed
    (case-, space- and punctuation-sensitive)."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault(
            "child",
            serializers.CharField(allow_blank=True, max_length=TEMPLATE_MAX, trim_whitespace=False),
        )
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", dict)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        if len(data) > EMBEDDED_FIELDS_MAX:
            raise serializers.ValidationError(
                f"at most {EMBEDDED_FIELDS_MAX} embedded data fields per task"
            )
        errors: dict[str, list[str]] = {}
        for name in data:
            if not name.strip():
                errors[name] = ["embedded data field names must not be empty"]
            elif len(name) > EMBEDDED_NAME_MAX:
                errors[name] = [
                    f"embedded data field names are at most {EMBEDDED_NAME_MAX} characters"
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def validate_mailing_list_id(value: int) -> int:
    """For config serializers: the mailing list must exist (HTTP 400 otherwise)."""
    if not MailingList.objects.filter(pk=value).exists():
        raise serializers.ValidationError(f"mailing list {value} does not exist")
    return value


def load_mailing_list(mailing_list_id: Any) -> MailingList:
    mailing_list = (
        memoized(
            ("mailing_list", int(mailing_list_id)),
            MailingList.objects.select_related("directory").filter(pk=mailing_list_id).first,
        )
        if isinstance(mailing_list_id, int) or str(mailing_list_id).isdecimal()
        else None
    )
    if mailing_list is None:
        # Permanent: the list was deleted after the workflow was saved.
        raise TaskError(f"mailing list {mailing_list_id} does not exist")
    return mailing_list


@dataclass
class ContactSaveResult:
    contact: Contact
    created: bool
    changed_fields: list[str]
    warnings: list[str]
    # The rendered (and normalised) contact values, by contact field name.
    rendered: dict[str, str] = field(default_factory=dict)
    # The rendered embedded data, by field name.
    embedded_data: dict[str, str] = field(default_factory=dict)


def render_contact_values(
    *,
    ctx: TaskContext,
    contact_map: dict,
    embedded_data_map: dict,
    require_email: bool = True,
    require_phone: bool = False,
    directory: Directory,
    require_names: bool = True,
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Render the mapping against the run's event: (contact values, embedded data,
    warnings). No side effects, so dry runs use it too.

    Values are trimmed; email and phone are normalised (phone to E.164 in the
    directory's default country). Raises TaskError naming field and template when a
    required field renders empty ("email is required but rendered empty from
    '${event://ContactEmail}'"), or with the normalisation message when a value is
    invalid. First and last name are required unless `require_names=False` (used only
    to look up an existing contact).
    """
    render_context = ctx.render_context(transaction=ctx.state.get("transaction_data") or {})
    warnings: list[str] = []
    raw: dict[str, str] = {}
    templates: dict[str, str] = {}
    for name in MAPPED_CONTACT_FIELDS:
        template = (contact_map or {}).get(name) or ""
        templates[name] = template
        rendered = render(template, render_context)
        warnings.extend(rendered.warnings)
        raw[name] = rendered.text.strip()
    required = ["first_name", "last_name"] if require_names else []
    if require_email:
        required.append("email")
    if require_phone:
        required.append("phone")
    for name in required:
        if not raw[name]:
            if templates[name]:
                message = (
                    f"{FIELD_LABELS[name]} is required but rendered empty from '{templates[name]}'"
                )
            else:
                message = f"{FIELD_LABELS[name]} is required but is not mapped"
            raise TaskError(message, output={"warnings": _unique(warnings)})
    try:
        values = clean_contact_values(directory=directory, values=raw)
    except ContactError as error:
        # An optional email or phone Salesforce holds in a form we cannot read (a
        # typo in a secondary field) must not cost the survey: it is left out, with
        # a warning naming it. A required one, or any other field, fails the task.
        # Not when the task only looks a contact up (require_names=False): the email
        # is how it is found. Nor an email when no external data reference is left to
        # recognise the person by: the directory would fall back to the phone, which a
        # family shares, and update someone else.
        droppable = {name for name in error.errors if name in OPTIONAL_IF_UNREADABLE}
        if "email" in droppable and not raw.get("external_data_reference"):
            droppable.discard("email")
        if (
            not require_names
            or not droppable
            or droppable & set(required)
            or set(error.errors) - droppable
        ):
            raise TaskError(error.message, output={"warnings": _unique(warnings)}) from error
        for name in sorted(droppable, key=MAPPED_CONTACT_FIELDS.index):
            warnings.append(f"{error.errors[name]}; this {name} is left out of the contact")
            del raw[name]
        values = clean_contact_values(directory=directory, values=raw)
    embedded: dict[str, str] = {}
    for name, template in (embedded_data_map or {}).items():
        rendered = render(template or "", render_context)
        warnings.extend(rendered.warnings)
        text = rendered.text
        if len(text) > EMBEDDED_VALUE_MAX:
            # A Salesforce long text area (a case description) holds up to 131,072
            # characters: failing the task for it would cost the contact and the
            # survey, so the value is cut, and the run says so.
            warnings.append(
                f"embedded data field {name!r} rendered {len(text)} characters; only the "
                f"first {EMBEDDED_VALUE_MAX} are kept"
            )
            text = text[:EMBEDDED_VALUE_MAX]
        embedded[name] = text
    return values, embedded, _unique(warnings)


def save_contact_from_mapping(
    *,
    ctx: TaskContext,
    mailing_list_id: int,
    contact_map: dict,
    embedded_data_map: dict,
    require_email: bool = True,
    require_phone: bool = False,
) -> ContactSaveResult:
    """Render the mapping, create or update the contact in the mailing list's directory
    (deduplicated), add it to the list, and remember it in the run's state
    (ctx.state["contact_id"], ctx.state["mailing_list_id"])."""
    mailing_list = load_mailing_list(mailing_list_id)
    values, embedded, warnings = render_contact_values(
        ctx=ctx,
        contact_map=contact_map,
        embedded_data_map=embedded_data_map,
        require_email=require_email,
        require_phone=require_phone,
        directory=mailing_list.directory,
    )
    # An earlier task of this run (the demo: "add to directory", then "distribute")
    # may have saved exactly this in this job and committed: upserting again would
    # change nothing, so the contact is only read back, fresh (opt-outs are current).
    saved_key = (
        "contact_saved",
        ctx.run_id,
        mailing_list.pk,
        tuple(sorted(values.items())),
        tuple(sorted(embedded.items())),
    )
    saved = recall(saved_key)
    if saved is not None:
        contact_id, upsert_warnings = saved
        contact = Contact.objects.filter(pk=contact_id).first()
        if contact is not None:
            ctx.state["contact_id"] = contact.pk
            ctx.state["mailing_list_id"] = mailing_list.pk
            return ContactSaveResult(
                contact=contact,
                created=False,
                changed_fields=[],
                warnings=_unique([*warnings, *upsert_warnings]),
                rendered=values,
                embedded_data=embedded,
            )
    try:
        result = contact_upsert(
            directory=mailing_list.directory,
            values=values,
            embedded_data=embedded,
            mailing_list=mailing_list,
        )
    except ContactError as error:
        raise TaskError(error.message, output={"warnings": warnings}) from error
    ctx.state["contact_id"] = result.contact.pk
    ctx.state["mailing_list_id"] = mailing_list.pk
    # Remembered only once the task's transaction commits: a task that fails after
    # this point rolls the contact back, and the next one must upsert it again.
    transaction.on_commit(
        functools.partial(remember, saved_key, (result.contact.pk, list(result.warnings)))
    )
    return ContactSaveResult(
        contact=result.contact,
        created=result.created,
        changed_fields=result.changed_fields,
        warnings=_unique([*warnings, *result.warnings]),
        rendered=values,
        embedded_data=embedded,
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
