"""CSV row formatting, a pure module: header, labels, times, spreadsheet-injection guard."""

import csv
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distributions.csv_export import (
    BOM,
    COLUMNS,
    FREE_TEXT_COLUMNS,
    STATUS_LABELS,
    TIME_COLUMNS,
    csv_chunks,
    format_row,
    format_time,
    row_formatter,
    safe_cell,
)

CONTRACT_HEADER = (
    "Distribution ID, Contact ID, First Name, Last Name, Email, Phone, External Data Reference, "
    "Channel, Status, Error, Sent At, Delivered At, Opened At, Survey Started At, "
    "Survey Finished At, Response ID, Survey Link, Workflow Run ID, Salesforce Record ID"
)


def test_columns_are_exactly_the_contracts():
    assert ", ".join(COLUMNS) == CONTRACT_HEADER


def test_status_labels_are_the_contracts_and_the_models():
    from distributions.models import RecipientStatus

    assert list(STATUS_LABELS.values()) == [
        "Pending",
        "Scheduled",
        "Sent",
        "Delivered",
        "Opened",
        "Survey Started",
        "Survey Finished",
        "Skipped",
        "Opted Out",
        "Failed",
        "Soft Bounce",
        "Hard Bounce",
        "Complaint",
    ]
    assert dict(RecipientStatus.choices) == STATUS_LABELS


def test_times_are_utc_with_a_z():
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 11, 27, 12, 30, 5, 999, tzinfo=plus_two)) == (
        "2026-11-27T10:30:05Z"
    )
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert format_time(None) == ""
    assert format_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"


def test_cells_a_spreadsheet_would_run_are_prefixed():
    for dangerous in ('=HYPERLINK("http://x")', "+1+2", "-3", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert safe_cell("Jonas") == "Jonas"
    assert safe_cell("a=b") == "a=b"
    assert safe_cell(None) == ""
    assert safe_cell(12) == "12"
    assert safe_cell("+46 8 555 010 01") == "'+46 8 555 010 01"


def test_a_row_from_a_mapping():
    row = format_row(
        {
            "Distribution ID": 7,
            "First Name": "=cmd",
            "Status": "finished",
            "Channel": "email",
            "Sent At": datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
            "Survey Link": "tok123",
        },
        survey_link_prefix="https://xm.example/s/",
    )
    values = dict(zip(COLUMNS, row, strict=True))
    assert values["Distribution ID"] == "7"
    assert values["First Name"] == "'=cmd"
    assert values["Status"] == "Survey Finished"
    assert values["Channel"] == "email"
    assert values["Sent At"] == "2026-11-27T10:00:00Z"
    assert values["Survey Link"] == "https://xm.example/s/tok123/"
    assert values["Response ID"] == ""


def test_chunks_start_with_a_bom_and_parse_back():
    rows = [
        tuple(str(number) for number in range(len(COLUMNS))),
        tuple(["a,b", 'say "hi"', "line\nbreak"] + [None] * 16),
    ]
    text = b"".join(csv_chunks(rows)).decode("utf-8")
    assert text.startswith(BOM + "Distribution ID,")
    parsed = list(csv.reader(io.StringIO(text.removeprefix(BOM))))
    assert parsed[0] == list(COLUMNS)
    assert parsed[2][:3] == ["a,b", 'say "hi"', "line\nbreak"]
    assert parsed[2][3:] == [""] * 16


def test_chunks_hold_a_bounded_number_of_rows_and_lose_none():
    row = (
        "1",
        "2",
        "=x",
        "Berg",
        "a@b",
        "",
        "",
        "email",
        "sent",
        "",
        None,
        None,
        None,
        None,
        None,
        None,
        "tok",
        7,
        "500",
    )
    chunks = list(csv_chunks([row] * 1001, rows_per_chunk=100, survey_link_prefix="https://h/s/"))
    assert len(chunks) == 12  # the header, then 10 full chunks and the remainder
    lines = b"".join(chunks).decode().removeprefix(BOM).splitlines()
    assert len(lines) == 1002
    assert lines[1] == "1,2,'=x,Berg,a@b,,,email,Sent,,,,,,,,https://h/s/tok/,7,500"


def test_a_row_with_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="expected 19 values"):
        list(csv_chunks([("1", "2")]))


def test_exactly_the_free_text_columns_are_guarded():
    format_values = row_formatter()
    guarded = set()
    for index, column in enumerate(COLUMNS):
        values = [None] * len(COLUMNS)
        values[index] = "=1+1"
        if format_values(values)[index] == "'=1+1":
            guarded.add(column)
    assert guarded == set(FREE_TEXT_COLUMNS)
    assert set(FREE_TEXT_COLUMNS) >= {"First Name", "Last Name", "Email", "Phone", "Error"}


def test_exactly_the_time_columns_take_datetimes():
    format_values = row_formatter()
    moment = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    values = [None] * len(COLUMNS)
    for column in TIME_COLUMNS:
        values[COLUMNS.index(column)] = moment
    cells = format_values(values)
    for index, column in enumerate(COLUMNS):
        expected = "2026-11-27T10:00:00Z" if column in TIME_COLUMNS else ""
        assert cells[index] == expected, column


def test_non_strings_in_text_columns_are_guarded_too():
    row = format_row({"First Name": -5, "Phone": 4155550100, "Error": None})
    values = dict(zip(COLUMNS, row, strict=True))
    assert (values["First Name"], values["Phone"], values["Error"]) == ("'-5", "4155550100", "")


_cell_text = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\t=+-@é€😀;')), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.none() | st.integers(min_value=0, max_value=10**12),
            *[st.none() | _cell_text for _ in range(len(COLUMNS) - 1)],
        ),
        max_size=30,
    )
)
def test_the_fast_path_writes_exactly_what_csv_writer_writes(rows):
    format_values = row_formatter(survey_link_prefix="https://h/s/")
    reference = io.StringIO()
    writer = csv.writer(reference)
    writer.writerow(COLUMNS)
    for values in rows:
        writer.writerow(format_values(values))
    produced = b"".join(csv_chunks(rows, rows_per_chunk=7, survey_link_prefix="https://h/s/"))
    assert produced.decode("utf-8") == BOM + reference.getvalue()
