"""Distribution history CSV rows (CONTRACT.md §6): pure formatting, no Django imports.

The view streams database rows through `format_row`; everything here is a function
of its arguments so the column order, the time format and the spreadsheet-injection
guard are unit-tested without a database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

__all__ = [
    "BOM",
    "COLUMNS",
    "FREE_TEXT_COLUMNS",
    "STATUS_LABELS",
    "TIME_COLUMNS",
    "csv_chunks",
    "format_row",
    "format_time",
    "row_formatter",
    "safe_cell",
]

# Exactly the header of CONTRACT.md §6, in order.
COLUMNS: tuple[str, ...] = (
    "Distribution ID",
    "Contact ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "External Data Reference",
    "Channel",
    "Status",
    "Error",
    "Sent At",
    "Delivered At",
    "Opened At",
    "Survey Started At",
    "Survey Finished At",
    "Response ID",
    "Survey Link",
    "Workflow Run ID",
    "Salesforce Record ID",
)

# The stored status codes and the labels the contract shows. distributions.models
# builds its TextChoices from this mapping, so the two cannot drift apart.
STATUS_LABELS: dict[str, str] = {
    "pending": "Pending",
    "scheduled": "Scheduled",
    "sent": "Sent",
    "delivered": "Delivered",
    "opened": "Opened",
    "started": "Survey Started",
    "finished": "Survey Finished",
    "skipped": "Skipped",
    "opted_out": "Opted Out",
    "failed": "Failed",
    "soft_bounce": "Soft Bounce",
    "hard_bounce": "Hard Bounce",
    "complaint": "Complaint",
}

# Spreadsheets evaluate a cell that starts with one of these as a formula
# (OWASP "CSV injection"); a leading apostrophe makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(_FORMULA_STARTS)
TIME_COLUMNS = ("Sent At", "Delivered At", "Opened At", "Survey Started At", "Survey Finished At")
# The columns whose text comes from people or from Salesforce and may start with
# anything: row_formatter guards these. The others hold numbers, times, our status
# labels, our channel codes or our own URLs, none of which can start with a formula
# character.
FREE_TEXT_COLUMNS = (
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "External Data Reference",
    "Error",
    "Salesforce Record ID",
)

BOM = "\ufeff"


def safe_cell(value: Any) -> str:
    """The text of one cell, neutralised if a spreadsheet would run it."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def format_time(value: datetime | str | None) -> str:
    """UTC as YYYY-MM-DDTHH:MM:SSZ; empty when the moment was not reached.

    A string is taken as already formatted (the export query formats times in SQL,
    which saves parsing a million datetimes only to print them again).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def row_formatter(
    *, survey_link_prefix: str = "", status_labels: Mapping[str, str] = STATUS_LABELS
) -> Callable[[Sequence[Any]], tuple[str, ...]]:
    """A function turning one tuple of values, in COLUMNS order, into CSV cells.

    It runs a million times per export, so it is written out column by column with
    few calls, and does only what each column needs: free text gets the formula
    guard, status codes become labels, a bare link token becomes the survey URL
    (the public base URL plus "/s/" plus the token, so the query builds no
    strings), datetimes are formatted (the export query hands times over already
    formatted on SQLite and PostgreSQL), numbers become digits, None becomes "".
    """
    labels = dict(status_labels)
    first = _FORMULA_FIRST
    prefix = survey_link_prefix
    text = str
    width = len(COLUMNS)

    def format_values(values: Sequence[Any]) -> tuple[str, ...]:
        if len(values) != width:
            raise ValueError(f"expected {width} values, got {len(values)}")
        (
            distribution_id,
            contact_id,
            first_name,
            last_name,
            email,
            phone,
            external_reference,
            channel,
            status,
            error,
            sent_at,
            delivered_at,
            opened_at,
            started_at,
            finished_at,
            response_id,
            link,
            run_id,
            record_id,
        ) = values
        # Inline expressions rather than helper calls: a call per cell would cost
        # more than everything else this function does.
        return (
            "" if distribution_id is None else text(distribution_id),
            "" if contact_id is None else text(contact_id),
            ("'" + first_name if first_name and first_name[0] in first else first_name)
            if first_name.__class__ is text
            else safe_cell(first_name),
            ("'" + last_name if last_name and last_name[0] in first else last_name)
            if last_name.__class__ is text
            else safe_cell(last_name),
            ("'" + email if email and email[0] in first else email)
            if email.__class__ is text
            else safe_cell(email),
            ("'" + phone if phone and phone[0] in first else phone)
            if phone.__class__ is text
            else safe_cell(phone),
            (
                "'" + external_reference
                if external_reference and external_reference[0] in first
                else external_reference
            )
            if external_reference.__class__ is text
            else safe_cell(external_reference),
            channel or "",
            labels.get(status, status) or "",
            ("'" + error if error and error[0] in first else error)
            if error.__class__ is text
            else safe_cell(error),
            sent_at if sent_at.__class__ is text else format_time(sent_at),
            delivered_at if delivered_at.__class__ is text else format_time(delivered_at),
            opened_at if opened_at.__class__ is text else format_time(opened_at),
            started_at if started_at.__class__ is text else format_time(started_at),
            finished_at if finished_at.__class__ is text else format_time(finished_at),
            "" if response_id is None else text(response_id),
            (f"{prefix}{link}/" if prefix and "/" not in link else link) if link else "",
            "" if run_id is None else text(run_id),
            ("'" + record_id if record_id and record_id[0] in first else record_id)
            if record_id.__class__ is text
            else safe_cell(record_id),
        )

    return format_values


def format_row(
    row: Mapping[str, Any],
    *,
    survey_link_prefix: str = "",
    status_labels: Mapping[str, str] = STATUS_LABELS,
) -> list[str]:
    """One CSV row from a mapping keyed by column name (missing columns are empty).

    `Status` may hold a stored code (shown as its label); `Channel` is the code the
    API also uses (email, sms, sms_survey); times may be datetimes or already
    formatted strings.
    """
    format_values = row_formatter(
        survey_link_prefix=survey_link_prefix, status_labels=status_labels
    )
    return list(format_values([row.get(column) for column in COLUMNS]))


def csv_chunks(
    rows: Iterable[Sequence[Any]],
    *,
    survey_link_prefix: str = "",
    rows_per_chunk: int = 500,
    bom: bool = True,
) -> Iterator[bytes]:
    """The whole CSV as UTF-8 chunks: the BOM and the header, then the rows.

    `rows` are tuples in COLUMNS order (a database cursor, for instance). A chunk
    holds at most `rows_per_chunk` rows (about 100 KB): memory stays flat however
    many rows stream through, and the server writes to the socket per chunk, not
    per row.

    csv.writer is the reference for quoting, but it costs about four microseconds a
    row, more than reading the row from the database. Most rows need no quoting at
    all (no comma, quote or line break inside a cell), and for those a plain join
    gives csv.writer's exact output; only the others go through it (a test holds
    the two paths to the same output).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    yield ((BOM if bom else "") + buffer.getvalue()).encode("utf-8")
    format_values = row_formatter(survey_link_prefix=survey_link_prefix)
    separators = len(COLUMNS) - 1
    iterator = iter(rows)
    while batch := list(islice(iterator, rows_per_chunk)):
        lines: list[str] = []
        for values in batch:
            cells = format_values(values)
            line = ",".join(cells)
            if line.count(",") != separators or '"' in line or "\n" in line or "\r" in line:
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(cells)
                line = buffer.getvalue()[:-2]  # without its "\r\n"
            lines.append(line)
        lines.append("")
        yield "\r\n".join(lines).encode("utf-8")
