"""DRF serializers of distributions, recipient lines, the outbox and verified senders."""

from django.conf import settings
from rest_framework import serializers

from distributions.models import Distribution, OutboxMessage, Recipient, VerifiedSender


class DistributionSerializer(serializers.ModelSerializer):
    workflow_run = serializers.IntegerField(source="workflow_run_id", read_only=True)
    workflow = serializers.IntegerField(source="workflow_id", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
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
        ]
        read_only_fields = fields

    def get_counts(self, obj: Distribution) -> dict[str, int]:
        # Filled by the view in one query for the whole page (status label → count).
        return (self.context.get("counts") or {}).get(obj.pk, {})

    def get_recipients_url(self, obj: Distribution) -> str:
        return f"{settings.PUBLIC_BASE_URL}/api/v1/distributions/{obj.pk}/recipients/"


class RecipientSerializer(serializers.ModelSerializer):
    contact = serializers.IntegerField(source="contact_id", read_only=True)
    distribution = serializers.IntegerField(source="distribution_id", read_only=True)
    status = serializers.CharField(source="get_status_display", read_only=True)
    status_code = serializers.CharField(source="status", read_only=True)
    survey_link = serializers.SerializerMethodField()
    response = serializers.IntegerField(source="response_id", read_only=True)
    workflow_run = serializers.IntegerField(source="workflow_run_id", read_only=True)

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
        ]
        read_only_fields = fields

    def get_survey_link(self, obj: Recipient) -> str:
        token = getattr(obj.link, "token", None) if obj.link_id else None
        return f"{settings.PUBLIC_BASE_URL}/s/{token}/" if token else ""


class OutboxMessageSerializer(serializers.ModelSerializer):
    # "from" is a Python keyword, so the field is declared by hand.
    html = serializers.CharField(source="html_body", read_only=True)

    class Meta:
        model = OutboxMessage
        fields = ["id", "channel", "to", "subject", "body", "html", "headers", "created_at"]
        read_only_fields = fields

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(source="from_address", read_only=True)
        return fields


class VerifiedSenderSerializer(serializers.ModelSerializer):
    class Meta:
        model = VerifiedSender
        fields = ["id", "address", "verified", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_address(self, value: str) -> str:
        text = value.strip().lower()
        local, at, domain = text.rpartition("@") if "@" in text else ("", "@", text)
        if not domain or "." not in domain or " " in text or (at and local.count("@")):
            raise serializers.ValidationError(
                'give an address ("support@example.com") or a domain ("@example.com")'
            )
        canonical = text if "@" in text else "@" + text
        queryset = VerifiedSender.objects.filter(address=canonical)
        if self.instance is not None:
            queryset = queryset.exclude(pk=self.instance.pk)
        if queryset.exists():
            raise serializers.ValidationError(f"{canonical} is already a sender")
        return canonical
