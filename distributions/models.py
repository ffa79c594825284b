"""Models of distributions: the development outbox (more comes with surveys)."""

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


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
