"""Two-way SMS surveys: open a conversation, ask the questions one by one, take the replies
(and STOP, START, HELP), time out the silent ones.

A conversation belongs to one sms_survey line and one number; at most one per number
is open, so a reply always answers the question that number was asked last. Answers
are recorded through surveys.services.response_record_answers on the line's personal
link: the same validation, the same embedded data snapshot, and the same Survey
Started / Survey Finished signals as the web survey.

Replies to an inbound text are returned to the webhook, which answers with them as
TwiML; Twilio sends them. The development and test backends have no provider reading
TwiML, so `inbound_replies_deliver` sends the replies through them too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from distributions.channels.sms import SmsSendError, get_backend, send_text
from distributions.models import (
    UNSENT,
    Conversation,
    ConversationStatus,
    Recipient,
    RecipientStatus,
    SmsDirection,
    SmsMessage,
)
from distributions.sms_services import (
    OPTED_OUT_SOURCE,
    conversation_close,
    conversation_is_stale,
    conversation_time_out,
    conversation_timeout,
    lines_note_time_out,
    number_opted_out,
    open_conversation_for,
    phone_normalize,
    phone_opt_in,
    phone_opt_out,
    timeout_reason,
)
from distributions.sms_text import QuestionSpec, ReplyError, keyword, parse_reply, prompt, reask
from surveys.exceptions import AnswerError
from surveys.models import Question
from surveys.services import (
    ALREADY_COMPLETED,
    LINK_EXPIRED,
    SURVEY_CLOSED,
    render_question_text,
    render_thank_you_text,
    response_record_answers,
    survey_link_is_expired,
)

logger = logging.getLogger(__name__)

# A reply this long after its survey ended is no longer taken as a late answer to it.
LATE_REPLY_WINDOW = timedelta(days=7)
# What the respondent reads when the survey can no longer be answered.
CLOSED_TEXTS = {
    "completed": "This survey is already completed. Thank you!",
    "expired": "This survey has expired.",
    "closed": "This survey is closed.",
}
# What the conversation records as the reason it closed (as the survey services say it).
CLOSE_REASONS = {"completed": ALREADY_COMPLETED, "expired": LINK_EXPIRED, "closed": SURVEY_CLOSED}


# --- Opening ----------------------------------------------------------------------------


def conversation_open(*, line: Recipient, now: datetime) -> Conversation | None:
    """The line's open conversation, created (or reopened) just before its opening text
    is sent, under the line's lock; None when another one holds the number."""
    existing = Conversation.objects.filter(recipient_id=line.pk).first()
    if existing is not None and existing.status == ConversationStatus.OPEN:
        existing.last_activity_at = now
        existing.save(update_fields=["last_activity_at"])
        return existing
    if open_conversation_for(phone=line.to_address, exclude_recipient_id=line.pk, now=now):
        return None
    try:
        with transaction.atomic():
            if existing is not None:
                # Closed by an earlier attempt that failed; this retry starts it anew.
                Conversation.objects.filter(pk=existing.pk).update(
                    status=ConversationStatus.OPEN,
                    question_index=0,
                    last_activity_at=now,
                    closed_at=None,
                    close_reason="",
                )
                existing.refresh_from_db()
                return existing
            return Conversation.objects.create(
                recipient=line, phone=line.to_address, last_activity_at=now
            )
    except IntegrityError:
        # A concurrent send opened one for this number first (the partial unique
        # constraint): never two surveys in one thread.
        return None


def _questions(survey) -> list[Question]:
    return list(survey.questions.order_by("position", "pk"))


def _spec(question: Question, link) -> QuestionSpec:
    return QuestionSpec(
        type=question.type,
        text=render_question_text(question, link),
        choices=tuple(question.choices or ()),
        scale_max=question.scale_max,
        required=question.required,
    )


