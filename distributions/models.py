"""Distributions and their recipient lines, delivery events, senders, suppressions, outbox."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator, MaxValueValidator, validate_email
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from core.fields import OrderedJSONField


class Channel(models.TextChoices):
    """What an outbox message is (the outbox only knows email and SMS)."""

    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class DistributionChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    SMS_SURVEY = "sms_survey", "SMS survey"


class MessageKind(models.TextChoices):
    """What a distribution (and each of its lines) sends: the invitation, or a follow-up
    of one (the experience-management convention: Invite, Reminder, ThankYou)."""

    INVITATION = "invitation", "Invitation"
    REMINDER = "reminder", "Reminder"
    THANK_YOU = "thank_you", "Thank-you"


class Distribution(models.Model):
    """One send of a survey: a workflow task run creates one, with one line per contact.

    Reminders and thank-yous are distributions of their own (kind, parent), one per
    invitation distribution and kind, each with one line per contact reminded or
    thanked: the history CSV then shows each message as its own row with its own
    delivery status, and its fixed columns stay as CONTRACT.md §6 has them.
    """

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
    message = OrderedJSONField(default=dict, blank=True)
    kind = models.CharField(
        max_length=12, choices=MessageKind.choices, default=MessageKind.INVITATION
    )
    # The invitation distribution a reminder or thank-you distribution follows up.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="follow_ups"
    )
    # The mailing list the task sent to: mailing-list frequency rules count by it.
    mailing_list = models.ForeignKey(
        "contacts.MailingList",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="distributions",
    )
    # The reminder and thank-you configured on the task ({"reminder": {...},
    # "thank_you": {...}}), read when one of them becomes due.
    follow_up_config = OrderedJSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["survey", "-id"], name="distribution_survey_recent")]
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "kind"],
                condition=Q(parent__isnull=False),
                name="distribution_one_follow_up_per_kind",
            )
        ]

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
    # Invitation, reminder or thank-you (the distribution's kind, copied so frequency
    # rules count a contact's invitations without a join).
    kind = models.CharField(
        max_length=12, choices=MessageKind.choices, default=MessageKind.INVITATION
    )
    # A reminder's or thank-you's invitation line.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="follow_ups"
    )
    # When the reminder configured on the distribution is next considered for this
    # invitation line; None when there is none (left to consider). State in the
    # database, so a restart loses no reminder.
    reminder_due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["distribution", "id"]
        constraints = [
            # A line is reminded once and thanked once, whatever runs twice.
            models.UniqueConstraint(
                fields=["parent", "kind"],
                condition=Q(parent__isnull=False),
                name="recipient_one_follow_up_per_kind",
            )
        ]
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
            models.Index(
                fields=["reminder_due_at"],
                name="recipient_reminder_due",
                condition=Q(reminder_due_at__isnull=False),
            ),
            # Frequency rules count a contact's recent invitations.
            models.Index(fields=["contact", "sent_at"], name="recipient_contact_sent"),
            # "Why not sent?" finds the lines of a number, also after the contact's
            # number changed (xmflows.selectors.runs_matching). Lines with no phone
            # stay out of it.
            models.Index(fields=["phone"], name="recipient_phone", condition=~Q(phone="")),
        ]

    def __str__(self) -> str:
        return f"Line {self.pk}: {self.to_address or self.email} ({self.get_status_display()})"

    @property
    def rank(self) -> int:
        return STATUS_RANK.get(self.status, 0)

    def moves_to(self, status: str) -> bool:
        """Whether `status` replaces the line's: statuses only move forward, and an
        opt-out after the survey was finished does not hide the finished response
        (the contact is opted out all the same; the line's error says so)."""
        if status == RecipientStatus.OPTED_OUT and self.status == RecipientStatus.FINISHED:
            return False
        return STATUS_RANK[status] > self.rank


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
    snapshot = OrderedJSONField(default=dict, blank=True)

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
    raw = OrderedJSONField(default=dict, blank=True)
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


def validate_sender(value: str) -> None:
    """An email address ("support@example.com") or a domain ("@example.com" or
    "example.com")."""
    text = (value or "").strip()
    if "@" in text.lstrip("@"):
        try:
            validate_email(text)
        except ValidationError:
            raise ValidationError(
                f"{text!r} is neither an email address nor a domain", code="invalid"
            ) from None
        return
    try:
        DomainNameValidator(accept_idna=True)(text.lstrip("@"))
    except ValidationError:
        raise ValidationError(
            f"{text!r} is neither an email address nor a domain (e.g. @example.com)",
            code="invalid",
        ) from None


def sender_canonical(value: str) -> str:
    """The one form a sender is stored and compared in: trimmed, lower case, and a bare
    domain ("Example.COM") becomes "@example.com". The model, the API and the admin
    form all use it, so "the same sender" means the same thing everywhere."""
    text = (value or "").strip().lower()
    return "@" + text if text and "@" not in text else text


def sender_keys(from_address: str) -> list[str]:
    """The entries that verify a From address: the address itself and its domain
    ("@example.com"); none for something that is not an address."""
    address = (from_address or "").strip().lower()
    if "@" not in address:
        return []
    return [address, "@" + address.rsplit("@", 1)[1]]


class VerifiedSender(models.Model):
    """A from address ("surveys@example.com") or a whole domain ("@example.com")."""

    address = models.CharField(
        max_length=320,
        unique=True,
        validators=[validate_sender],
        help_text='An address ("support@example.com") or a domain ("@example.com").',
    )
    verified = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address

    def save(self, *args, **kwargs):
        # Stored in one canonical form so lookups are a plain equality.
        self.address = sender_canonical(self.address)
        super().save(*args, **kwargs)


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Complaint"


def suppression_canonical(address: str) -> str:
    """How suppressed addresses are stored and looked up: trimmed, lower case."""
    return (address or "").strip().lower()


class EmailSuppression(models.Model):
    """An address never emailed again: it hard-bounced or its owner complained."""

    address = models.CharField(
        max_length=320, unique=True, validators=[validate_email], help_text="Stored in lower case."
    )
    reason = models.CharField(max_length=12, choices=SuppressionReason.choices)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"

    def save(self, *args, **kwargs):
        self.address = suppression_canonical(self.address)
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


class FrequencyScope(models.TextChoices):
    DIRECTORY = "directory", "Directory"
    MAILING_LIST = "mailing_list", "Mailing list"
    SURVEY = "survey", "Survey"


# Ten years: longer windows mean nothing for contact frequency, and a window must stay
# inside the dates Python can represent (now - period_days).
MAX_PERIOD_DAYS = 3650
PERIOD_DAYS_TOO_LONG = (
    f"the period can be at most {MAX_PERIOD_DAYS} days (10 years); give a shorter period"
)


class FrequencyRule(models.Model):
    """At most `max_sends` survey invitations to one contact per `period_days`.

    The scope says which sends the rule applies to and which earlier sends it counts:
    a directory rule every invitation to a contact of that directory; a mailing-list
    rule invitations sent to that mailing list; a survey rule invitations of that
    survey. Evaluated when a line is sent (distributions.frequency); reminders and
    thank-yous are exempt.
    """

    name = models.CharField(
        max_length=200, help_text='Shown in skip reasons: "At most 1 survey per 30 days".'
    )
    scope = models.CharField(max_length=12, choices=FrequencyScope.choices)
    # Exactly the one matching the scope is set (a constraint holds it): real foreign
    # keys, so a rule cannot point at nothing and goes when its target goes.
    directory = models.ForeignKey(
        "contacts.Directory",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="frequency_rules",
    )
    mailing_list = models.ForeignKey(
        "contacts.MailingList",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="frequency_rules",
    )
    survey = models.ForeignKey(
        "surveys.Survey",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="frequency_rules",
    )
    max_sends = models.PositiveIntegerField(
        help_text="How many invitations a contact may receive within the period (at least 1)."
    )
    period_days = models.PositiveIntegerField(
        validators=[MaxValueValidator(MAX_PERIOD_DAYS, message=PERIOD_DAYS_TOO_LONG)],
        help_text=(
            "The period: the last period_days x 24 hours before the send (at most "
            f"{MAX_PERIOD_DAYS} days). A send exactly that long ago is outside it."
        ),
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        scope="directory",
                        directory__isnull=False,
                        mailing_list__isnull=True,
                        survey__isnull=True,
                    )
                    | Q(
                        scope="mailing_list",
                        directory__isnull=True,
                        mailing_list__isnull=False,
                        survey__isnull=True,
                    )
                    | Q(
                        scope="survey",
                        directory__isnull=True,
                        mailing_list__isnull=True,
                        survey__isnull=False,
                    )
                ),
                name="frequency_rule_target_matches_scope",
                violation_error_message="set exactly the target of the rule's scope",
            ),
            models.CheckConstraint(
                condition=Q(max_sends__gte=1, period_days__gte=1),
                name="frequency_rule_positive",
                violation_error_message="max_sends and period_days must be at least 1",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target(self):
        return {
            FrequencyScope.DIRECTORY: self.directory,
            FrequencyScope.MAILING_LIST: self.mailing_list,
            FrequencyScope.SURVEY: self.survey,
        }.get(self.scope)

    @property
    def target_id(self) -> int | None:
        return {
            FrequencyScope.DIRECTORY: self.directory_id,
            FrequencyScope.MAILING_LIST: self.mailing_list_id,
            FrequencyScope.SURVEY: self.survey_id,
        }.get(self.scope)

    def describe_scope(self) -> str:
        """'directory Demo directory', 'mailing list Customers', 'survey NPS'."""
        target = self.target
        label = self.get_scope_display().lower()
        return f"{label} {target}" if target is not None else label


# --- Two-way SMS surveys (channel sms_survey) ---------------------------------------------


class ConversationStatus(models.TextChoices):
    OPEN = "open", "Open"
    FINISHED = "finished", "Finished"
    TIMED_OUT = "timed_out", "Timed out"
    STOPPED = "stopped", "Stopped (opted out)"
    # The survey was closed, the link expired, or the response was finished on the web.
    CLOSED = "closed", "Closed"
    # The opening text could not be sent: there never was a conversation.
    FAILED = "failed", "Failed"


class Conversation(models.Model):
    """A two-way SMS survey with one phone number: the next question and how it ended.

    At most one conversation per number is open (a partial unique constraint), so two
    surveys are never mixed in one thread of messages: a reply always answers the one
    question the number was last asked.
    """

    recipient = models.OneToOneField(
        Recipient, on_delete=models.CASCADE, related_name="conversation"
    )
    phone = models.CharField(max_length=20, db_index=True, help_text="E.164")
    status = models.CharField(
        max_length=12, choices=ConversationStatus.choices, default=ConversationStatus.OPEN
    )
    # 0-based index into the survey's questions in their order: the question asked last
    # (and answered by the next reply).
    question_index = models.PositiveIntegerField(default=0)
    invalid_replies = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # The last message either way; the conversation times out this long after it
    # (XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS).
    last_activity_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["phone"],
                condition=Q(status="open"),
                name="sms_conversation_one_open_per_phone",
                violation_error_message="a two-way SMS survey is already open with this number",
            )
        ]
        indexes = [
            models.Index(
                fields=["last_activity_at"],
                name="sms_conversation_open_activity",
                condition=Q(status="open"),
            )
        ]

    def __str__(self) -> str:
        return f"Conversation {self.pk} with {self.phone} ({self.get_status_display()})"


class SmsDirection(models.TextChoices):
    INBOUND = "in", "Inbound"
    OUTBOUND = "out", "Outbound"


class SmsMessage(models.Model):
    """One text of a two-way conversation, and every inbound text (STOP, HELP, replies
    from unknown numbers): what was said, and what xmflows did with it."""

    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=3, choices=SmsDirection.choices)
    # The respondent's number (From of an inbound text, To of an outbound one).
    phone = models.CharField(max_length=40, db_index=True)
    body = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=64, blank=True)
    # "answer to question 2 recorded", "not an answer: …", "opted out", "ignored: …".
    outcome = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Twilio may deliver one inbound webhook twice: it is handled once.
            models.UniqueConstraint(
                fields=["direction", "provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="sms_message_once_per_provider_id",
            )
        ]

    def __str__(self) -> str:
        arrow = "from" if self.direction == SmsDirection.INBOUND else "to"
        return f"SMS {arrow} {self.phone}: {self.body[:40]}"
