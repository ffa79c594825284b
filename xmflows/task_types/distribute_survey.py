"""Task "XM Directory: Distribute survey": save the event's contact, then invite it by email.

The task decides and records; it never talks to a provider. It creates the
distribution, the personal link and the recipient line with the message rendered
and frozen, inside the run's transaction, and queues the send job for after the
commit (TaskType's contract). The send itself is distributions.services.recipient_send.

Refusals come in two kinds, so that a run says the right thing:
- the task fails (TaskError, the run shows it): survey missing or not active, no
  permission to distribute it, an unverified sender — nothing can be sent to
  anyone until an admin fixes it;
- the task succeeds with the line Opted Out or Skipped and the reason in the
  output: the contact opted out, the address is suppressed (hard bounce,
  complaint), or the same message went to it within 12 hours — correct
  behaviour for this one person.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import serializers

from contacts.selectors import contact_match
from core.piped_text import RenderContext, render
from distributions.channels.email import html_to_text
from distributions.models import DistributionChannel, RecipientStatus
from distributions.services import (
    EmailContent,
    distribution_create,
    email_refusal,
    message_fingerprint,
    recipient_create,
    sender_is_verified,
)
from surveys.models import Survey, SurveyStatus
from surveys.services import opt_out_url, survey_can_distribute, survey_link_create, survey_link_url
from xmflows.contact_mapping import (
    ContactMappingSerializer,
    EmbeddedDataMappingField,
    load_mailing_list,
    render_contact_values,
    save_contact_from_mapping,
    validate_mailing_list_id,
)
from xmflows.task_types import TaskContext, TaskError, TaskOutcome, TaskType, register

AVAILABLE_CHANNELS = (DistributionChannel.EMAIL,)
SUBJECT_MAX = 998
BODY_MAX = 200_000
MAX_DELAY_MINUTES = 60 * 24 * 30
# Stand-ins for the personal links when fingerprinting a message: the real links
# differ on every line, so "the same message" must be judged without them.
NEUTRAL_LINKS = {"SurveyURL": "{survey link}", "OptOutURL": "{opt-out link}"}


def _template(*, max_length: int, required: bool = False) -> serializers.CharField:
    return serializers.CharField(
        max_length=max_length,
        required=required,
        allow_blank=not required,
        default=serializers.empty if required else "",
        trim_whitespace=False,
    )


class EmailMessageSerializer(serializers.Serializer):
    from_name = _template(max_length=200)
    from_email = serializers.EmailField(max_length=320)
    reply_to = serializers.EmailField(max_length=320, required=False, allow_blank=True, default="")
    subject = _template(max_length=SUBJECT_MAX, required=True)
    body = _template(max_length=BODY_MAX, required=True)

    def validate_subject(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("the subject must not be empty")
        return value

    def validate_body(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("the message body must not be empty")
        return value


class DistributeSurveyConfigSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(
        choices=DistributionChannel.choices, default=DistributionChannel.EMAIL
    )
    survey = serializers.IntegerField(min_value=1)
    mailing_list = serializers.IntegerField(min_value=1)
    contact = ContactMappingSerializer()
    embedded_data = EmbeddedDataMappingField()
    message = EmailMessageSerializer()
    send_delay_minutes = serializers.IntegerField(
        min_value=0, max_value=MAX_DELAY_MINUTES, default=0
    )
    link_expiry_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True, default=None
    )

    def validate_channel(self, value: str) -> str:
        if value not in AVAILABLE_CHANNELS:
            raise serializers.ValidationError(
                f"channel '{value}' is not available yet; use 'email'"
            )
        return value

    def validate_survey(self, value: int) -> int:
        if not Survey.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"survey {value} does not exist")
        return value

    def validate_mailing_list(self, value: int) -> int:
        return validate_mailing_list_id(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        contact = attrs.get("contact") or {}
        # SPEC F4: the task saves the contact as F3 does, so the same fields are
        # required; an email invitation needs the email in any case.
        missing = {
            name: ["this field is required: map it to an event field"]
            for name in ("first_name", "last_name", "email")
            if not (contact.get(name) or "").strip()
        }
        if missing:
            raise serializers.ValidationError({"contact": missing})
        return attrs


def _contact_section(values: dict[str, Any]) -> dict[str, str]:
    """Contact fields under their piped-text names (${m://FirstName} …)."""
    return {
        "FirstName": values.get("first_name") or "",
        "LastName": values.get("last_name") or "",
        "Email": values.get("email") or "",
        "PhoneNumber": values.get("phone") or "",
        "ExternalDataReference": values.get("external_data_reference") or "",
        "Language": values.get("language") or "",
    }


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


@register
class DistributeSurvey(TaskType):
    key = "distribute_survey"
    label = "XM Directory: Distribute survey"
    config_serializer = DistributeSurveyConfigSerializer

    @property
    def channel(self) -> str:
        return self.config.get("channel") or DistributionChannel.EMAIL

    @property
    def message(self) -> dict[str, str]:
        return self.config.get("message") or {}

    # --- Checks that fail the task ------------------------------------------------

    def _survey(self) -> Survey:
        survey_id = self.config.get("survey")
        survey = Survey.objects.select_related("owner").filter(pk=survey_id).first()
        if survey is None:
            raise TaskError(f"survey {survey_id} does not exist")
        return survey

    def _check_distributable(self, ctx: TaskContext, survey: Survey) -> None:
        if self.channel not in AVAILABLE_CHANNELS:
            raise TaskError(f"channel '{self.channel}' is not available yet")
        if survey.status != SurveyStatus.ACTIVE:
            raise TaskError("survey is not active")
        owner = get_user_model().objects.filter(pk=ctx.owner_id).first()
        if not survey_can_distribute(survey=survey, user=owner):
            who = owner.get_username() if owner else f"user {ctx.owner_id}"
            raise TaskError(
                f"the workflow's owner {who} may not distribute survey '{survey.name}' "
                f"(id {survey.pk}): it belongs to {survey.owner.get_username()}, who has "
                "not shared it with the distribute permission"
            )
        from_email = (self.message.get("from_email") or "").strip()
        if not sender_is_verified(address=from_email):
            raise TaskError(f"sender address {from_email} is not verified")

    # --- Run ------------------------------------------------------------------------

    def run(self, ctx: TaskContext) -> TaskOutcome:
        survey = self._survey()
        # Checked before the contact is saved: a failing task's writes are rolled back
        # anyway, and these need no contact.
        self._check_distributable(ctx, survey)
        saved = save_contact_from_mapping(
            ctx=ctx,
            mailing_list_id=self.config.get("mailing_list"),
            contact_map=self.config.get("contact") or {},
            embedded_data_map=self.config.get("embedded_data") or {},
            require_email=True,
        )
        contact = saved.contact
        snapshot = self._snapshot(ctx, contact)
        base_context = self._render_context(ctx, snapshot)
        fingerprint = self._fingerprint(contact.email, base_context)
        distribution = distribution_create(
            survey=survey,
            channel=self.channel,
            workflow_run_id=ctx.run_id,
            workflow_id=ctx.workflow_id,
            created_by_id=ctx.owner_id,
            message=dict(self.message),
        )
        common = {
            "distribution_id": distribution.pk,
            "contact_id": contact.pk,
            "contact_action": "created" if saved.created else "updated",
            "to": contact.email,
        }
        refusal = email_refusal(contact=contact, address=contact.email, message_hash=fingerprint)
        if refusal is not None:
            line = recipient_create(
                distribution=distribution,
                contact=contact,
                status=refusal.status,
                error=refusal.reason,
                to_address=contact.email,
                snapshot=snapshot,
                record_id=ctx.record_id or "",
            )
            label = RecipientStatus(refusal.status).label
            return TaskOutcome(
                output={
                    **common,
                    "recipient_id": line.pk,
                    "survey_link": "",
                    "status": label,
                    "recipient_status": label,
                    "reason": refusal.reason,
                },
                warnings=saved.warnings,
                email=contact.email,
            )

        expires_at = None
        if self.config.get("link_expiry_days"):
            expires_at = timezone.now() + timedelta(days=int(self.config["link_expiry_days"]))
        link = survey_link_create(
            survey=survey, contact_id=contact.pk, snapshot=snapshot, expires_at=expires_at
        )
        links = {"SurveyURL": survey_link_url(link), "OptOutURL": opt_out_url(link)}
        content, render_warnings = self._render_email(replace(base_context, links=links))
        delay = int(self.config.get("send_delay_minutes") or 0)
        send_at = timezone.now() + timedelta(minutes=delay) if delay else None
        line = recipient_create(
            distribution=distribution,
            contact=contact,
            link=link,
            content=content,
            to_address=contact.email,
            message_hash=fingerprint,
            snapshot={**snapshot, "links": links},
            record_id=ctx.record_id or "",
            send_at=send_at,
        )
        label = line.get_status_display()
        return TaskOutcome(
            output={
                **common,
                "recipient_id": line.pk,
                "survey_link": links["SurveyURL"],
                "status": label,
                "recipient_status": label,
                "reason": "",
                "scheduled_for": line.scheduled_for.isoformat() if line.scheduled_for else None,
                "subject": content.subject,
            },
            warnings=_unique([*saved.warnings, *render_warnings]),
            email=contact.email,
        )

    # --- Rendering ----------------------------------------------------------------------

    def _snapshot(self, ctx: TaskContext, contact) -> dict[str, Any]:
        """The values frozen for this recipient (SPEC F4): what the message and the
        survey's questions and embedded data will show, whatever changes later."""
        return {
            "contact": _contact_section(
                {
                    "first_name": contact.first_name,
                    "last_name": contact.last_name,
                    "email": contact.email,
                    "phone": contact.phone,
                    "external_data_reference": contact.external_data_reference,
                    "language": contact.language,
                }
            ),
            "embedded_data": dict(contact.embedded_data or {}),
            "transaction": dict(ctx.state.get("transaction_data") or {}),
            "event_fields": dict(ctx.fields),
            "event_facts": dict(ctx.event_facts()),
        }

    @staticmethod
    def _render_context(ctx: TaskContext, snapshot: dict[str, Any]) -> RenderContext:
        return RenderContext(
            event_fields=snapshot["event_fields"],
            event_facts=snapshot["event_facts"],
            contact=snapshot["contact"],
            embedded_data=snapshot["embedded_data"],
            transaction=snapshot["transaction"],
        )

    def _fingerprint(self, address: str, context: RenderContext) -> str:
        neutral = replace(context, links=NEUTRAL_LINKS)
        subject = render(self.message.get("subject") or "", neutral).text
        body = render(self.message.get("body") or "", neutral, html=True).text
        return message_fingerprint(address=address, subject=subject, body=body)

    def _render_email(self, context: RenderContext) -> tuple[EmailContent, list[str]]:
        message = self.message
        from_name = render(message.get("from_name") or "", context)
        subject = render(message.get("subject") or "", context)
        body = render(message.get("body") or "", context, html=True)
        warnings = [*from_name.warnings, *subject.warnings, *body.warnings]
        # Header values must be one line: a newline piped into a subject would
        # otherwise be refused by Django at send time (header injection guard).
        content = EmailContent(
            from_name=" ".join(from_name.text.split()),
            from_address=(message.get("from_email") or "").strip(),
            reply_to=(message.get("reply_to") or "").strip(),
            subject=" ".join(subject.text.split())[:SUBJECT_MAX],
            body_html=body.text,
            body_text=html_to_text(body.text),
        )
        return content, _unique(warnings)

    # --- Dry run ----------------------------------------------------------------------

    def preview(self, ctx: TaskContext) -> dict[str, Any]:
        """What `run` would do with this event, without writing or sending anything."""
        result: dict[str, Any] = {"channel": self.channel}
        try:
            survey = self._survey()
            result["survey_id"] = survey.pk
            self._check_distributable(ctx, survey)
            mailing_list = load_mailing_list(self.config.get("mailing_list"))
            values, embedded, warnings = render_contact_values(
                ctx=ctx,
                contact_map=self.config.get("contact") or {},
                embedded_data_map=self.config.get("embedded_data") or {},
                require_email=True,
                directory=mailing_list.directory,
            )
        except TaskError as error:
            return {**result, "error": error.message, "warnings": error.output.get("warnings", [])}
        existing = contact_match(directory=mailing_list.directory, values=values)
        merged = {**(existing.embedded_data if existing else {}), **embedded}
        snapshot = {
            "contact": _contact_section(values),
            "embedded_data": merged,
            "transaction": dict(ctx.state.get("transaction_data") or {}),
            "event_fields": dict(ctx.fields),
            "event_facts": dict(ctx.event_facts()),
        }
        context = self._render_context(ctx, snapshot)
        fingerprint = self._fingerprint(values["email"], context)
        refusal = email_refusal(contact=existing, address=values["email"], message_hash=fingerprint)
        content, render_warnings = self._render_email(replace(context, links=NEUTRAL_LINKS))
        return {
            **result,
            "action": (
                f"would record the line as {RecipientStatus(refusal.status).label}: "
                f"{refusal.reason}"
                if refusal
                else "would send"
            ),
            "contact_id": existing.pk if existing else None,
            "to": values["email"],
            "from": content.from_address,
            "subject": content.subject,
            "body_html": content.body_html,
            "warnings": _unique([*warnings, *render_warnings]),
        }
