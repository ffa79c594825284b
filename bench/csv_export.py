"""Benchmark (issue 4): a survey's distribution history CSV with 1,000,000 lines over HTTP.

One run fills a fresh SQLite file database in a temporary directory with one survey
and 1,000,000 recipient lines (plus their personal links, which the CSV joins),
starts the app under gunicorn (1 sync worker, DEBUG off) on a free loopback port,
downloads /surveys/{id}/distribution-history.csv with an API token, and measures:

  - the download's wall time, from request to last byte;
  - the gunicorn worker's memory growth: peak VmRSS while streaming (polled every
    20 ms from /proc, and VmHWM at the end) minus VmRSS before the request.

The floor is the `sqlite3` command-line tool writing the same columns (labels,
UTC times, link URLs, same join and order) as CSV from the same database file. When
the tool is missing (install it: `apt-get install -y sqlite3`), Python's sqlite3
module with csv.writer is the floor instead, and the output says so.

Targets: time <= 2x the floor; worker memory growth <= 100 MB. Prints both times,
the ratio, the memory growth and PASS/FAIL per target; exit status 1 on a FAIL.

    .venv/bin/python bench/csv_export.py [--rows 1000000] [--keep]

The recipient lines' rendered bodies live in another table (RecipientMessage) that
the export never reads, so the benchmark does not fill it.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

# Runs as a plain script from the project root; no installed package to import.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import GunicornServer, app_env, make_var_dir, manage, remove_var_dir, run_python

TARGET_RATIO = 2.0
TARGET_GROWTH_MB = 100.0
BATCH = 50_000
STATUS_LABELS = {
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

# Creates the admin, its token, a survey, a contact and the distributions through the
# app's own code; the million lines are then bulk-inserted with plain SQL (the ORM
# would spend minutes building a million model instances for no benefit here).
SETUP = r"""
import json, sys
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from contacts.models import Contact, Directory
from distributions.services import distribution_create
from surveys.services import survey_create

admin = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-pass-1")
token = Token.objects.create(user=admin)
survey = survey_create(owner=admin, name="Bench", status="active",
                       questions=[{"type": "nps", "text": "How likely?", "required": True}],
                       embedded_data_fields=["CaseNumber"])
directory = Directory.objects.create(name="Bench")
contact = Contact.objects.create(directory=directory, first_name="Ada", last_name="Lovelace",
                                 email="ada@example.org")
distributions = [distribution_create(survey=survey, channel="email", workflow_run_id=1000 + n,
                                     workflow_id=1).pk for n in range(int(sys.argv[1]))]
print(json.dumps({"token": token.key, "survey_id": survey.pk, "contact_id": contact.pk,
                  "distributions": distributions}))