def conversation_start_questions(*, recipient_id: int) -> str:
    """After the opening text went out: record it and send the first question, once."""
    now = timezone.now()
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update()
            .filter(recipient_id=recipient_id, status=ConversationStatus.OPEN)
            .first()
        )
        if conversation is None:
            return "no open conversation"
        if conversation.messages.filter(direction=SmsDirection.OUTBOUND).exists():
            return "already started"
        line = Recipient.objects.select_related("link", "survey", "message").get(pk=recipient_id)
        SmsMessage.objects.create(
            conversation=conversation,
            direction=SmsDirection.OUTBOUND,
            phone=conversation.phone,
            body=line.message.body_text if hasattr(line, "message") else "",
            provider_message_id=line.provider_message_id[:64],
            outcome="opening text",
        )
        questions = _questions(line.survey)
        if not questions or line.link is None:
            conversation_close(conversation, ConversationStatus.CLOSED, "no question to ask")
            return "nothing to ask"
        body = prompt(_spec(questions[0], line.link))
        first = SmsMessage.objects.create(
            conversation=conversation,
            direction=SmsDirection.OUTBOUND,
            phone=conversation.phone,
            body=body,
            # Recorded before the provider call: a second call finds it and does not
            # send the question twice.
            outcome=f"sending question 1 of {len(questions)}",
        )
        Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=now)
    try:
        sid = send_text(to=conversation.phone, body=body, recipient_id=recipient_id)
    except SmsSendError as error:
        SmsMessage.objects.filter(pk=first.pk).update(
            outcome=f"question 1 not sent: {error.message}"[:300]
        )
        if error.opted_out:
            phone_opt_out(phone=conversation.phone, source=OPTED_OUT_SOURCE)
            conversation_close(conversation, ConversationStatus.STOPPED, error.message)
        # Otherwise the conversation stays open: any reply gets the question again.
        return "first question not sent"
    SmsMessage.objects.filter(pk=first.pk).update(
        provider_message_id=sid[:64], outcome=f"question 1 of {len(questions)}"
    )
    return "started"


# --- Inbound texts ----------------------------------------------------------------------


@dataclass
class InboundResult:
    """What to answer an inbound text with, and what was done with it."""

    phone: str
    outcome: str
    replies: list[str] = field(default_factory=list)
    # The SmsMessage rows recording the replies, in order.
    reply_ids: list[int] = field(default_factory=list)


def sms_inbound_receive(*, from_number: str, body: str, message_sid: str = "") -> InboundResult:
    """Handle one inbound text: keywords first (STOP, HELP, START), then a reply to the
    number's open two-way survey. Recorded once per MessageSid; a redelivery gets no
    answer."""
    phone = phone_normalize(from_number)
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                inbound = SmsMessage.objects.create(
                    direction=SmsDirection.INBOUND,
                    phone=phone[:40],
                    body=body or "",
                    provider_message_id=(message_sid or "")[:64],
                )
        except IntegrityError:
            return InboundResult(phone=phone, outcome="duplicate: already handled")
        word = keyword(body)
        conversation: Conversation | None = None
        replies: list[str] = []
        if word == "stop":
            outcome, conversation = _stop(phone, (body or "").strip().upper())
        elif word == "help":
            replies = [settings.XMFLOWS_SMS_HELP_TEXT]
            outcome = "answered HELP"
            conversation = Conversation.objects.filter(
                phone=phone, status=ConversationStatus.OPEN
            ).first()
        else:
            opted_in = phone_opt_in(phone=phone, source="SMS START") if word == "start" else 0
            conversation, closed_now = _locked_open_conversation(phone, now)
            if conversation is None:
                if word == "start":
                    outcome = f"opted back in to SMS ({opted_in} contacts)"
                elif closed_now:
                    conversation = _last_closed_conversation(phone, now)
                    outcome = f"ignored: the two-way survey timed out ({timeout_reason()})"
                else:
                    # A late reply to a survey that ended: kept on that conversation,
                    # so its page shows what came after the end.
                    conversation = _last_closed_conversation(phone, now)
                    outcome = (
                        "ignored: the two-way survey with this number ended "
                        f"({conversation.get_status_display().lower()}: "
                        f"{conversation.close_reason})"
                        if conversation is not None
                        else "ignored: no open two-way survey with this number"
                    )
            else:
                replies, outcome = _reply(
                    conversation, body or "", now, keyword_start=word == "start"
                )
                if word == "start" and opted_in:
                    outcome = f"opted back in to SMS; {outcome}"
        inbound.conversation = conversation
        inbound.outcome = outcome[:300]
        inbound.save(update_fields=["conversation", "outcome"])
        reply_ids = [
            SmsMessage.objects.create(
                conversation=conversation,
                direction=SmsDirection.OUTBOUND,
                phone=phone[:40],
                body=reply,
                outcome="reply to an inbound text",
            ).pk
            for reply in replies
        ]
    return InboundResult(phone=phone, outcome=outcome, replies=replies, reply_ids=reply_ids)


