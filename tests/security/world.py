"""A populated database for the security tests: four roles and one object of every kind.

The owner (a staff member) owns a survey and an emailing workflow that has run once
for a Salesforce case, so there are a run, a delivery, a contact, a distribution, a
recipient line with its personal link, an outbox email, a response and a delivery
event; another staff member owns nothing; a superuser; a signed-in user who is not
staff (who can only hold an API token: the admin login refuses them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client, TestCase
from rest_framework.authtoken.models import Token

from distributions.models import (
    DeliveryEvent,
    Distribution,
    EmailSuppression,
    FrequencyRule,
    OutboxMessage,
    Recipient,
    VerifiedSender,
)
from surveys.models import Response, Survey, SurveyLink
from surveys.services import response_record_answers
from tests.distributions.builders import make_distribution_workflow, send_case
from xmflows.models import Delivery, Run, Workflow

ROLES = ("anonymous", "other", "owner", "superuser")
PASSWORD = "pw-Security-123"


@dataclass
class World:
    users: dict[str, Any]
    workflow: Workflow
    run: Run
    survey: Survey
    link: SurveyLink
    line: Recipient
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str) -> Client:
        """A browser session for the role (anonymous: none)."""
        client = Client(raise_request_exception=False)
        if role != "anonymous":
            client.force_login(self.users[role])
        return client

    def token_client(self, role: str) -> Client:
        """An API client that authenticates with the role's DRF token only."""
        return Client(
            raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {self.tokens[role]}"
        )


def build_world(settings) -> World:
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    user_model = get_user_model()
    users = {
        "owner": user_model.objects.create_user(
            "owner", "owner@example.com", PASSWORD, is_staff=True
        ),
        "other": user_model.objects.create_user(
            "other", "other@example.com", PASSWORD, is_staff=True
        ),
        "superuser": user_model.objects.create_superuser("root", "root@example.com", PASSWORD),
        "nonstaff": user_model.objects.create_user("integrator", "int@example.com", PASSWORD),
    }
    workflow = make_distribution_workflow(owner=users["owner"])
    # The tests run in a transaction: run the jobs queued on commit as a worker would.
    with TestCase.captureOnCommitCallbacks(execute=True):
        run = send_case(Client(), workflow)
    line = Recipient.objects.select_related("link").get()
    link = line.link
    # Saved half-way: the first answer given, the survey not finished.
    first_question = link.survey.questions.order_by("position").first()
    response_record_answers(link=link, answers={first_question.pk: 9}, finish=False)
    VerifiedSender.objects.get_or_create(address="@example.org")
    EmailSuppression.objects.create(address="bounced@example.org", reason="hard_bounce")
    FrequencyRule.objects.create(
        name="At most 1 survey per 30 days",
        scope="survey",
        survey=link.survey,
        max_sends=1,
        period_days=30,
    )
    DeliveryEvent.objects.create(
        provider="postmark",
        event_id="evt-1",
        event_type="delivered",
        message_id="m-1",
        occurred_at=line.created_at,
        recipient=line,
    )
    tokens = {role: Token.objects.create(user=user).key for role, user in users.items()}
    assert Distribution.objects.exists() and OutboxMessage.objects.exists()
    assert Delivery.objects.exists() and Response.objects.exists()
    return World(
        users=users,
        workflow=workflow,
        run=run,
        survey=Survey.objects.get(),
        link=link,
        line=line,
        tokens=tokens,
    )
