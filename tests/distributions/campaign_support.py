"""Helpers of the campaign-control tests: rules, CSV rows, answering a survey, threads."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import Client

from distributions.models import FrequencyRule, Recipient
from surveys.models import Question

ONE_PER_30_DAYS = "At most 1 survey per 30 days"
REMINDER = {
    "after_days": 3,
    "when": "not_started",
    "subject": "A reminder, ${m://FirstName}",
    "body": "<p>Case ${e://Field/CaseNumber}: ${l://SurveyLink?d=Still time to answer}</p>",
}
THANK_YOU = {
    "subject": "Thank you, ${m://FirstName}",
    "body": "<p>Thanks for your answers about case ${e://Field/CaseNumber}.</p>",
}


def make_rule(*, target, scope: str = "directory", **overrides: Any) -> FrequencyRule:
    values: dict[str, Any] = {
        "name": ONE_PER_30_DAYS,
        "scope": scope,
        "max_sends": 1,
        "period_days": 30,
        scope: target,
    }
    values.update(overrides)
    return FrequencyRule.objects.create(**values)


def csv_rows(user, path: str) -> list[dict[str, str]]:
    """The history CSV at `path`, downloaded by `user` (signed in), as dicts."""
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200, response
    body = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    return list(csv.DictReader(io.StringIO(body)))


def answer(line: Recipient, *, finish: bool = True, client: Client | None = None) -> None:
    """The respondent opens the line's personal link and answers (or only opens it)."""
    client = client or Client()
    token = line.link.token
    assert client.get(f"/s/{token}/").status_code == 200
    if finish:
        questions = Question.objects.filter(survey_id=line.survey_id).order_by("position")
        data = {f"q{question.pk}": "9" for question in questions if question.type == "nps"}
        data["action"] = "finish"
        assert client.post(f"/s/{token}/", data).status_code == 200


def run_in_threads(count: int, target: Callable[[int], Any], *, barrier: bool = True) -> list:
    """Run target(0…count-1) in threads that start together; each closes its own
    database connection."""
    start = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            if barrier:
                start.wait(timeout=10)
            results[index] = target(index)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results