def inbound_replies_deliver(result: InboundResult) -> None:
    """Send the replies through backends that do not read TwiML (outbox, memory), so
    the conversation is seen where their messages are seen. Twilio sends them itself
    from the webhook's TwiML answer."""
    if not result.replies or get_backend().delivers_twiml_replies:
        return
    for message_id, body in zip(result.reply_ids, result.replies, strict=True):
        try:
            sid = send_text(to=result.phone, body=body)
        except SmsSendError as error:
            logger.warning("reply to %s not recorded by the SMS backend: %s", result.phone, error)
            continue
        SmsMessage.objects.filter(pk=message_id).update(provider_message_id=sid[:64])


def _last_closed_conversation(phone: str, now: datetime) -> Conversation | None:
    """The number's two-way survey that ended lately, which a late reply answers; None
    while another is open (waiting for its opening text: the reply is not for the old
    one) or when none ended within LATE_REPLY_WINDOW."""
    if Conversation.objects.filter(phone=phone, status=ConversationStatus.OPEN).exists():
        return None
    return (
        Conversation.objects.filter(phone=phone, closed_at__gte=now - LATE_REPLY_WINDOW)
        .exclude(status=ConversationStatus.OPEN)
        .order_by("-id")
        .first()
    )


def _locked_open_conversation(phone: str, now: datetime) -> tuple[Conversation | None, bool]:
    """(the open conversation, locked; whether one was just closed as timed out)."""
    conversation = (
        Conversation.objects.select_for_update()
        .filter(phone=phone, status=ConversationStatus.OPEN)
        .first()
    )
    if conversation is None:
        return None, False
    line_status = Recipient.objects.values_list("status", flat=True).get(
        pk=conversation.recipient_id
    )
    if line_status in UNSENT:
        # Its opening has not gone out yet: this text answers nothing of ours.
        return None, False
    if conversation_is_stale(conversation, now):
        conversation_time_out(conversation)
        return None, True
    return conversation, False


def _stop(phone: str, word: str) -> tuple[str, Conversation | None]:
    changed = phone_opt_out(phone=phone, source="SMS STOP")
    stopped: Conversation | None = None
    for conversation in Conversation.objects.select_for_update().filter(
        phone=phone, status=ConversationStatus.OPEN
    ):
        conversation_close(conversation, ConversationStatus.STOPPED, f"the number replied {word}")
        _line_opted_out(conversation.recipient_id, f"replied {word} by SMS")
        stopped = conversation
    outcome = f"opted out of SMS ({changed} contacts)"
    if stopped is not None:
        outcome += f"; conversation {stopped.pk} stopped"
    return outcome, stopped


def _line_opted_out(recipient_id: int, reason: str) -> None:
    line = Recipient.objects.select_for_update(of=("self",)).filter(pk=recipient_id).first()
    if line is None:
        return
    if line.moves_to(RecipientStatus.OPTED_OUT):
        line.status = RecipientStatus.OPTED_OUT
        line.error = reason
        line.save(update_fields=["status", "error", "updated_at"])
    elif line.status == RecipientStatus.FINISHED:
        line.error = f"{reason} (after finishing the survey)"
        line.save(update_fields=["error", "updated_at"])


def _reply(
    conversation: Conversation, body: str, now: datetime, *, keyword_start: bool
) -> tuple[list[str], str]:
    """Take `body` as the answer to the conversation's current question: (texts to send
    back, what happened)."""
    line = Recipient.objects.select_related("link", "survey", "contact").get(
        pk=conversation.recipient_id
    )
    opted_out = number_opted_out(phone=conversation.phone, contact=line.contact)
    if opted_out:
        # Opted out some other way (an admin, another directory): never text it again.
        conversation_close(conversation, ConversationStatus.STOPPED, opted_out)
        return [], f"ignored: {opted_out}"
    link = line.link
    questions = _questions(line.survey)
    index = conversation.question_index
    if link is None or index >= len(questions):
        conversation_close(conversation, ConversationStatus.FINISHED, "no question left to ask")
        return [], "ignored: no question left to ask"
    closed = None if keyword_start else _closed_code(line, link)
    if closed:
        # Said before the reply is read: a skip or a reply that is no answer would
        # otherwise be met with another question that could not be answered either.
        # (START / YES goes on below: an opt-in first, an answer only if it is one.)
        reason = CLOSE_REASONS[closed]
        conversation_close(conversation, ConversationStatus.CLOSED, reason)
        return [CLOSED_TEXTS[closed]], f"closed: {reason}"
    question = questions[index]
    spec = _spec(question, link)
    total = len(questions)
    try:
        value = parse_reply(spec, body)
    except ReplyError as error:
        if keyword_start:
            # START / YES that is no answer here: the opt-in was all it meant.
            return [], "opted back in to SMS"
        return _invalid(conversation, now, spec, error.hint, index)
    is_last = index == total - 1
    answers = {str(question.pk): value} if value is not None else {}
    try:
        if answers or is_last:
            response_record_answers(link=link, answers=answers, finish=is_last)
    except AnswerError as error:
        if error.code != "invalid":
            text = CLOSED_TEXTS.get(error.code, "This survey can no longer be answered.")
            conversation_close(conversation, ConversationStatus.CLOSED, str(error))
            return [text], f"closed: {error}"
        return _answer_refused(conversation, now, questions, link, index, error)
    what = "skipped" if value is None else "recorded"
    if is_last:
        Conversation.objects.filter(pk=conversation.pk).update(
            question_index=total, last_activity_at=now
        )
        conversation_close(conversation, ConversationStatus.FINISHED, "all questions answered")
        return (
            [render_thank_you_text(line.survey, link)],
            f"answer to question {index + 1} of {total} {what}; survey finished",
        )
    conversation.question_index = index + 1
    conversation.last_activity_at = now
    conversation.save(update_fields=["question_index", "last_activity_at"])
    following = _spec(questions[index + 1], link)
    return [prompt(following)], f"answer to question {index + 1} of {total} {what}"