"""


def fill(db_path: Path, *, rows: int, survey_id: int, contact_id: int, distributions: list[int]):
    """Insert `rows` links and recipient lines with realistic, varied values."""
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    recipient_columns = [
        row[1] for row in connection.execute("PRAGMA table_info(distributions_recipient)")
    ]
    link_columns = [row[1] for row in connection.execute("PRAGMA table_info(surveys_surveylink)")]
    statuses = list(STATUS_LABELS)
    created = "2026-11-27 10:00:00.000000"
    per_distribution = max(1, rows // len(distributions))
    first_names = ["Jonas", "María José", "Zoë", "Ólafur", "Chen", '=HYPERLINK("x")', "Amélie"]
    # Column names come from the schema itself (PRAGMA table_info), never from input.
    insert_link = (
        f"INSERT INTO surveys_surveylink ({', '.join(link_columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(link_columns))})"
    )
    insert_line = (
        f"INSERT INTO distributions_recipient ({', '.join(recipient_columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(recipient_columns))})"
    )
    for start in range(0, rows, BATCH):
        links = []
        lines = []
        for number in range(start, min(rows, start + BATCH)):
            link_id = number + 1
            status = statuses[number % len(statuses)]
            reached = statuses.index(status)
            stamp = f"2026-11-27 1{number % 10}:{number % 60:02d}:{(number * 7) % 60:02d}.123456"
            link = dict.fromkeys(link_columns)
            link.update(
                id=link_id,
                token=f"bench{number:010d}AbCdEfGhIjKlMnOpQ",
                survey_id=survey_id,
                contact_id=contact_id,
                snapshot="{}",
                created_at=created,
            )
            links.append(tuple(link[column] for column in link_columns))
            line = dict.fromkeys(recipient_columns, "")
            line.update(
                id=link_id,
                distribution_id=distributions[
                    min(number // per_distribution, len(distributions) - 1)
                ],
                survey_id=survey_id,
                channel="email",
                contact_id=contact_id,
                link_id=link_id,
                status=status,
                error="address hard-bounced on 2026-11-20" if status == "skipped" else "",
                first_name=first_names[number % len(first_names)],
                last_name=f"Person {number}",
                email=f"person{number}@example.org",
                phone=f"+1415555{number % 10000:04d}",
                external_data_reference=f"0038a00000{number:08d}",
                record_id=f"5008a0000{number:09d}",
                workflow_run_id=1000 + number // per_distribution,
                to_address=f"person{number}@example.org",
                from_name="Customer Care",
                from_address="surveys@example.com",
                subject=f"How did we do, {first_names[number % len(first_names)]}?",
                message_hash=f"{number:064x}",
                provider_message_id=f"outbox-{number:032x}",
                outcome_unknown=0,
                attempts=1,
                sending_started_at=None,
                enqueued_at=None,
                next_attempt_at=None,
                scheduled_for=None,
                sent_at=stamp if 2 <= reached <= 6 else None,
                delivered_at=stamp if 3 <= reached <= 6 else None,
                opened_at=stamp if 4 <= reached <= 6 else None,
                started_at=stamp if 5 <= reached <= 6 else None,
                finished_at=stamp if reached == 6 else None,
                response_id=number if reached == 6 else None,
                created_at=created,
                updated_at=created,
            )
            lines.append(tuple(line[column] for column in recipient_columns))
        with connection:
            connection.executemany(insert_link, links)
            connection.executemany(insert_line, lines)
    connection.execute("ANALYZE")
    connection.close()


def floor_sql(survey_id: int, base_url: str) -> str:
    """The export's query for the sqlite3 tool: same columns, labels and formats."""
    labels = " ".join(f"WHEN '{code}' THEN '{label}'" for code, label in STATUS_LABELS.items())

    def stamp(column: str) -> str:
        return f"strftime('%Y-%m-%dT%H:%M:%SZ', r.{column})"

    return (
        'SELECT r.distribution_id AS "Distribution ID", r.contact_id AS "Contact ID", '  # noqa: S608 (our constants and an int)
        'r.first_name AS "First Name", r.last_name AS "Last Name", r.email AS "Email", '
        'r.phone AS "Phone", r.external_data_reference AS "External Data Reference", '
        'r.channel AS "Channel", '
        f'CASE r.status {labels} ELSE r.status END AS "Status", r.error AS "Error", '
        f'{stamp("sent_at")} AS "Sent At", {stamp("delivered_at")} AS "Delivered At", '
        f'{stamp("opened_at")} AS "Opened At", {stamp("started_at")} AS "Survey Started At", '
        f'{stamp("finished_at")} AS "Survey Finished At", r.response_id AS "Response ID", '
        f"CASE WHEN l.token IS NULL THEN '' ELSE '{base_url}/s/' || l.token || '/' END "
        'AS "Survey Link", '
        'r.workflow_run_id AS "Workflow Run ID", r.record_id AS "Salesforce Record ID" '
        "FROM distributions_recipient r LEFT JOIN surveys_surveylink l ON l.id = r.link_id "
        f"WHERE r.survey_id = {int(survey_id)} ORDER BY r.survey_id, r.id;"
    )


