"""Task "XM Directory: Distribute survey": save the event's contact, then email or text it.

Channels: `email`, `sms` (the invitation as a text) and `sms_survey` (the questions
asked one by one by text, distributions.sms_conversations).

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

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from contacts.selectors import contact_match
from core.job_memo import memoized
from core.piped_text import RenderContext, render
from core.strict_serializer import StrictSerializer
from distributions.campaign import reminder_first_due
from distributions.channels.email import html_to_text
from distributions.frequency import frequency_skip_reason
from distributions.models import DistributionChannel, RecipientStatus
from distributions.services import (
    EmailContent,
    Refusal,
    distribution_create,
    email_refusal,
    message_fingerprint,
    recipient_create,
    sender_is_verified,
)
from distributions.sms_services import quiet_hours_deferral, render_sms_text, sms_refusal
from distributions.sms_text import segments
from surveys.models import Survey, SurveyStatus
from surveys.services import opt_out_url, survey_can_distribute, survey_link_create, survey_link_url
from xmflows.campaign_config import (
    ReminderSerializer,
    ThankYouSerializer,
    follow_up_config,
    planned_send_reason,
    planned_send_time,
)
from xmflows.contact_mapping import (
    ContactMappingSerializer,
    EmbeddedDataMappingField,
    load_mailing_list,
    render_contact_values,
    save_contact_from_mapping,
    validate_mailing_list_id,
)
from xmflows.task_types import TaskContext, TaskError, TaskOutcome, TaskType, register

AVAILABLE_CHANNELS = (
    DistributionChannel.EMAIL,
    DistributionChannel.SMS,
    DistributionChannel.SMS_SURVEY,
)
# Texts: `message.text` (the invitation, or a two-way survey's opening) and the phone.
SMS_CHANNELS = (DistributionChannel.SMS, DistributionChannel.SMS_SURVEY)
# Twilio refuses longer bodies.
SMS_TEXT_MAX = 1600
SUBJECT_MAX = 998
BODY_MAX = 200_000
MAX_DELAY_MINUTES = 60 * 24 * 30
# Stand-ins for the personal links when fingerprinting a message: the real links
# differ on every line, so "the same message" must be judged without them.
NEUTRAL_LINKS = {"SurveyURL": "{survey link}", "OptOutURL": "{opt-out link}"}


def _template(*, max_length: int, required: bool = False, blank: str = "") -> serializers.CharField:
    """A piped-text field kept as typed; `blank`: what a required one says when empty
    (the same words as its validate_ method says for one of spaces)."""
    return serializers.CharField(
        max_length=max_length,
        required=required,
        allow_blank=not required,
        default=serializers.empty if required else "",
        trim_whitespace=False,
        error_messages={"blank": blank} if blank else None,
    )


class EmailMessageSerializer(StrictSerializer):
    from_name = _template(max_length=200)
    from_email = serializers.EmailField(max_length=320)
    reply_to = serializers.EmailField(max_length=320, required=False, allow_blank=True, default="")
    subject = _template(
        max_length=SUBJECT_MAX, required=True, blank="the subject must not be empty"
    )
    body = _template(max_length=BODY_MAX, required=True, blank="the message body must not be empty")

    def validate_from_email(self, value: str) -> str:
        # Checked again at every send (a sender can be unverified later); refused here
        # so a workflow is not saved to fail every run.
        if not sender_is_verified(address=value):
            raise serializers.ValidationError(
                f"{value} is not a verified sender; a staff member adds it (or its "
                "domain) under Admin → Verified senders first"
            )
        return value

    def validate_subject(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("the subject must not be empty")
        return value

    def validate_body(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("the message body must not be empty")
        return value


class SmsMessageSerializer(StrictSerializer):
    """`message` of the sms and sms_survey channels: one text with piped text."""

    text = _template(max_length=SMS_TEXT_MAX, required=True, blank="the SMS text must not be empty")

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("the SMS text must not be empty")
        return value


class ChannelMessageField(serializers.Field):
    """`message`, validated by the task's channel: an email (from, subject, body) or a
    text (`text`). Errors keep their per-field shape ({"message": {"subject": [...]}})."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        initial = getattr(self.parent, "initial_data", None) or {}
        channel = initial.get("channel") if isinstance(initial, dict) else None
        serializer_class = (
            SmsMessageSerializer if channel in SMS_CHANNELS else EmailMessageSerializer
        )
        serializer = serializer_class(data=data)
        if not serializer.is_valid():
            raise serializers.ValidationError(serializer.errors)
        return dict(serializer.data)

    def to_representation(self, value: Any) -> dict[str, Any]:
        return dict(value or {})


