"""Distributions and their recipient lines, delivery events, senders, suppressions, outbox."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Channel(models.TextChoices):
    """What an outbox message is (the outbox only knows email and SMS)."""

    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class DistributionChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    SMS_SURVEY = "sms_survey", "SMS survey"


class Distribution(models.Model):
    """One send of a survey: a workflow task run creates one, with one line per contact."""

    survey = models.ForeignKey(
        "surveys.Survey", on_delete=models.PROTECT, related_name="distributions"
    )
    channel = models.CharField(max_length=12, choices=DistributionChannel.choices)
    # Plain numbers, not foreign keys: distributions imports no xmflows code
    # (CONVENTIONS.md), and the 365-day clean-up of runs must not delete history.
    workflow_run_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    workflow_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="distributions",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The message as configured (templates, sender), for the record; each line keeps
    # its own rendered copy.
    message = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["survey", "-id"], name="distribution_survey_recent")]

    def __str__(self) -> str:
        return f"Distribution {self.pk} ({self.channel})"


class RecipientStatus(models.TextChoices):
    """Short codes stored; the labels are the contract's CSV texts (CONTRACT.md §6).

    distributions.csv_export keeps the same mapping (it imports no Django); a test
    holds the two together.
    """

    PENDING = "pending", "Pending"
    SCHEDULED = "scheduled", "Scheduled"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    STARTED = "started", "Survey Started"
    FINISHED = "finished", "Survey Finished"
    SKIPPED = "skipped", "Skipped"
    OPTED_OUT = "opted_out", "Opted Out"
    FAILED = "failed", "Failed"
    SOFT_BOUNCE = "soft_bounce", "Soft Bounce"
    HARD_BOUNCE = "hard_bounce", "Hard Bounce"
    COMPLAINT = "complaint", "Complaint"


# A status only moves to a higher rank (PITFALLS.md 7: provider events arrive late,
# twice and out of order). Engagement outranks delivery (Survey Finished beats
# Opened beats Delivered); the bad outcomes outrank engagement, so a complaint or an
# opt-out stays visible even if the survey was also answered (its times are kept).
STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "scheduled": 0,
    "sent": 10,
    "soft_bounce": 20,
    "delivered": 30,
    "opened": 40,
    "started": 50,
    "finished": 60,
    "failed": 70,
    "hard_bounce": 80,
    "complaint": 90,
    "opted_out": 100,
    "skipped": 110,
}
# Waiting to be sent: what the sender and the sweeper look at.
UNSENT = ("pending", "scheduled")
# Lines that count as "this message went (or is about to go) to this address" for the
# 12-hour duplicate rule.
COUNTS_AS_SENT = (
    "pending",
    "scheduled",
    "sent",
    "soft_bounce",
    "delivered",
    "opened",
    "started",
    "finished",
    "complaint",
)


class Recipient(models.Model):
    """A distribution line: one contact, its frozen message, and how far it got."""

    distribution = models.ForeignKey(
        Distribution, on_delete=models.CASCADE, related_name="recipients"
    )
    # Copied from the distribution so a survey's history CSV is one index range scan.
    survey = models.ForeignKey(
        "surveys.Survey", on_delete=models.PROTECT, related_name="distribution_recipients"
    )
    channel = models.CharField(max_length=12, choices=DistributionChannel.choices)
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="distribution_lines",
    )
    link = models.OneToOneField(
        "surveys.SurveyLink",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recipient",
    )
    status = models.CharField(
        max_length=12, choices=RecipientStatus.choices, default=RecipientStatus.PENDING
    )
    error = models.TextField(blank=True)

    # Who it went to, as sent: history stays true after the contact changes or is
    # deleted, and the CSV needs no join into the directory.
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    external_data_reference = models.CharField(max_length=200, blank=True)
    record_id = models.CharField(max_length=40, blank=True)
    # A run's report lists its lines by this.
    workflow_run_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    # The envelope, frozen when the line was created (the bodies are in
    # RecipientMessage: see there why).
    to_address = models.CharField(max_length=320, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    reply_to = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    # sha256 of (address, subject, body without personal links): the 12-hour rule.
    message_hash = models.CharField(max_length=64, blank=True, db_index=True)

    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Set and committed before the provider is called (PITFALLS.md 8): a line with
    # this set and no provider id may or may not have been sent.
    sending_started_at = models.DateTimeField(null=True, blank=True)
    # The worker stopped during the provider call and the outcome could not be
    # established; a later delivery event for the line settles it.
    outcome_unknown = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    # When the send job was last queued; None while nothing is queued (scheduled, or
    # waiting for a retry), so the sweeper queues each due line once.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    response_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["distribution", "id"]
        indexes = [
            models.Index(fields=["distribution", "id"], name="recipient_distribution_rows"),
            models.Index(fields=["survey", "id"], name="recipient_survey_rows"),
            models.Index(fields=["status"], name="recipient_status"),
            models.Index(
                fields=["status", "scheduled_for", "next_attempt_at"],
                name="recipient_waiting",
                condition=Q(status__in=UNSENT),
            ),
            models.Index(Lower("email"), name="recipient_email_lower"),
        ]

    def __str__(self) -> str:
        return f"Line {self.pk}: {self.to_address or self.email} ({self.get_status_display()})"

    @property
    def rank(self) -> int:
        return STATUS_RANK.get(self.status, 0)


class RecipientMessage(models.Model):
    """The rendered bodies and the snapshot of one line, frozen when it was created.

    A table of their own because they are large (kilobytes per line) and read once,
    by the send; kept in the line's row they would make every scan of lines (history
    CSV, counts, the sweeper) read all of them: a million lines would be gigabytes
    instead of a few hundred megabytes.
    """

    recipient = models.OneToOneField(
        Recipient, primary_key=True, on_delete=models.CASCADE, related_name="message"
    )
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True)
    # The values piped into the message, and the personal links ("links").
    snapshot = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"Message of line {self.recipient_id}"


class DeliveryEvent(models.Model):
    """One provider event (webhook), kept once: the unique key drops redeliveries."""

    provider = models.CharField(max_length=40)
    event_id = models.CharField(max_length=255)
    recipient = models.ForeignKey(
        Recipient, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    event_type = models.CharField(max_length=40)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # What the event did to the line ("moved to Delivered", "ignored: ...").
    outcome = models.CharField(max_length=200, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="delivery_event_once_per_provider"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.message_id}"


class VerifiedSender(models.Model):
    """A from address ("surveys@example.com") or a whole domain ("@example.com")."""

    address = models.CharField(
        max_length=320,
        unique=True,
        help_text='An address ("support@example.com") or a domain ("@example.com").',
    )
    verified = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address

    def save(self, *args, **kwargs):
        # Stored in one canonical form so lookups are a plain equality: lower case,
        # and a bare domain "example.com" becomes "@example.com".
        value = (self.address or "").strip().lower()
        if value and "@" not in value:
            value = "@" + value
        self.address = value
        super().save(*args, **kwargs)


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Complaint"


class EmailSuppression(models.Model):
    """An address never emailed again: it hard-bounced or its owner complained."""

    address = models.CharField(max_length=320, unique=True, help_text="Stored in lower case.")
    reason = models.CharField(max_length=12, choices=SuppressionReason.choices)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"

    def save(self, *args, **kwargs):
        self.address = (self.address or "").strip().lower()
        super().save(*args, **kwargs)


class OutboxMessage(models.Model):
    """A message the outbox email/SMS backends "sent": the development default."""

    channel = models.CharField(max_length=10, choices=Channel.choices)
    to = models.CharField(max_length=320, db_index=True)
    from_address = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    provider_message_id = models.CharField(max_length=100, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.channel} to {self.to}: {self.subject or self.body[:40]}"
