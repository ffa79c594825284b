"""Signals about a respondent's progress through a personal link.

Each is sent with `sender=SurveyLink, link=<SurveyLink>` only after the
transaction that recorded the change has committed, so a receiver (the
distributions app moving recipient lines, marking a contact opted out) never
acts on a change that was rolled back. Receivers must be idempotent:
`survey_opted_out` is sent on every confirmed opt-out, not only the first.
"""

import django.dispatch

survey_opened = django.dispatch.Signal()
survey_started = django.dispatch.Signal()
survey_finished = django.dispatch.Signal()
survey_opted_out = django.dispatch.Signal()