class DistributeSurveyConfigSerializer(StrictSerializer):
    channel = serializers.ChoiceField(
        choices=DistributionChannel.choices, default=DistributionChannel.EMAIL
    )
    survey = serializers.IntegerField(min_value=1)
    mailing_list = serializers.IntegerField(min_value=1)
    contact = ContactMappingSerializer()
    embedded_data = EmbeddedDataMappingField()
    message = ChannelMessageField()
    send_delay_minutes = serializers.IntegerField(
        min_value=0, max_value=MAX_DELAY_MINUTES, default=0
    )
    link_expiry_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True, default=None
    )
    # Campaign controls (xmflows.campaign_config): send at the start of the next
    # working period, a reminder after N days, a thank-you after finishing.
    send_at_next_working_hour = serializers.BooleanField(default=False)
    reminder = ReminderSerializer(required=False, allow_null=True, default=None)
    thank_you = ThankYouSerializer(required=False, allow_null=True, default=None)

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

    def validate_contact(self, contact: dict[str, Any]) -> dict[str, Any]:
        # SPEC F4: the task saves the contact as F3 does, so the same fields are
        # required; an email invitation needs the email in any case. A field check,
        # so these come back together with every other field's errors.
        initial = self.initial_data if isinstance(self.initial_data, dict) else {}
        missing = {
            name: ["this field is required: map it to an event field"]
            for name in ("first_name", "last_name", _address_field(initial.get("channel")))
            if not (contact.get(name) or "").strip()
        }
        if missing:
            raise serializers.ValidationError(missing)
        return contact


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


def _address_field(channel: str | None) -> str:
    """The contact field a channel sends to (PIPED_TEXT.md: email for email channels,
    phone for SMS channels)."""
    return "phone" if channel in SMS_CHANNELS else "email"


