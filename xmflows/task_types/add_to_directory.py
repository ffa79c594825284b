"""Task "XM Directory: Add to directory": save the event's contact, or add a transaction."""

from typing import Any

from rest_framework import serializers

from contacts.exceptions import ContactError
from contacts.selectors import contact_find, contact_match
from contacts.services import clean_embedded_data, transaction_append
from core.piped_text import render
from core.strict_serializer import StrictSerializer
from xmflows.contact_mapping import (
    ContactMappingSerializer,
    EmbeddedDataMappingField,
    load_mailing_list,
    render_contact_values,
    save_contact_from_mapping,
    validate_mailing_list_id,
)
from xmflows.task_types import TaskContext, TaskError, TaskOutcome, TaskType, register

MODE_EMBEDDED_DATA = "embedded_data"
MODE_TRANSACTION = "transaction"


class AddToDirectoryConfigSerializer(StrictSerializer):
    mode = serializers.ChoiceField(
        choices=[
            (MODE_EMBEDDED_DATA, "Save or update embedded data"),
            (MODE_TRANSACTION, "Add as transaction"),
        ],
        default=MODE_EMBEDDED_DATA,
    )
    mailing_list = serializers.IntegerField(min_value=1)
    contact = ContactMappingSerializer()
    embedded_data = EmbeddedDataMappingField()

    def validate_mailing_list(self, value: int) -> int:
        return validate_mailing_list_id(value)

    def validate_contact(self, contact: dict[str, Any]) -> dict[str, Any]:
        # A field check, so these come back together with every other field's errors
        # (the mailing list's, say) instead of in a second round.
        initial = self.initial_data if isinstance(self.initial_data, dict) else {}
        if initial.get("mode") == MODE_TRANSACTION:
            # Only looks a contact up: it needs something to recognise it by.
            if not (contact.get("email") or contact.get("external_data_reference")):
                raise serializers.ValidationError(
                    {
                        "email": [
                            "map the email or the external data reference so "
                            "the contact can be found"
                        ]
                    }
                )
            return contact
        # SPEC F3: first name, last name and email are required to save a contact.
        missing = {
            name: ["this field is required: map it to an event field"]
            for name in ("first_name", "last_name", "email")
            if not (contact.get(name) or "").strip()
        }
        if missing:
            raise serializers.ValidationError(missing)
        return contact


# Dry runs only: the contacts earlier previews of the run would create, so a later
# transaction task knows the contact would exist by then.
PREVIEW_CREATED = "preview_created_contacts"


def _created_by_an_earlier_preview(ctx: TaskContext, directory_id: int, values: dict) -> str | None:
    email = values.get("email", "").lower()
    reference = values.get("external_data_reference", "")
    for created in ctx.state.get(PREVIEW_CREATED) or []:
        if created["directory_id"] != directory_id:
            continue
        if (email and created["email"] == email) or (
            reference and created["external_data_reference"] == reference
        ):
            return created["by"]
    return None


