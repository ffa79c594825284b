"""Review of the respondent's side of two-way SMS surveys: a survey that can no longer
be answered says so at the next reply, whatever that reply is."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from distributions.models import Conversation, Recipient
from surveys.models import Response, SurveyLink
from surveys.services import survey_deactivate
from tests.distributions.builders import make_survey
from tests.distributions.sms_builders import inbound, make_sms_workflow, send_sms_case

pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us?"},
    {"type": "text", "text": "What went well?", "required": False},
    {"type": "text", "text": "What could be better?", "required": False},
]


def _messages(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [
        text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        for text in re.findall(r"<Message>(.*?)</Message>", response.content.decode(), re.S)
    ]


@pytest.fixture
def survey(admin_user):
    return make_survey(owner=admin_user, questions=QUESTIONS)


@pytest.fixture
def conversation(client, admin_user, survey, sms_memory_backend):
    send_sms_case(client, make_sms_workflow(owner=admin_user, survey=survey, channel="sms_survey"))
    assert _messages(inbound(client, "9")) == ["What went well?\nReply SKIP to skip."]
    return Conversation.objects.get()


@pytest.mark.parametrize("reply", ["SKIP", "", "Fast answers"])
def test_a_reply_after_the_survey_closed_is_told_so_not_asked_more(
    client, survey, conversation, reply
):
    survey_deactivate(survey=survey)
    assert _messages(inbound(client, reply)) == ["This survey is closed."]
    conversation.refresh_from_db()
    assert (conversation.status, conversation.close_reason) == ("closed", "This survey is closed")
    assert list(Response.objects.get().answers.values()) == [9]
    # Nothing more is asked.
    assert _messages(inbound(client, "Anything")) == []


def test_a_skip_after_the_link_expired_is_told_so_not_asked_more(client, conversation):
    SurveyLink.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert _messages(inbound(client, "skip")) == ["This survey has expired."]
    conversation.refresh_from_db()
    assert conversation.status == "closed"
    assert Recipient.objects.get().get_status_display() == "Survey Started"
