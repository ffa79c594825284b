"""Workflows with their event and tasks; deliveries, notifications, runs and task runs."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from core.fields import OrderedJSONField


def new_event_token() -> str:
    # 192 random bits, URL-safe: the event URL is the secret Salesforce posts to.
    return secrets.token_urlsafe(24)


class OnFailure(models.TextChoices):
    STOP = "stop", "Stop the run"
    CONTINUE = "continue", "Continue with the next task"


class Workflow(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workflows"
    )
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    conditions = OrderedJSONField(default=dict, blank=True)
    on_failure = models.CharField(max_length=10, choices=OnFailure.choices, default=OnFailure.STOP)
    notify_owner_on_failure = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class EventType(models.TextChoices):
    SALESFORCE_OUTBOUND_MESSAGE = "salesforce_outbound_message", "Salesforce Outbound Message"


class Event(models.Model):
    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, related_name="event")
    type = models.CharField(
        max_length=40, choices=EventType.choices, default=EventType.SALESFORCE_OUTBOUND_MESSAGE
    )
    object_name = models.CharField(
        max_length=100, help_text="Salesforce object API name: Case, Lead, Survey_Request__c…"
    )
    organization_id = models.CharField(
        max_length=18, blank=True, help_text="When set, messages from another org are refused."
    )
    # Fields the admin expects (for the dynamic-text menu and the test message);
    # fields actually received are read from stored notifications.
    fields = models.JSONField(default=list, blank=True)
    token = models.CharField(max_length=64, unique=True, default=new_event_token, editable=False)

    def __str__(self) -> str:
        return f"{self.get_type_display()} on {self.object_name}"

    @property
    def url(self) -> str:
        return f"{settings.PUBLIC_BASE_URL}/events/salesforce/{self.token}/"


class Task(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="tasks")
    position = models.PositiveIntegerField()
    type = models.CharField(max_length=60)
    config = OrderedJSONField(default=dict, blank=True)

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "position"], name="task_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.position + 1}. {self.type}"


class DeliveryOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class Delivery(models.Model):
    """One HTTP POST the Salesforce endpoint received, accepted or not."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No index of its own: delivery_workflow_recent starts with it (fewer writes per POST).
    workflow = models.ForeignKey(
        Workflow,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        db_index=False,
    )
    outcome = models.CharField(max_length=10, choices=DeliveryOutcome.choices)
    reason = models.TextField(blank=True)
    fault_code = models.CharField(max_length=20, blank=True)
    http_status = models.PositiveSmallIntegerField(default=200)
    notification_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    # The notification ids of those duplicates (received before, or twice in this message).
    duplicate_ids = OrderedJSONField(default=list, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    body_bytes = models.PositiveIntegerField(default=0)
    organization_id = models.CharField(max_length=18, blank=True)
    object_type = models.CharField(max_length=100, blank=True)
    # The start of a rejected body (SessionId redacted), so an admin can see what came.
    body_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["workflow", "-received_at"], name="delivery_workflow_recent"),
            models.Index(fields=["outcome", "-received_at"], name="delivery_outcome_recent"),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.outcome})"


class Notification(models.Model):
    """A Salesforce notification, stored once per event however often it is delivered."""

    # No index of its own: the unique constraint (event, notification_id) starts with it.
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    notification_id = models.CharField(max_length=40)
    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT, related_name="notifications")
    received_at = models.DateTimeField(auto_now_add=True)
    # Searched through Run.record_id (indexed there); no second index to write here.
    record_id = models.CharField(max_length=40, blank=True)
    payload = OrderedJSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "notification_id"], name="notification_once_per_event"
            )
        ]

    def __str__(self) -> str:
        return self.notification_id


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


RUN_FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)


class RunTrigger(models.TextChoices):
    SALESFORCE = "salesforce", "Salesforce"
    TEST = "test", "Test message"
    REPLAY = "replay", "Replay"


class Run(models.Model):
    # No index of its own: run_workflow_recent and run_workflow_status_recent start with it.
    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(
        max_length=12, choices=RunTrigger.choices, default=RunTrigger.SALESFORCE
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    reason = models.TextField(blank=True)
    # Copied from the payload / the contact so reports can search without JSON lookups.
    record_id = models.CharField(max_length=40, blank=True)
    email = models.CharField(max_length=254, blank=True)
    # The number (E.164) a run that stopped before saving a contact would have used
    # (skipped on its conditions, failed early); other runs are found by their lines.
    phone = models.CharField(max_length=32, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # When a temporary failure waits for its next try (back-off); the sweeper picks it up.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Last time the run was handed to the queue; the sweeper re-enqueues stale ones.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Last time someone retried the failed run by hand: temporary failures are retried
    # for XMFLOWS_RETRY_WINDOW_SECONDS from then, as from created_at before.
    retried_at = models.DateTimeField(null=True, blank=True)
    # What earlier tasks left for later ones (contact id, transaction id), so a run
    # resumed after a crash or a retry continues where it stopped.
    state = OrderedJSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["workflow", "-id"], name="run_workflow_recent"),
            models.Index(fields=["status", "-id"], name="run_status_recent"),
            # Reports filter on workflow and status together; with only the two
            # single-column indexes, a rare status of a busy workflow is found by
            # walking all that workflow's runs (bench/reports.py).
            models.Index(fields=["workflow", "status", "-id"], name="run_workflow_status_recent"),
            models.Index(fields=["record_id"], name="run_record_id"),
            # "Why not sent?" by email, in any case: selectors.runs_matching compares
            # lower() on both sides, which a plain index on email cannot serve.
            models.Index(Lower("email"), name="run_email_lower"),
            # "Why not sent?" by phone number, for the few runs that keep one.
            models.Index(fields=["phone"], name="run_phone", condition=~Q(phone="")),
            models.Index(fields=["created_at"], name="run_created_at"),
            models.Index(
                fields=["next_attempt_at"],
                name="run_waiting_retry",
                condition=Q(next_attempt_at__isnull=False),
            ),
            models.Index(
                fields=["status", "enqueued_at"],
                name="run_unfinished",
                condition=Q(status__in=["queued", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class TaskRunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    WAITING_RETRY = "waiting_retry", "Waiting to retry"
    NOT_RUN = "not_run", "Not run"


class TaskRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="task_runs")
    position = models.PositiveIntegerField()
    type = models.CharField(max_length=60)
    status = models.CharField(
        max_length=14, choices=TaskRunStatus.choices, default=TaskRunStatus.PENDING
    )
    output = OrderedJSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="taskrun_once_per_position")
        ]

    def __str__(self) -> str:
        return f"{self.type} ({self.status})"


class SignInThrottle(models.Model):
    """Failed sign-ins counted for one key: a username from one address
    ("user:<name>|ip:<address>") or an address alone ("ip:<address>"). Past the limit
    (xmflows/sign_in.py) the key is refused until `locked_until`; deleting the
    row (admin) lifts the block."""

    key = models.CharField(max_length=250, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    last_failure_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "sign-in throttle"

    def __str__(self) -> str:
        return self.key