def _closed_code(line: Recipient, link) -> str | None:
    """Why the line's survey can no longer be answered (a key of CLOSED_TEXTS), in the
    order surveys.services checks it; None while it can."""
    if link.finished_at is not None:
        return "completed"
    if survey_link_is_expired(link):
        return "expired"
    if not line.survey.is_active:
        return "closed"
    return None


def _invalid(
    conversation: Conversation, now: datetime, spec: QuestionSpec, hint_text: str, index: int
) -> tuple[list[str], str]:
    conversation.invalid_replies += 1
    conversation.last_activity_at = now
    conversation.save(update_fields=["invalid_replies", "last_activity_at"])
    return [reask(spec, hint_text)], f"not an answer to question {index + 1}: {hint_text}"


def _answer_refused(
    conversation: Conversation, now: datetime, questions, link, index: int, error: AnswerError
) -> tuple[list[str], str]:
    """The survey's own validation refused the answer (a text too long), or a required
    question before the last one has no answer: ask that one."""
    current = str(questions[index].pk)
    if current in error.errors:
        hint_text = f"Sorry: {error.errors[current]}"
        return _invalid(conversation, now, _spec(questions[index], link), hint_text, index)
    for position, question in enumerate(questions):
        if str(question.pk) in error.errors:
            conversation.question_index = position
            conversation.last_activity_at = now
            conversation.save(update_fields=["question_index", "last_activity_at"])
            spec = _spec(question, link)
            return (
                [reask(spec, f"Question {position + 1} still needs an answer.")],
                f"question {position + 1} still needs an answer",
            )
    return _invalid(conversation, now, _spec(questions[index], link), str(error), index)


# --- Timeouts ---------------------------------------------------------------------------


def conversations_expire(*, now: datetime | None = None) -> int:
    """Close the open conversations with no message either way for longer than
    XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS (later replies get no answer), and those whose
    line ended without being sent. Returns how many timed out."""
    now = now or timezone.now()
    cutoff = now - conversation_timeout()
    stale = dict(
        Conversation.objects.filter(status=ConversationStatus.OPEN, last_activity_at__lt=cutoff)
        .exclude(recipient__status__in=UNSENT)
        .exclude(recipient__status__in=(RecipientStatus.FAILED, RecipientStatus.SKIPPED))
        .values_list("pk", "recipient_id")[:5000]
    )
    timed_out = 0
    if stale:
        with transaction.atomic():
            # Still open and silent (a reply may have come since the read).
            closing = Conversation.objects.filter(
                pk__in=stale, status=ConversationStatus.OPEN, last_activity_at__lt=cutoff
            )
            closed_lines = [
                stale[pk] for pk in closing.select_for_update().values_list("pk", flat=True)
            ]
            timed_out = closing.update(
                status=ConversationStatus.TIMED_OUT, closed_at=now, close_reason=timeout_reason()
            )
            lines_note_time_out(closed_lines)
    # A safety net for lines that failed or were skipped after their conversation
    # opened (a worker stopped at the wrong moment): they must not hold the number.
    Conversation.objects.filter(
        status=ConversationStatus.OPEN,
        recipient__status__in=(RecipientStatus.FAILED, RecipientStatus.SKIPPED),
    ).update(status=ConversationStatus.FAILED, closed_at=now, close_reason="the line was not sent")
    if timed_out:
        logger.info("%d SMS conversations timed out", timed_out)
    return timed_out
