"""Signal receivers: anymail tracking webhooks and respondents' survey progress.

They only translate and call one service each (CONVENTIONS.md "Where logic lives").
"""

import logging

from anymail.signals import AnymailTrackingEvent
from django.db import DatabaseError

from distributions import campaign, services

logger = logging.getLogger(__name__)


def _event_type(event: AnymailTrackingEvent, esp_name: str) -> str:
    event_type = event.event_type or "unknown"
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    # anymail reports Postmark's "SoftBounce" (mailbox full, try later) as bounced;
    # treating it as a hard bounce would suppress a working address for good.
    if event_type == "bounced" and esp_name == "Postmark" and raw.get("Type") == "SoftBounce":
        return "soft_bounce"
    return event_type


def _raw(event: AnymailTrackingEvent):
    raw = event.esp_event
    if hasattr(raw, "lists"):  # a QueryDict from a form-encoded webhook
        return {key: values if len(values) > 1 else values[0] for key, values in raw.lists()}
    return raw


def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """anymail's tracking signal: record the event and move its line forward.

    An exception here turns into an error answer and the provider retries the
    webhook (PITFALLS.md 7). That is right when our database is unavailable (the
    retry will find it back), wrong for anything else: an event we cannot use would
    be retried for days. So only database errors propagate.
    """
    try:
        services.delivery_event_record(
            provider=esp_name,
            event_id=event.event_id,
            message_id=event.message_id,
            event_type=_event_type(event, esp_name),
            timestamp=event.timestamp,
            reason=event.description or event.mta_response or event.reject_reason or "",
            raw=_raw(event),
            metadata=event.metadata if isinstance(event.metadata, dict) else {},
        )
    except DatabaseError:
        raise
    except Exception:
        logger.exception("could not record a %s %s event", esp_name, event.event_type)


def _response_id(link) -> int | None:
    response = getattr(link, "response", None) if link.pk else None
    return getattr(response, "pk", None)


def on_survey_opened(sender, link, **kwargs) -> None:
    # Opening the personal link is what "Survey Started" means in distribution reports.
    services.recipient_survey_progress(link=link, stage="started", response_id=_response_id(link))


def on_survey_started(sender, link, **kwargs) -> None:
    services.recipient_survey_progress(link=link, stage="started", response_id=_response_id(link))


def on_survey_finished(sender, link, **kwargs) -> None:
    services.recipient_survey_progress(link=link, stage="finished", response_id=_response_id(link))
    # After the line shows Survey Finished: the thank-you job checks it.
    campaign.thank_you_queue(link_id=link.pk)


def on_survey_opted_out(sender, link, **kwargs) -> None:
    services.recipient_opted_out(link=link, source="unsubscribe link")


def connect() -> None:
    from anymail.signals import tracking

    from surveys import signals as survey_signals

    tracking.connect(on_tracking, dispatch_uid="distributions.on_tracking")
    survey_signals.survey_opened.connect(on_survey_opened, dispatch_uid="distributions.opened")
    survey_signals.survey_started.connect(on_survey_started, dispatch_uid="distributions.started")
    survey_signals.survey_finished.connect(
        on_survey_finished, dispatch_uid="distributions.finished"
    )
    survey_signals.survey_opted_out.connect(
        on_survey_opted_out, dispatch_uid="distributions.opted_out"
    )