def run_floor(db_path: Path, sql: str, out_path: Path) -> tuple[float, str]:
    tool = shutil.which("sqlite3")
    started = time.perf_counter()
    if tool:
        with open(out_path, "wb") as out:
            subprocess.run(
                [tool, "-readonly", "-csv", "-header", str(db_path), sql],
                stdout=out,
                check=True,
            )
        return time.perf_counter() - started, "sqlite3 command-line tool"
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    cursor = connection.execute(sql)
    with open(out_path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([column[0] for column in cursor.description])
        writer.writerows(cursor)
    connection.close()
    return time.perf_counter() - started, "python sqlite3 + csv (sqlite3 tool not installed)"


def worker_pid(master_pid: int) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == master_pid:
            return int(entry)
    raise RuntimeError("no gunicorn worker found")


def memory_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not found for pid {pid}")


def download(server: GunicornServer, path: str, token: str, out_path: Path) -> tuple[int, int]:
    """GET path with the token, streaming the body to a file; returns (status, bytes)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=600)
    connection.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = connection.getresponse()
    total = 0
    with open(out_path, "wb") as out:
        while chunk := response.read(256 * 1024):
            out.write(chunk)
            total += len(chunk)
    connection.close()
    return response.status, total


def count_lines(path: Path) -> int:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return sum(1 for _ in csv.reader(handle))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distributions", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    var_dir = make_var_dir("xmflows-bench-csv-")
    db_path = var_dir / "db.sqlite3"
    # SQLite on purpose: the floor is the sqlite3 tool on the same file.
    env = app_env(var_dir=var_dir, database_url=f"sqlite:///{db_path}")
    try:
        print(f"preparing {args.rows:,} lines in {db_path} …", flush=True)
        manage(["migrate", "--noinput"], env)
        facts = json.loads(run_python(SETUP, env, str(args.distributions)).strip().splitlines()[-1])
        started = time.perf_counter()
        fill(
            db_path,
            rows=args.rows,
            survey_id=facts["survey_id"],
            contact_id=facts["contact_id"],
            distributions=facts["distributions"],
        )
        print(
            f"filled in {time.perf_counter() - started:.1f} s "
            f"({db_path.stat().st_size / 1e6:.0f} MB database)",
            flush=True,
        )

        path = f"/surveys/{facts['survey_id']}/distribution-history.csv"
        app_csv = var_dir / "app.csv"
        # A long export must not be killed by gunicorn's default 30 s worker timeout.
        with GunicornServer(env, workers=1, extra_args=["--timeout", "600"]) as server:
            worker = worker_pid(server.process.pid)
            # Warm up (imports, first queries, auth) on a small export, as a real
            # worker would be after its first requests.
            warm_status, _ = download(
                server,
                f"/distributions/{facts['distributions'][0]}/history.csv?status=failed",
                facts["token"],
                var_dir / "warm.csv",
            )
            assert warm_status == 200, warm_status
            baseline_kb = memory_kb(worker, "VmRSS")
            peak_kb = baseline_kb
            result: dict = {}

            def fetch() -> None:
                result["status"], result["bytes"] = download(server, path, facts["token"], app_csv)

            thread = threading.Thread(target=fetch)
            started = time.perf_counter()
            thread.start()
            while thread.is_alive():
                peak_kb = max(peak_kb, memory_kb(worker, "VmRSS"))
                thread.join(0.02)
            app_seconds = time.perf_counter() - started
            hwm_kb = memory_kb(worker, "VmHWM")
            base_url = server.url("").rstrip("/")
        if result.get("status") != 200:
            print(f"FAIL: the download answered HTTP {result.get('status')}")
            return 1

        floor_csv = var_dir / "floor.csv"
        floor_seconds, floor_name = run_floor(
            db_path, floor_sql(facts["survey_id"], base_url), floor_csv
        )
        app_rows = count_lines(app_csv) - 1
        floor_rows = count_lines(floor_csv) - 1
        ratio = app_seconds / floor_seconds
        growth_mb = (max(peak_kb, hwm_kb) - baseline_kb) / 1024
        polled_growth_mb = (peak_kb - baseline_kb) / 1024

        print()
        print(f"rows exported:    app {app_rows:,}, floor {floor_rows:,}")
        print(
            f"app (HTTP):       {app_seconds:.2f} s, {result['bytes'] / 1e6:.0f} MB "
            f"({app_rows / app_seconds:,.0f} rows/s) — gunicorn, 1 sync worker"
        )
        print(
            f"floor:            {floor_seconds:.2f} s, {floor_csv.stat().st_size / 1e6:.0f} MB "
            f"— {floor_name}"
        )
        print(f"ratio:            {ratio:.2f}x the floor (target <= {TARGET_RATIO:.0f}x)")
        print(
            f"worker memory:    {baseline_kb / 1024:.0f} MB before, growth {growth_mb:.1f} MB "
            f"(polled peak {polled_growth_mb:.1f} MB; VmHWM {hwm_kb / 1024:.0f} MB) "
            f"(target <= {TARGET_GROWTH_MB:.0f} MB)"
        )
        failures = 0
        checks = [
            ("all rows exported", app_rows == args.rows == floor_rows),
            (f"time <= {TARGET_RATIO:.0f}x floor", ratio <= TARGET_RATIO),
            (f"memory growth <= {TARGET_GROWTH_MB:.0f} MB", growth_mb <= TARGET_GROWTH_MB),
        ]
        for name, passed in checks:
            print(f"{'PASS' if passed else 'FAIL'}: {name}")
            failures += 0 if passed else 1
        return 1 if failures else 0
    finally:
        if args.keep:
            print(f"kept {var_dir}")
        else:
            remove_var_dir(var_dir)


if __name__ == "__main__":
    sys.exit(main())
