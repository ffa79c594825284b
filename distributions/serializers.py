"""DRF serializers of distributions, recipient lines, the outbox and verified senders."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contacts.models import Directory, MailingList
from distributions.models import (
    MAX_PERIOD_DAYS,
    PERIOD_DAYS_TOO_LONG,
    Conversation,
    Distribution,
    FrequencyRule,
    FrequencyScope,
    OutboxMessage,
    Recipient,
    SmsMessage,
    VerifiedSender,
    sender_canonical,
)
from distributions.selectors import sender_duplicate_error
from surveys.models import Survey


class DistributionSerializer(serializers.ModelSerializer):
    # null when no workflow run (workflow_run, workflow) or no user (created_by, also
    # once the user is deleted) created it.
    workflow_run = serializers.IntegerField(
        source="workflow_run_id", read_only=True, allow_null=True
    )
    workflow = serializers.IntegerField(source="workflow_id", read_only=True, allow_null=True)
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )
    counts = serializers.SerializerMethodField()
    recipients_url = serializers.SerializerMethodField()

    class Meta:
        model = Distribution
        fields = [
            "id",
            "survey",
            "channel",
            "created_at",
            "workflow_run",
            "workflow",
            "created_by",
            "counts",
            "recipients_url",
            "kind",
            "parent",
            "mailing_list",
        ]
        read_only_fields = fields

    def get_counts(self, obj: Distribution) -> dict[str, int]:
        # Filled by the view in one query for the whole page (status label → count).
        return (self.context.get("counts") or {}).get(obj.pk, {})

    def get_recipients_url(self, obj: Distribution) -> str:
        return f"{settings.PUBLIC_BASE_URL}/api/v1/distributions/{obj.pk}/recipients/"


class FollowUpSerializer(serializers.ModelSerializer):
    """A reminder or thank-you message of an invitation line."""

    distribution = serializers.IntegerField(source="distribution_id", read_only=True)
    status = serializers.CharField(source="get_status_display", read_only=True)
    status_code = serializers.CharField(source="status", read_only=True)

    class Meta:
        model = Recipient
        fields = [
            "id",
            "kind",
            "distribution",
            "status",
            "status_code",
            "error",
            "subject",
            "sent_at",
            "delivered_at",
            "opened_at",
            "provider_message_id",
        ]
        read_only_fields = fields


class RecipientSerializer(serializers.ModelSerializer):
    # null once the contact is deleted.
    contact = serializers.IntegerField(source="contact_id", read_only=True, allow_null=True)
    distribution = serializers.IntegerField(source="distribution_id", read_only=True)
    status = serializers.CharField(source="get_status_display", read_only=True)
    status_code = serializers.CharField(source="status", read_only=True)
    survey_link = serializers.SerializerMethodField()
    # null until the contact starts the survey.
    response = serializers.IntegerField(source="response_id", read_only=True, allow_null=True)
    # null when no workflow sent it.
    workflow_run = serializers.IntegerField(
        source="workflow_run_id", read_only=True, allow_null=True
    )
    # The invitation line of a reminder or thank-you; null on an invitation line.
    parent = serializers.IntegerField(source="parent_id", read_only=True, allow_null=True)
    link_expires_at = serializers.SerializerMethodField()
    follow_ups = serializers.SerializerMethodField()

    class Meta:
        model = Recipient
        fields = [
            "id",
            "distribution",
            "contact",
            "first_name",
            "last_name",
            "email",
            "phone",
            "external_data_reference",
            "channel",
            "status",
            "status_code",
            "error",
            "to_address",
            "from_address",
            "subject",
            "attempts",
            "scheduled_for",
            "next_attempt_at",
            "sent_at",
            "delivered_at",
            "opened_at",
            "started_at",
            "finished_at",
            "created_at",
            "survey_link",
            "response",
            "workflow_run",
            "record_id",
            "provider_message_id",
            "kind",
            "parent",
            "link_expires_at",
            "follow_ups",
        ]
        read_only_fields = fields

    def get_survey_link(self, obj: Recipient) -> str:
        token = getattr(obj.link, "token", None) if obj.link_id else None
        return f"{settings.PUBLIC_BASE_URL}/s/{token}/" if token else ""

    def get_link_expires_at(self, obj: Recipient) -> str | None:
        expires_at = obj.link.expires_at if obj.link_id and obj.link is not None else None
        return serializers.DateTimeField().to_representation(expires_at) if expires_at else None

    @extend_schema_field(FollowUpSerializer(many=True))
    def get_follow_ups(self, obj: Recipient) -> list[dict]:
        """An invitation line's reminder and thank-you, each its own message with its
        own status (empty for a follow-up line itself)."""
        # Sorted here, not in the query: the view prefetches them for a whole page.
        follow_ups = sorted(obj.follow_ups.all(), key=lambda line: line.pk)
        return FollowUpSerializer(follow_ups, many=True).data


class OutboxMessageSerializer(serializers.ModelSerializer):
    """`body` is what the message's body rendered to: an HTML email's HTML (values
    escaped, links as anchors, PIPED_TEXT.md), else its text. `text` is the plain-text
    part every email also carries (an SMS: its text again)."""

    body = serializers.SerializerMethodField()
    text = serializers.CharField(source="body", read_only=True)

    class Meta:
        model = OutboxMessage
        fields = ["id", "channel", "to", "subject", "body", "text", "headers", "created_at"]
        read_only_fields = fields

    def get_body(self, message: OutboxMessage) -> str:
        return message.html_body or message.body

    def get_fields(self):
        # "from" is a Python keyword, so the field is declared by hand.
        fields = super().get_fields()
        fields["from"] = serializers.CharField(source="from_address", read_only=True)
        return fields


class VerifiedSenderSerializer(serializers.ModelSerializer):
    class Meta:
        model = VerifiedSender
        fields = ["id", "address", "verified", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_address(self, value: str) -> str:
        canonical = sender_canonical(value)
        local, _, domain = canonical.rpartition("@")
        if not domain or "." not in domain or " " in canonical or "@" in local:
            raise serializers.ValidationError(
                'give an address ("support@example.com") or a domain ("@example.com")'
            )
        duplicate = sender_duplicate_error(
            address=canonical, exclude_pk=self.instance.pk if self.instance else None
        )
        if duplicate:
            raise serializers.ValidationError(duplicate)
        return canonical


# The foreign key (and model) of each scope: the scope's value is the field's name.
SCOPE_MODELS = {
    FrequencyScope.DIRECTORY: Directory,
    FrequencyScope.MAILING_LIST: MailingList,
    FrequencyScope.SURVEY: Survey,
}


class _TargetField(serializers.IntegerField):
    """Written as a number; read back from whichever foreign key the scope uses."""

    def get_attribute(self, instance: FrequencyRule) -> int | None:
        return instance.target_id


class FrequencyRuleSerializer(serializers.ModelSerializer):
    """A contact frequency rule. `target` is the id of the directory, mailing list or
    survey named by `scope`."""

    # Read and written (the schema must not call it write-only: answers hold it).
    target = _TargetField(min_value=1)
    target_name = serializers.SerializerMethodField()

    class Meta:
        model = FrequencyRule
        fields = [
            "id",
            "name",
            "scope",
            "target",
            "target_name",
            "max_sends",
            "period_days",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "target_name", "created_at", "updated_at"]
        extra_kwargs = {
            "max_sends": {"min_value": 1, "max_value": 1000},
            "period_days": {
                "min_value": 1,
                "max_value": MAX_PERIOD_DAYS,
                "error_messages": {"max_value": PERIOD_DAYS_TOO_LONG},
            },
        }

    def get_target_name(self, obj: FrequencyRule) -> str:
        target = obj.target
        return str(target) if target is not None else ""

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("a rule needs a name: it is shown in skip reasons")
        return value.strip()

    def validate(self, attrs: dict) -> dict:
        scope = attrs.get("scope", getattr(self.instance, "scope", None))
        target_id = attrs.get("target", getattr(self.instance, "target_id", None))
        changes_scope = (
            self.instance is not None and "scope" in attrs and attrs["scope"] != self.instance.scope
        )
        if changes_scope and "target" not in attrs:
            raise serializers.ValidationError({"target": ["give the target of the new scope"]})
        model = SCOPE_MODELS.get(scope)
        if model is None or target_id is None:
            return attrs
        target = model.objects.filter(pk=target_id).first()
        if target is None:
            label = FrequencyScope(scope).label.lower()
            raise serializers.ValidationError({"target": [f"{label} {target_id} does not exist"]})
        attrs.pop("target", None)
        # The scope's foreign key set, the others cleared (the model's constraint).
        for name in SCOPE_MODELS:
            attrs[name] = target if name == scope else None
        return attrs


class SmsMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = SmsMessage
        fields = [
            "id",
            "direction",
            "phone",
            "body",
            "provider_message_id",
            "outcome",
            "created_at",
        ]
        read_only_fields = fields


class ConversationSerializer(serializers.ModelSerializer):
    distribution = serializers.IntegerField(source="recipient.distribution_id", read_only=True)
    survey = serializers.IntegerField(source="recipient.survey_id", read_only=True)
    messages = SmsMessageSerializer(many=True, read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "recipient",
            "distribution",
            "survey",
            "phone",
            "status",
            "question_index",
            "invalid_replies",
            "created_at",
            "last_activity_at",
            "closed_at",
            "close_reason",
            "messages",
        ]
        read_only_fields = fields
