"""Admin pages: distributions with their lines, senders, suppressions, outbox, events."""

from django.contrib import admin
from django.utils.html import format_html

from distributions.models import (
    DeliveryEvent,
    Distribution,
    EmailSuppression,
    OutboxMessage,
    Recipient,
    RecipientMessage,
    VerifiedSender,
)

# History is written by the workflow engine and providers; editing it by hand would
# make reports lie, so these pages are read-only except senders and suppressions.
RECIPIENT_TIMES = [
    "created_at",
    "scheduled_for",
    "sending_started_at",
    "sent_at",
    "delivered_at",
    "opened_at",
    "started_at",
    "finished_at",
    "next_attempt_at",
]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class RecipientInline(admin.TabularInline):
    model = Recipient
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["email", "first_name", "last_name", "status", "error", "sent_at", "finished_at"]
    readonly_fields = fields
    max_num = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Distribution)
class DistributionAdmin(ReadOnlyAdmin):
    list_display = ["id", "survey", "channel", "workflow_run_link", "created_by", "created_at"]
    list_filter = ["channel"]
    search_fields = ["survey__name", "=workflow_run_id", "=id"]
    readonly_fields = [
        "survey",
        "channel",
        "workflow_run_id",
        "workflow_id",
        "created_by",
        "created_at",
        "message",
    ]
    inlines = [RecipientInline]
    list_select_related = ["survey", "created_by"]

    @admin.display(description="Workflow run")
    def workflow_run_link(self, obj: Distribution) -> str:
        if not obj.workflow_run_id:
            return "—"
        run_id = obj.workflow_run_id
        return format_html('<a href="/reports/workflows/runs/{}/">run {}</a>', run_id, run_id)


class RecipientMessageInline(admin.StackedInline):
    model = RecipientMessage
    can_delete = False
    fields = ["body_html", "body_text", "snapshot"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyAdmin):
    inlines = [RecipientMessageInline]
    list_display = ["id", "distribution_id", "email", "status", "error", "sent_at", "created_at"]
    list_filter = ["status", "channel"]
    search_fields = ["email", "to_address", "record_id", "provider_message_id", "=id"]
    readonly_fields = [
        "distribution",
        "survey",
        "channel",
        "contact",
        "link",
        "status",
        "error",
        "first_name",
        "last_name",
        "email",
        "phone",
        "external_data_reference",
        "record_id",
        "workflow_run_id",
        "to_address",
        "from_name",
        "from_address",
        "reply_to",
        "subject",
        "provider_message_id",
        "outcome_unknown",
        "attempts",
        "response_id",
        *RECIPIENT_TIMES,
    ]
    list_select_related = ["distribution"]


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "provider",
        "event_type",
        "message_id",
        "recipient_id",
        "outcome",
        "received_at",
    ]
    list_filter = ["provider", "event_type"]
    search_fields = ["message_id", "event_id", "=recipient__id"]
    readonly_fields = [
        "provider",
        "event_id",
        "recipient",
        "event_type",
        "message_id",
        "occurred_at",
        "reason",
        "outcome",
        "raw",
        "received_at",
    ]


@admin.register(VerifiedSender)
class VerifiedSenderAdmin(admin.ModelAdmin):
    list_display = ["address", "verified", "created_at"]
    list_filter = ["verified"]
    search_fields = ["address"]


@admin.register(EmailSuppression)
class EmailSuppressionAdmin(admin.ModelAdmin):
    list_display = ["address", "reason", "created_at"]
    list_filter = ["reason"]
    search_fields = ["address"]
    readonly_fields = ["created_at"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "channel", "to", "subject", "created_at"]
    list_filter = ["channel"]
    search_fields = ["to", "subject", "provider_message_id"]
    readonly_fields = [
        "channel",
        "to",
        "from_address",
        "subject",
        "body",
        "html_body",
        "headers",
        "provider_message_id",
        "created_at",
    ]
