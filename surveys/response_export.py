"""Responses CSV of a survey (SPEC F6 "exportable"): its columns and cells; no Django
imports, so the layout and the spreadsheet-injection guard are unit-tested alone.

One row per response, finished or still in progress: who answered (as the invitation
was sent, else the contact as it is), where it came from (Salesforce record, workflow
run, distribution), one column per question in the survey's order, one per embedded
data field the survey declares, then any other embedded data the response recorded
(fields declared when it was answered and removed since) as JSON, so nothing
recorded is left out of the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from distributions.csv_export import BOM, format_time, safe_cell

__all__ = ["FIXED_COLUMNS", "ExportQuestion", "ResponseRow", "cells", "columns", "csv_chunks"]

FIXED_COLUMNS: tuple[str, ...] = (
    "Response ID",
    "Status",
    "Started At",
    "Finished At",
    "Contact ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "External Data Reference",
    "Salesforce Record ID",
    "Workflow Run ID",
    "Distribution ID",
)
OTHER_EMBEDDED_DATA = "Other Embedded Data"


@dataclass(frozen=True)
class ExportQuestion:
    id: int
    text: str


@dataclass(frozen=True)
class ResponseRow:
    """What one row shows, read from the response, its contact and its line."""

    id: int
    started_at: datetime | None
    finished_at: datetime | None
    contact_id: int | None
    first_name: str
    last_name: str
    email: str
    phone: str
    external_data_reference: str
    record_id: str
    workflow_run_id: int | None
    distribution_id: int | None
    answers: Mapping[str, Any]
    embedded_data: Mapping[str, Any]


def columns(questions: Sequence[ExportQuestion], embedded_names: Sequence[str]) -> list[str]:
    """The header. Questions read "Q2: <text>"; an embedded data field that has the
    name of a fixed column gets " (embedded data)" after it, so no two columns share
    a name."""
    header = list(FIXED_COLUMNS)
    header += [f"Q{number}: {question.text}" for number, question in enumerate(questions, 1)]
    taken = set(header)
    for name in embedded_names:
        header.append(f"{name} (embedded data)" if name in taken else name)
    header.append(OTHER_EMBEDDED_DATA)
    return header


def _answer(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return safe_cell("; ".join(str(item) for item in value))
    return safe_cell(value)


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


def cells(
    row: ResponseRow, questions: Sequence[ExportQuestion], embedded_names: Sequence[str]
) -> list[str]:
    """One row's cells, in `columns` order; free text is guarded against formulas."""
    values = [
        str(row.id),
        "Finished" if row.finished_at else "In Progress",
        format_time(row.started_at),
        format_time(row.finished_at),
        _number(row.contact_id),
        safe_cell(row.first_name),
        safe_cell(row.last_name),
        safe_cell(row.email),
        safe_cell(row.phone),
        safe_cell(row.external_data_reference),
        safe_cell(row.record_id),
        _number(row.workflow_run_id),
        _number(row.distribution_id),
    ]
    answers = row.answers or {}
    values += [_answer(answers.get(str(question.id))) for question in questions]
    embedded = dict(row.embedded_data or {})
    values += [_answer(embedded.pop(name, None)) for name in embedded_names]
    values.append(safe_cell(json.dumps(embedded, ensure_ascii=False)) if embedded else "")
    return values


def csv_chunks(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    rows_per_chunk: int = 500,
) -> Iterator[bytes]:
    """The CSV as UTF-8 chunks (BOM and header first): memory stays flat however many
    responses stream through."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(name) for name in header])
    yield (BOM + buffer.getvalue()).encode("utf-8")
    iterator = iter(rows)
    while batch := list(islice(iterator, rows_per_chunk)):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(batch)
        yield buffer.getvalue().encode("utf-8")
