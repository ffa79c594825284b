"""Two-way SMS surveys through the real entry points: the Salesforce endpoint opens the
conversation, the inbound webhook carries the replies, TwiML carries our answers."""

import re
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import responses
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from distributions import jobs
from distributions.models import (
    Conversation,
    Recipient,
    SmsMessage,
)
from surveys.models import Response, SurveyLink
from tests.distributions.builders import make_survey
from tests.distributions.conftest import TWILIO_ACCOUNT_SID
from tests.distributions.sms_builders import (
    PHONE,
    inbound,
    make_sms_workflow,
    post_twilio,
    send_sms_case,
)

pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = [
    {"type": "nps", "text": "How likely are you to recommend us, ${m://FirstName}?"},
    {"type": "single_choice", "text": "How did you reach us?", "choices": ["Phone", "Email"]},
    {
        "type": "multiple_choice",
        "text": "What mattered?",
        "choices": ["Speed", "Price", "Staff"],
        "required": False,
    },
    {"type": "text", "text": "Anything else?", "required": False},
]


def _messages(response) -> list[str]:
    """The <Message> texts of a TwiML answer."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    body = response.content.decode()
    assert "<Response" in body
    return [
        text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        for text in re.findall(r"<Message>(.*?)</Message>", body, re.DOTALL)
    ]


@pytest.fixture
def survey(admin_user):
    return make_survey(
        owner=admin_user,
        questions=QUESTIONS,
        thank_you_text="Thanks, ${m://FirstName}, that helps a lot!",  # piped
    )


@pytest.fixture
def workflow(admin_user, survey):
    return make_sms_workflow(owner=admin_user, survey=survey, channel="sms_survey")


def _open(client, workflow, outbox) -> Recipient:
    run = send_sms_case(client, workflow)
    task = run.task_runs.get()
    assert task.status == "succeeded", task.error
    line = Recipient.objects.get(workflow_run_id=run.pk)
    assert line.get_status_display() == "Sent"
    return line


def test_a_complete_conversation(client, api_client, workflow, survey, sms_memory_backend):
    outbox = sms_memory_backend
    line = _open(client, workflow, outbox)
    case_number = line.message.snapshot["event_fields"]["CaseNumber"]
    # The opening text, then the first question as its own text.
    assert [sent.body for sent in outbox] == [
        f"Hi Jonas, 2 quick questions about case {case_number}.",
        "How likely are you to recommend us, Jonas?\nReply with a number from 0 to 10.",
    ]
    assert all(sent.to == PHONE for sent in outbox)
    conversation = Conversation.objects.get()
    assert (conversation.status, conversation.question_index) == ("open", 0)

    # An invalid reply: a short hint and the question again; nothing recorded.
    assert _messages(inbound(client, "eleven")) == [
        "Sorry, please reply with a number from 0 to 10.\n"
        "How likely are you to recommend us, Jonas?"
    ]
    assert not Response.objects.exists()
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"

    # Valid answers, one question at a time.
    assert _messages(inbound(client, " 9 ")) == [
        "How did you reach us?\n1. Phone\n2. Email\nReply with the number of one option."
    ]
    line.refresh_from_db()
    assert line.get_status_display() == "Survey Started"
    assert line.started_at is not None
    assert _messages(inbound(client, "email")) == [
        "What mattered?\n1. Speed\n2. Price\n3. Staff\n"
        "Reply with one or more numbers, e.g. 1,3. Reply SKIP to skip."
    ]
    assert _messages(inbound(client, "4")) == [
        "Sorry, please reply with numbers from 1 to 3, e.g. 1,3. Or reply SKIP to skip.\n"
        "What mattered?\n1. Speed\n2. Price\n3. Staff"
    ]
    assert _messages(inbound(client, "1,3")) == ["Anything else?\nReply SKIP to skip."]
    assert _messages(inbound(client, "Quick & friendly <3")) == ["Thanks, Jonas, that helps a lot!"]

    # The response: answers typed as the web survey stores them, embedded data frozen.
    response = Response.objects.get()
    questions = list(survey.questions.order_by("position"))
    assert response.answers == {
        str(questions[0].pk): 9,
        str(questions[1].pk): "Email",
        str(questions[2].pk): ["Speed", "Staff"],
        str(questions[3].pk): "Quick & friendly <3",
    }
    assert response.embedded_data == {"CaseNumber": case_number, "Priority": "High"}
    assert response.finished_at is not None
    shown = api_client.get("/api/v1/responses/", {"survey": survey.pk}).json()["results"][0]
    assert shown["answers"][str(questions[0].pk)] == 9
    line.refresh_from_db()
    assert line.get_status_display() == "Survey Finished"
    assert line.response_id == response.pk
    conversation.refresh_from_db()
    assert conversation.status == "finished"
    assert conversation.invalid_replies == 2

    # The outbox (development) shows the whole conversation, replies included.
    assert outbox[-1].body == "Thanks, Jonas, that helps a lot!"
    # Later replies are ignored, with the reason recorded, on the conversation they
    # came after.
    assert _messages(inbound(client, "one more thing")) == []
    last = SmsMessage.objects.filter(direction="in").last()
    assert last.outcome == (
        "ignored: the two-way survey with this number ended (finished: all questions answered)"
    )
    assert last.conversation == conversation
    texts = list(conversation.messages.values_list("direction", "body"))
    assert texts[0] == ("out", f"Hi Jonas, 2 quick questions about case {case_number}.")
    assert texts[2] == ("in", "eleven")

    # The API shows the conversation like the admin does, every text included.
    listed = api_client.get("/api/v1/sms-conversations/", {"phone": PHONE}).json()
    assert listed["count"] == 1
    shown = listed["results"][0]
    assert (shown["status"], shown["distribution"]) == ("finished", line.distribution_id)
    assert ("in", "eleven") in [(m["direction"], m["body"]) for m in shown["messages"]]


def test_stop_in_the_middle_then_start(client, workflow, sms_memory_backend):
    outbox = sms_memory_backend
    line = _open(client, workflow, outbox)
    assert _messages(inbound(client, "8"))  # question 2 comes back
    sent_before = len(outbox)

    assert _messages(inbound(client, "  stop ")) == []
    contact = Contact.objects.get()
    assert contact.sms_opted_out and contact.sms_opted_out_source == "SMS STOP"
    conversation = Conversation.objects.get()
    assert conversation.status == "stopped"
    line.refresh_from_db()
    assert line.get_status_display() == "Opted Out"
    assert line.error == "replied STOP by SMS"
    # Nothing more is sent: replies are ignored, new cases are refused.
    assert _messages(inbound(client, "1")) == []
    run = send_sms_case(client, workflow)
    assert run.task_runs.get().output["recipient_status"] == "Opted Out"
    assert len(outbox) == sent_before
    # The partial answer is kept.
    assert list(Response.objects.get().answers.values()) == [8]

    # START opts back in (no reply of ours: Twilio confirms it itself).
    assert _messages(inbound(client, "Start")) == []
    contact.refresh_from_db()
    assert not contact.sms_opted_out and contact.sms_opted_out_source == "SMS START"
    assert len(outbox) == sent_before
    # A new survey goes out again, in a new conversation.
    _open(client, workflow, outbox)
    assert Conversation.objects.filter(status="open").count() == 1
    assert len(outbox) == sent_before + 2


def test_help_answers_the_configured_text(client, settings, sms_memory_backend):
    settings.XMFLOWS_SMS_HELP_TEXT = "Acme surveys. Reply STOP to opt out."
    assert _messages(inbound(client, "HELP")) == ["Acme surveys. Reply STOP to opt out."]


def test_a_silent_conversation_times_out(client, workflow, sms_memory_backend, settings):
    settings.XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS = 24
    _open(client, workflow, sms_memory_backend)
    conversation = Conversation.objects.get()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_activity_at=timezone.now() - timedelta(hours=23)
    )
    assert jobs.expire_sms_conversations() == 0
    Conversation.objects.filter(pk=conversation.pk).update(
        last_activity_at=timezone.now() - timedelta(hours=25)
    )
    assert jobs.expire_sms_conversations() == 1
    conversation.refresh_from_db()
    assert conversation.status == "timed_out"
    assert conversation.close_reason == "no reply for 24 hours"
    # The line keeps its status and says why no answer will come.
    line = Recipient.objects.get()
    assert (line.get_status_display(), line.error) == (
        "Sent",
        "the two-way SMS survey timed out: no reply for 24 hours",
    )
    # A late reply gets nothing and records nothing in a response; it is kept on
    # the conversation with the reason.
    assert _messages(inbound(client, "9")) == []
    assert not Response.objects.exists()
    late = SmsMessage.objects.get(direction="in")
    assert late.conversation == conversation
    assert late.outcome == (
        "ignored: the two-way survey with this number ended (timed out: no reply for 24 hours)"
    )


def test_a_timed_out_conversation_is_noticed_when_the_reply_comes(
    client, workflow, sms_memory_backend
):
    _open(client, workflow, sms_memory_backend)
    Conversation.objects.update(last_activity_at=timezone.now() - timedelta(days=2))
    assert _messages(inbound(client, "9")) == []
    assert Conversation.objects.get().status == "timed_out"
    reply = SmsMessage.objects.filter(direction="in").get()
    assert reply.outcome.startswith("ignored: the two-way survey timed out")
    assert reply.conversation == Conversation.objects.get()
    assert Recipient.objects.get().error.startswith("the two-way SMS survey timed out")


def test_a_reply_from_an_unknown_number(client, sms_memory_backend):
    assert _messages(inbound(client, "10", phone="+14155550199")) == []
    (message,) = SmsMessage.objects.all()
    assert (message.direction, message.phone, message.body) == ("in", "+14155550199", "10")
    assert message.outcome == "ignored: no open two-way survey with this number"


def test_a_redelivered_reply_is_answered_once(client, workflow, sms_memory_backend):
    _open(client, workflow, sms_memory_backend)
    first = inbound(client, "9", sid="SM" + "d" * 32)
    again = inbound(client, "9", sid="SM" + "d" * 32)
    assert len(_messages(first)) == 1
    assert _messages(again) == []
    assert Conversation.objects.get().question_index == 1


def test_a_second_survey_to_an_open_conversation_is_refused(
    client, admin_user, workflow, sms_memory_backend
):
    first = _open(client, workflow, sms_memory_backend)
    other = make_sms_workflow(
        owner=admin_user,
        survey=make_survey(owner=admin_user, name="Another survey"),
        channel="sms_survey",
    )
    run = send_sms_case(client, other)
    output = run.task_runs.get().output
    assert output["recipient_status"] == "Skipped"
    assert output["reason"] == (
        "a two-way SMS survey is already open with this number "
        f"(distribution {first.distribution_id})"
    )
    # Replies still answer the first survey.
    assert _messages(inbound(client, "7"))[0].startswith("How did you reach us?")


def test_a_conversation_through_twilio_answers_with_twiml_only(
    client, admin_user, survey, twilio_settings
):
    messages_url = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"
    workflow = make_sms_workflow(owner=admin_user, survey=survey, channel="sms_survey")
    with responses.RequestsMock() as twilio:
        for number in (1, 2):
            twilio.add(responses.POST, messages_url, status=201, json={"sid": f"SM{number:032d}"})
        send_sms_case(client, workflow)
        bodies = [parse_qs(call.request.body)["Body"][0] for call in twilio.calls]
        assert bodies[1].startswith("How likely are you to recommend us, Jonas?")
        # Replies go back in the webhook's TwiML: Twilio sends them, no API call.
        answer = post_twilio(
            client,
            "/hooks/twilio/inbound/",
            {"From": PHONE, "To": "+15005550006", "Body": "10", "MessageSid": "SM" + "e" * 32},
        )
        assert _messages(answer)[0].startswith("How did you reach us?")
        assert len(twilio.calls) == 2
    line = Recipient.objects.get()
    assert line.provider_message_id == "SM" + "1".zfill(32)


def test_admins_see_the_conversation_its_texts_and_answers(
    client, django_user_model, workflow, sms_memory_backend
):
    _open(client, workflow, sms_memory_backend)
    inbound(client, "9")
    inbound(client, "hello", phone="+14155550199")
    conversation = Conversation.objects.get()
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    admin = type(client)()
    admin.force_login(root)
    listing = admin.get("/admin/distributions/conversation/")
    assert listing.status_code == 200
    assert PHONE in listing.content.decode()
    page = admin.get(f"/admin/distributions/conversation/{conversation.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "How likely are you to recommend us, Jonas?" in html  # the texts
    assert "<strong>9</strong>" in html  # the answer recorded
    texts = admin.get("/admin/distributions/smsmessage/", {"direction": "in"})
    assert texts.status_code == 200
    assert "ignored: no open two-way survey with this number" in texts.content.decode()


def test_finishing_on_the_web_closes_the_sms_conversation(
    client, admin_user, workflow, survey, sms_memory_backend
):
    line = _open(client, workflow, sms_memory_backend)
    assert len(_messages(inbound(client, "9"))) == 1  # the first answer, by SMS
    # The respondent follows the personal link instead and finishes there.
    nps, choice = survey.questions.order_by("position")[:2]
    web = Client()
    token = line.link.token
    assert web.get(f"/s/{token}/").status_code == 200
    answers = {f"q{nps.pk}": "9", f"q{choice.pk}": "Email", "action": "finish"}
    assert web.post(f"/s/{token}/", answers).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Survey Finished"
    conversation = Conversation.objects.get()
    assert (conversation.status, conversation.close_reason) == (
        "closed",
        "the survey was finished on the web",
    )
    # A reply by SMS now answers nothing, and says why.
    assert _messages(inbound(client, "Email")) == []
    late = SmsMessage.objects.filter(direction="in").last()
    assert late.outcome == (
        "ignored: the two-way survey with this number ended "
        "(closed: the survey was finished on the web)"
    )
    # The number is free: the next two-way survey to it starts at once.
    other = make_sms_workflow(
        owner=admin_user,
        survey=make_survey(owner=admin_user, name="Another survey"),
        channel="sms_survey",
    )
    run = send_sms_case(client, other)
    assert Recipient.objects.get(workflow_run_id=run.pk).get_status_display() == "Sent"
    assert Conversation.objects.get(status="open").recipient.workflow_run_id == run.pk


def test_a_conversation_closed_by_a_finished_response_names_the_reason_plainly(
    client, workflow, sms_memory_backend
):
    line = _open(client, workflow, sms_memory_backend)
    # Finished elsewhere without this conversation hearing of it (a race with the
    # web page): the next reply finds the response completed.
    SurveyLink.objects.filter(pk=line.link_id).update(finished_at=timezone.now())
    assert _messages(inbound(client, "9")) == ["This survey is already completed. Thank you!"]
    conversation = Conversation.objects.get()
    assert conversation.status == "closed"
    assert "__all__" not in conversation.close_reason
    assert conversation.close_reason == "this survey is already completed"


def test_finishing_on_the_web_after_a_timeout_clears_the_timeout_note(
    client, workflow, survey, sms_memory_backend
):
    line = _open(client, workflow, sms_memory_backend)
    Conversation.objects.update(last_activity_at=timezone.now() - timedelta(days=2))
    assert jobs.expire_sms_conversations() == 1
    line.refresh_from_db()
    assert line.error.startswith("the two-way SMS survey timed out")
    nps, choice = survey.questions.order_by("position")[:2]
    web = Client()
    assert web.get(f"/s/{line.link.token}/").status_code == 200
    answers = {f"q{nps.pk}": "9", f"q{choice.pk}": "Email", "action": "finish"}
    assert web.post(f"/s/{line.link.token}/", answers).status_code == 200
    line.refresh_from_db()
    assert (line.get_status_display(), line.error) == ("Survey Finished", "")


def test_a_timeout_keeps_the_reason_of_a_line_that_failed(client, workflow, sms_memory_backend):
    line = _open(client, workflow, sms_memory_backend)
    Recipient.objects.filter(pk=line.pk).update(status="failed", error="carrier refused (30007)")
    Conversation.objects.update(last_activity_at=timezone.now() - timedelta(days=2))
    assert _messages(inbound(client, "9")) == []
    line.refresh_from_db()
    assert (line.status, line.error) == ("failed", "carrier refused (30007)")


def test_a_reply_long_after_the_end_or_before_the_next_opening_is_not_filed_as_late(
    client, admin_user, workflow, sms_memory_backend
):
    _open(client, workflow, sms_memory_backend)
    Conversation.objects.update(
        status="timed_out",
        closed_at=timezone.now() - timedelta(days=8),
        close_reason="no reply for 24 hours",
    )
    assert _messages(inbound(client, "9")) == []
    old = SmsMessage.objects.filter(direction="in").last()
    assert (old.outcome, old.conversation) == (
        "ignored: no open two-way survey with this number",
        None,
    )
    # A new two-way survey whose opening has not gone yet (a send delay): a text now
    # answers neither that one nor the one that ended.
    Conversation.objects.update(closed_at=timezone.now() - timedelta(hours=1))
    delayed = make_sms_workflow(
        owner=admin_user,
        survey=make_survey(owner=admin_user, name="Later survey"),
        channel="sms_survey",
        send_delay_minutes=60,
    )
    send_sms_case(client, delayed)
    Conversation.objects.create(
        recipient=Recipient.objects.get(status="scheduled"),
        phone=PHONE,
        last_activity_at=timezone.now(),
    )
    assert _messages(inbound(client, "7")) == []
    pending = SmsMessage.objects.filter(direction="in").last()
    assert (pending.outcome, pending.conversation) == (
        "ignored: no open two-way survey with this number",
        None,
    )
