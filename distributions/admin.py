"""Admin pages: distributions with their lines, senders, suppressions, outbox, events."""

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from distributions.models import (
    DeliveryEvent,
    Distribution,
    EmailSuppression,
    FrequencyRule,
    OutboxMessage,
    Recipient,
    RecipientMessage,
    VerifiedSender,
    sender_canonical,
    suppression_canonical,
    validate_sender,
)
from distributions.selectors import (
    sender_duplicate_error,
    senders_in_use,
    suppression_duplicate_error,
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
    # to_address: the email address or the phone number the line went to.
    fields = ["to_address", "first_name", "last_name", "status", "error", "sent_at", "finished_at"]
    readonly_fields = fields
    max_num = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Distribution)
class DistributionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "survey",
        "channel",
        "kind",
        "parent",
        "workflow_run_link",
        "created_by",
        "created_at",
    ]
    list_filter = ["channel", "kind"]
    search_fields = ["survey__name", "=workflow_run_id", "=id"]
    readonly_fields = [
        "survey",
        "channel",
        "kind",
        "parent",
        "mailing_list",
        "workflow_run_id",
        "workflow_id",
        "created_by",
        "created_at",
        "message",
        "follow_up_config",
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


class FollowUpInline(admin.TabularInline):
    """An invitation line's reminder and thank-you, each with its own status."""

    model = Recipient
    fk_name = "parent"
    verbose_name = "follow-up message"
    verbose_name_plural = "follow-up messages (reminder, thank-you)"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["kind", "status", "error", "subject", "sent_at", "delivered_at", "opened_at"]
    readonly_fields = fields
    max_num = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyAdmin):
    inlines = [RecipientMessageInline, FollowUpInline]
    list_display = [
        "id",
        "distribution_id",
        "kind",
        "channel",
        "to_address",
        "status",
        "error",
        "sent_at",
        "created_at",
    ]
    list_filter = ["status", "channel", "kind"]
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
        "kind",
        "parent",
        "reminder_due_at",
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


class VerifiedSenderForm(forms.ModelForm):
    class Meta:
        model = VerifiedSender
        fields = ["address", "verified"]

    def clean_address(self) -> str:
        value = self.cleaned_data["address"]
        # Checked as typed, so the message quotes what the user wrote.
        validate_sender(value)
        canonical = sender_canonical(value)
        # The unique constraint compares stored (canonical) values: a duplicate that
        # differs only by case or a missing "@" must be caught here, not by the database.
        duplicate = sender_duplicate_error(address=canonical, exclude_pk=self.instance.pk)
        if duplicate:
            raise forms.ValidationError(duplicate)
        return canonical


@admin.register(VerifiedSender)
class VerifiedSenderAdmin(admin.ModelAdmin):
    form = VerifiedSenderForm
    list_display = ["address", "verified", "created_at"]
    list_filter = ["verified"]
    search_fields = ["address"]

    def get_deleted_objects(self, objs, request):
        # A sender a workflow still sends from (and nothing else verifies) is listed as
        # protected, and the admin then refuses the deletion, single or bulk, as for a
        # PROTECT key; the template says why in plain words.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_use = senders_in_use(obj.pk for obj in objs)
        return deleted, counts, perms_needed, [*protected, *in_use]


class EmailSuppressionForm(forms.ModelForm):
    class Meta:
        model = EmailSuppression
        fields = ["address", "reason", "detail"]

    def clean_address(self) -> str:
        canonical = suppression_canonical(self.cleaned_data["address"])
        duplicate = suppression_duplicate_error(address=canonical, exclude_pk=self.instance.pk)
        if duplicate:
            raise forms.ValidationError(duplicate)
        return canonical


@admin.register(EmailSuppression)
class EmailSuppressionAdmin(admin.ModelAdmin):
    form = EmailSuppressionForm
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


@admin.register(FrequencyRule)
class FrequencyRuleAdmin(admin.ModelAdmin):
    """Contact frequency rules; a send they stop is Skipped with the rule's name."""

    list_display = ["name", "scope", "target", "max_sends", "period_days", "enabled"]
    list_filter = ["scope", "enabled"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "max_sends", "period_days"]}),
        (
            "Applies to",
            {
                "fields": ["scope", "directory", "mailing_list", "survey"],
                "description": (
                    "Choose the scope, then set only its target: a directory rule counts "
                    "every invitation to a contact of the directory; a mailing-list rule "
                    "invitations sent to that list; a survey rule invitations of that "
                    "survey. Reminders and thank-yous are never limited."
                ),
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    list_select_related = ["directory", "mailing_list", "survey"]

    @admin.display(description="Target")
    def target(self, obj: FrequencyRule) -> str:
        return str(obj.target) if obj.target is not None else "—"


# Two-way SMS surveys: conversations and texts (a module of their own).
from distributions import sms_admin  # noqa: E402, F401