@register
class DistributeSurvey(TaskType):
    key = "distribute_survey"
    label = "XM Directory: Distribute survey"
    writes_directory = True
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
        survey = memoized(
            ("survey", str(survey_id)),
            Survey.objects.select_related("owner").filter(pk=survey_id).first,
        )
        if survey is None:
            raise TaskError(f"survey {survey_id} does not exist")
        return survey

    def _check_distributable(self, ctx: TaskContext, survey: Survey) -> None:
        if self.channel not in AVAILABLE_CHANNELS:
            raise TaskError(f"channel '{self.channel}' is not available yet")
        if survey.status != SurveyStatus.ACTIVE:
            raise TaskError("survey is not active")
        # The task saves the contact it sends to (created, or updated from the mapping).
        ctx.check_owner_may_write_directory()
        owner = ctx.owner()
        if not survey_can_distribute(survey=survey, user=owner):
            who = owner.get_username() if owner else f"user {ctx.owner_id}"
            raise TaskError(
                f"the workflow's owner {who} may not distribute survey '{survey.name}' "
                f"(id {survey.pk}): it belongs to {survey.owner.get_username()}, who has "
                "not shared it with the distribute permission"
            )
        if self.is_sms:
            return  # texts go from TWILIO_FROM_NUMBER / the Messaging Service
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
            require_email=not self.is_sms,
            require_phone=self.is_sms,
        )
        contact = saved.contact
        address = contact.phone if self.is_sms else contact.email
        snapshot = self._snapshot(ctx, contact)
        base_context = self._render_context(ctx, snapshot)
        fingerprint = self._fingerprint(address, base_context)
        distribution = distribution_create(
            survey=survey,
            channel=self.channel,
            workflow_run_id=ctx.run_id,
            workflow_id=ctx.workflow_id,
            created_by_id=ctx.owner_id,
            message=dict(self.message),
            mailing_list_id=self.config.get("mailing_list"),
            follow_up_config=follow_up_config(self.config),
        )
        now = timezone.now()
        timing = {
            "delay_minutes": int(self.config.get("send_delay_minutes") or 0),
            "next_working_hour": bool(self.config.get("send_at_next_working_hour")),
            "contact": contact,
        }
        send_at = planned_send_time(now=now, **timing)
        scheduled_because = planned_send_reason(now=now, send_at=send_at, **timing)
        # SMS quiet hours: a text due inside them waits for their end.
        send_at, quiet_hours_note = self._quiet_hours(contact, send_at, now)
        common = {
            "distribution_id": distribution.pk,
            "contact_id": contact.pk,
            "contact_action": "created" if saved.created else "updated",
            "to": address,
        }
        refusal = self._refusal(contact, address, fingerprint)
        if refusal is None and send_at is None:
            # Frequency rules decide at send time; for a send due now that is the same
            # moment, so the run's output names the rule at once. (A later send is
            # judged when it goes: a rule's window moves on meanwhile.)
            rule_reason = self._frequency_reason(contact, survey, now)
            if rule_reason is not None:
                refusal = Refusal(RecipientStatus.SKIPPED, rule_reason)
        if refusal is not None:
            line = recipient_create(
                distribution=distribution,
                contact=contact,
                status=refusal.status,
                error=refusal.reason,
                to_address=address,
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
            # Counted from when the invitation is planned to go, so a send delay or
            # "next working hour" does not eat into the respondent's days.
            planned = send_at or now
            expires_at = planned + timedelta(days=int(self.config["link_expiry_days"]))
        link = survey_link_create(
            survey=survey,
            contact_id=contact.pk,
            # The channel tells the opt-out page what the person is unsubscribing from.
            snapshot={**snapshot, "channel": "sms" if self.is_sms else "email"},
            expires_at=expires_at,
        )
        links = {"SurveyURL": survey_link_url(link), "OptOutURL": opt_out_url(link)}
        content, render_warnings = self._render_content(replace(base_context, links=links))
        line = recipient_create(
            distribution=distribution,
            contact=contact,
            link=link,
            content=content,
            error=quiet_hours_note,
            to_address=address,
            message_hash=fingerprint,
            snapshot={**snapshot, "links": links},
            record_id=ctx.record_id or "",
            send_at=send_at,
            reminder_due_at=reminder_first_due(
                follow_up_config=distribution.follow_up_config, planned_at=send_at or now
            ),
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
                **({"scheduled_because": scheduled_because} if line.scheduled_for else {}),
                "subject": content.subject,
                **({"quiet_hours": quiet_hours_note} if quiet_hours_note else {}),
                **self._sms_output(content),
            },
            warnings=_unique([*saved.warnings, *render_warnings]),
            email=contact.email,
        )

    def _frequency_reason(self, contact, survey: Survey, now, *, lock: bool = True) -> str | None:
        return frequency_skip_reason(
            contact_id=contact.pk,
            directory_id=contact.directory_id,
            mailing_list_id=self.config.get("mailing_list"),
            survey_id=survey.pk,
            now=now,
            lock=lock,
        )

    # --- SMS channels (sms, sms_survey) --------------------------------------------------

    @property
    def is_sms(self) -> bool:
        return self.channel in SMS_CHANNELS

    def _refusal(self, contact, address: str, fingerprint: str) -> Refusal | None:
        if not self.is_sms:
            return email_refusal(contact=contact, address=address, message_hash=fingerprint)
        return sms_refusal(
            contact=contact,
            phone=address,
            channel=self.channel,
            message_hash=fingerprint,
            opens_conversation=self.channel == DistributionChannel.SMS_SURVEY,
        )

    def _quiet_hours(self, contact, send_at, now) -> tuple[Any, str]:
        """(when to send, why it moved): a send planned inside the directory's quiet
        hours (email or text, SPEC F4) goes at their end."""
        deferral = quiet_hours_deferral(contact=contact, planned=send_at or now)
        if deferral is None:
            return send_at, ""
        return deferral

    def _render_content(self, context: RenderContext) -> tuple[EmailContent, list[str]]:
        """The frozen message of a line: an email, or a text (plain piped text, links as
        URLs, with a warning when it runs over XMFLOWS_SMS_MAX_SEGMENTS)."""
        if not self.is_sms:
            return self._render_email(context)
        sms = render_sms_text(self.message.get("text") or "", context)
        sender = settings.TWILIO_MESSAGING_SERVICE_SID or settings.TWILIO_FROM_NUMBER
        content = EmailContent(
            from_name="",
            from_address=sender or "",
            reply_to="",
            subject="",
            body_html="",
            body_text=sms.text,
        )
        return content, list(sms.warnings)

    def _sms_output(self, content: EmailContent) -> dict[str, Any]:
        if not self.is_sms:
            return {}
        counted = segments(content.body_text)
        return {"text": content.body_text, "segments": counted.count, "encoding": counted.encoding}

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
        if self.is_sms:
            # "The same message" by text: the same text to the same number. A two-way
            # survey's opening is another kind of message than an SMS invitation.
            text = render(self.message.get("text") or "", neutral).text.strip()
            kind = "sms_survey" if self.channel == DistributionChannel.SMS_SURVEY else ""
            return message_fingerprint(address=address, subject=kind, body=text)
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
                require_email=not self.is_sms,
                require_phone=self.is_sms,
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
        address = values["phone"] if self.is_sms else values["email"]
        fingerprint = self._fingerprint(address, context)
        refusal = self._refusal(existing, address, fingerprint)
        if refusal is None and existing is not None:
            rule_reason = self._frequency_reason(existing, survey, timezone.now(), lock=False)
            if rule_reason is not None:
                refusal = Refusal(RecipientStatus.SKIPPED, rule_reason)
        content, render_warnings = self._render_content(replace(context, links=NEUTRAL_LINKS))
        return {
            **result,
            "action": (
                f"would record the line as {RecipientStatus(refusal.status).label}: "
                f"{refusal.reason}"
                if refusal
                else "would send"
            ),
            "contact_id": existing.pk if existing else None,
            # What the contact would be saved with (the dry run shows both).
            "contact": values,
            "embedded_data": embedded,
            "to": address,
            "from": content.from_address,
            "subject": content.subject,
            "body_html": content.body_html,
            **self._sms_output(content),
            "warnings": _unique([*warnings, *render_warnings]),
        }