@register
class AddToDirectory(TaskType):
    key = "add_to_directory"
    label = "XM Directory: Add to directory"
    writes_directory = True
    config_serializer = AddToDirectoryConfigSerializer

    @property
    def mode(self) -> str:
        return self.config.get("mode") or MODE_EMBEDDED_DATA

    def run(self, ctx: TaskContext) -> TaskOutcome:
        ctx.check_owner_may_write_directory()
        if self.mode == MODE_TRANSACTION:
            return self._append_transaction(ctx)
        result = save_contact_from_mapping(
            ctx=ctx,
            mailing_list_id=self.config.get("mailing_list"),
            contact_map=self.config.get("contact") or {},
            embedded_data_map=self.config.get("embedded_data") or {},
        )
        return TaskOutcome(
            output={
                "action": "created" if result.created else "updated",
                "contact_id": result.contact.pk,
                "mailing_list_id": ctx.state["mailing_list_id"],
                "changed_fields": result.changed_fields,
                "contact": result.rendered,
                "embedded_data": result.embedded_data,
            },
            warnings=result.warnings,
            email=result.contact.email,
        )

    def _append_transaction(self, ctx: TaskContext) -> TaskOutcome:
        mailing_list = load_mailing_list(self.config.get("mailing_list"))
        values, data, warnings = render_contact_values(
            ctx=ctx,
            contact_map=self.config.get("contact") or {},
            embedded_data_map=self.config.get("embedded_data") or {},
            require_email=False,
            require_names=False,
            directory=mailing_list.directory,
        )
        contact = contact_find(
            directory=mailing_list.directory,
            email=values.get("email", ""),
            external_data_reference=values.get("external_data_reference", ""),
        )
        if contact is None:
            # The address as the message gave it (the lookup used its normalized form:
            # the domain in lower case), so the admin recognizes what was sent.
            email_template = (self.config.get("contact") or {}).get("email") or ""
            context = ctx.render_context(transaction=ctx.state.get("transaction_data") or {})
            sent = render(email_template, context).text.strip()
            who = (
                (sent if values.get("email") else "")
                or values.get("external_data_reference")
                or "(no email)"
            )
            raise TaskError(f"contact not found: {who}", output={"warnings": warnings})
        # The task names a mailing list: the contact is (now) a member of it, so a
        # distribution to that list reaches the person whose transaction this is.
        record, added = transaction_append(
            contact=contact, data=data, run_id=ctx.run_id, mailing_list=mailing_list
        )
        ctx.state["contact_id"] = contact.pk
        ctx.state["mailing_list_id"] = mailing_list.pk
        ctx.state["transaction_id"] = record.pk
        ctx.state["transaction_data"] = dict(record.data)
        return TaskOutcome(
            output={
                "action": "transaction",
                "transaction_id": record.pk,
                "contact_id": contact.pk,
                "mailing_list_id": mailing_list.pk,
                "added_to_mailing_list": added,
                "data": record.data,
            },
            warnings=warnings,
            email=contact.email,
        )

    def preview(self, ctx: TaskContext) -> dict[str, Any]:
        """The rendered contact and what would happen to it; writes nothing."""
        try:
            ctx.check_owner_may_write_directory()
            mailing_list = load_mailing_list(self.config.get("mailing_list"))
            transaction_mode = self.mode == MODE_TRANSACTION
            values, embedded, warnings = render_contact_values(
                ctx=ctx,
                contact_map=self.config.get("contact") or {},
                embedded_data_map=self.config.get("embedded_data") or {},
                require_email=not transaction_mode,
                require_names=not transaction_mode,
                directory=mailing_list.directory,
            )
        except TaskError as error:
            return {
                "mode": self.mode,
                "error": error.message,
                "warnings": error.output.get("warnings", []),
            }
        if transaction_mode:
            # As the run looks the contact up: by email or external data reference only.
            existing = contact_find(
                directory=mailing_list.directory,
                email=values.get("email", ""),
                external_data_reference=values.get("external_data_reference", ""),
            )
            # Or an earlier task of this run would create the contact a moment before.
            created_by = (
                None
                if existing
                else _created_by_an_earlier_preview(ctx, mailing_list.directory_id, values)
            )
            if existing is None and created_by is None:
                action = "would fail: contact not found"
            else:
                # As run() does: the next tasks' ${tx://…} read this transaction, and
                # the distribute preview's duplicate check compares the message the
                # replay would really send.
                try:
                    ctx.state["transaction_data"] = clean_embedded_data(embedded)
                except ContactError as error:
                    return {"mode": self.mode, "error": error.message, "warnings": warnings}
                if existing is None:
                    action = f"would add a transaction to the contact {created_by} would create"
                else:
                    ctx.state["contact_id"] = existing.pk
                    action = "would add a transaction"
                    if not mailing_list.contacts.filter(pk=existing.pk).exists():
                        action += " and add the contact to the mailing list"
        else:
            existing = contact_match(directory=mailing_list.directory, values=values)
            action = "would update" if existing else "would create"
            if existing is None:
                ctx.state.setdefault(PREVIEW_CREATED, []).append(
                    {
                        "directory_id": mailing_list.directory_id,
                        "email": values.get("email", "").lower(),
                        "external_data_reference": values.get("external_data_reference", ""),
                        "by": f"task {ctx.task_number or '?'}",
                    }
                )
        return {
            "mode": self.mode,
            "action": action,
            "contact_id": existing.pk if existing else None,
            "mailing_list_id": mailing_list.pk,
            "directory_id": mailing_list.directory_id,
            "contact": values,
            "embedded_data": embedded,
            "warnings": warnings,
        }
