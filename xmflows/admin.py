"""Admin pages for workflows, runs and deliveries (raw data; reports come separately)."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from xmflows.models import (
    Delivery,
    Event,
    Notification,
    Run,
    SignInThrottle,
    Task,
    TaskRun,
    Workflow,
)
from xmflows.services import NotOwnerError
from xmflows.sign_in import AdminSignInForm

# The admin's own login page counts and blocks wrong passwords too (xmflows/sign_in.py).
admin.site.login_form = AdminSignInForm


class EventInline(admin.StackedInline):
    model = Event
    can_delete = False
    fields = ["type", "object_name", "organization_id", "fields", "event_url"]
    readonly_fields = fields

    @admin.display(description="Event URL (paste into Salesforce)")
    def event_url(self, obj: Event) -> str:
        return obj.url if obj.pk else ""

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    can_delete = False
    fields = ["position", "type", "config"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    """Workflows as stored. They are built in the workflow builder, which validates a
    definition as a whole; here only the owner may rename, switch on or off, or delete
    one (the same rule as the API and the builder), and the event, conditions and tasks
    are shown, not edited."""

    list_display = ["name", "owner", "enabled", "object_name", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "event__object_name"]
    inlines = [EventInline, TaskInline]
    fields = [
        "name",
        "enabled",
        "on_failure",
        "notify_owner_on_failure",
        "owner",
        "conditions",
        "builder",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["owner", "conditions", "builder", "created_at", "updated_at"]

    @admin.display(description="Object")
    def object_name(self, obj: Workflow) -> str:
        event = getattr(obj, "event", None)
        return event.object_name if event else ""

    @admin.display(description="Workflow builder")
    def builder(self, obj: Workflow) -> str:
        url = reverse("workflow-edit", args=[obj.pk])
        return format_html('<a href="{}">Edit the event, conditions and tasks</a>', url)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner", "event")

    def has_add_permission(self, request) -> bool:
        # New workflows come from the builder (or the API), which validate them.
        return False

    def _is_owner(self, request, obj) -> bool:
        return obj is None or obj.owner_id == request.user.pk

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._is_owner(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self._is_owner(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        workflow = self.get_object(request, object_id)
        if workflow is not None and not self._is_owner(request, workflow):
            # Django's own refusal is a bare 403: say why, as the pages and the API do.
            raise PermissionDenied(
                f"{NotOwnerError.message} (workflow '{workflow.name}' belongs to "
                f"{workflow.owner.get_username()})"
            )
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request):
        # Bulk delete would skip the owner check of each workflow.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class TaskRunInline(admin.TabularInline):
    model = TaskRun
    extra = 0
    can_delete = False
    fields = ["position", "type", "status", "output", "error", "attempts", "finished_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # task runs are the engine's record of what it did


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "workflow", "status", "record_id", "email", "created_at", "finished_at"]
    list_filter = ["status", "trigger", "workflow"]
    search_fields = ["record_id", "email"]
    # Every field: a run is the record of what happened (retry it from its page).
    readonly_fields = [
        "workflow",
        "notification",
        "trigger",
        "status",
        "reason",
        "record_id",
        "email",
        "phone",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "next_attempt_at",
        "enqueued_at",
        "retried_at",
        "input_payload",
    ]
    exclude = ["state"]
    inlines = [TaskRunInline]
    show_full_result_count = False

    @admin.display(description="Input payload")
    def input_payload(self, obj: Run):
        import json

        return format_html("<pre>{}</pre>", json.dumps(obj.notification.payload, indent=2))

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "received_at",
        "outcome",
        "workflow",
        "notification_count",
        "duplicate_count",
        "reason",
        "remote_addr",
    ]
    list_filter = ["outcome", "workflow"]
    search_fields = ["reason", "remote_addr", "organization_id"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["notification_id", "event", "record_id", "received_at"]
    search_fields = ["notification_id", "record_id"]
    readonly_fields = [
        "event",
        "notification_id",
        "delivery",
        "record_id",
        "payload",
        "received_at",
    ]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A notification is what makes a Salesforce retry of it a duplicate: deleting
        # one would let the same message run (and send) again. The history clean-up
        # deletes them after XMFLOWS_HISTORY_DAYS, long after Salesforce stops retrying.
        return False


@admin.register(SignInThrottle)
class SignInThrottleAdmin(admin.ModelAdmin):
    """Failed sign-ins being counted, and blocked keys: delete a row to lift its block."""

    list_display = ["key", "failures", "last_failure_at", "locked_until", "blocked_now"]
    search_fields = ["key"]
    ordering = ["-last_failure_at"]
    readonly_fields = ["key", "failures", "window_started_at", "last_failure_at", "locked_until"]

    @admin.display(boolean=True, description="Blocked now")
    def blocked_now(self, obj: SignInThrottle) -> bool:
        from django.utils import timezone

        return bool(obj.locked_until and obj.locked_until > timezone.now())

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def response_delete(self, request, obj_display, obj_id):
        # Back to the list (Django goes to the admin's index when rows cannot be changed).
        super().response_delete(request, obj_display, obj_id)
        return HttpResponseRedirect(reverse("admin:xmflows_signinthrottle_changelist"))
