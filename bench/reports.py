"""Benchmark (issue 6): the workflow reports page and its searches with 1,000,000 runs.

One run fills a fresh SQLite file database in a temporary directory (bench/_server.py)
with 4 workflows, 10,000 deliveries, 1,000,000 notifications with realistic payloads,
1,000,000 runs (70/20/9/1 % over the workflows; 85 % succeeded, 10 % skipped, 4 %
failed, 1 % queued; spread over a year), one task run per run and 100,000 recipient
lines; starts the app under gunicorn (sync workers, DEBUG off) on a free loopback port,
signs in with a session cookie, and times each request over HTTP, one after another:

  - the reports page (newest runs);
  - filtered by workflow + status (a busy and a rare workflow, common and rare statuses);
  - filtered by workflow + date range (a month long ago);
  - search by Salesforce record id, and by email address (any case);
  - page 2 via keyset (?before=), unfiltered and filtered;
  - the "why not sent?" answer page by email.

Prints p50/p95/max per scenario and the query plan of each search; PASS when every
p95 is at most 300 ms (exit status 1 otherwise).

    .venv/bin/python bench/reports.py [--runs 1000000] [--requests 60] [--workers 1] [--keep]

The rows are inserted with plain SQL (the ORM would spend minutes building a million
model instances); the workflows, user and session are created through the app's code.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Runs as a plain script from the project root; no installed package to import.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import GunicornServer, app_env, make_var_dir, manage, remove_var_dir, run_python

TARGET_P95_MS = 300.0
BATCH = 50_000
WORKFLOW_SHARES = (0.70, 0.20, 0.09, 0.01)
STATUSES = ("succeeded",) * 85 + ("skipped",) * 10 + ("failed",) * 4 + ("queued",)
NOTIFICATIONS_PER_DELIVERY = 100
EMAILS = 200_000
RECIPIENT_EVERY = 10  # one recipient line per 10 runs

SETUP = r"""
import json
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from distributions.services import distribution_create
from surveys.services import survey_create
from xmflows.services import workflow_create

admin = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-pass-1")
session = SessionStore()
session[SESSION_KEY] = str(admin.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
session.create()
workflows = []
for number in range(4):
    workflow = workflow_create(owner=admin, definition={
        "name": f"Bench workflow {number + 1}",
        "event": {"type": "salesforce_outbound_message", "object": "Case"},
        "conditions": {
            "match": "all", "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}]
        },
        "tasks": [],
    })
    workflows.append({"id": workflow.pk, "event_id": workflow.event.pk})
survey = survey_create(owner=admin, name="Bench", status="active",
                       questions=[{"type": "nps", "text": "How likely?", "required": True}])
distribution = distribution_create(survey=survey, channel="email", workflow_id=workflows[0]["id"])

# Each table's column defaults as the database stores them, so rows inserted with SQL
# are whole rows whatever columns other apps add later.
from django.db import connection
from distributions.models import Recipient
from xmflows.models import Delivery, Notification, Run, TaskRun
defaults = {}
for model in (Delivery, Notification, Run, TaskRun, Recipient):
    columns = {}
    for field in model._meta.concrete_fields:
        value = field.get_db_prep_save(field.get_default(), connection)
        plain = value is None or isinstance(value, (int, float, str))
        columns[field.column] = value if plain else str(value)
    defaults[model._meta.db_table] = columns
print(json.dumps({"session": session.session_key, "workflows": workflows,
                  "survey_id": survey.pk, "distribution_id": distribution.pk,
                  "defaults": defaults}))
"""


def _columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def _insert_sql(table: str, columns: list[str]) -> str:
    # Table and column names come from the schema itself (PRAGMA), never from input.
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608


def _stamp(moment: datetime) -> str:
    # How Django stores an aware datetime on SQLite: UTC, no offset.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def record_id(number: int) -> str:
    return f"5008a{number:011d}AB"


def email(number: int) -> str:
    return f"person{number % EMAILS}@example.org"


def fill(db_path: Path, *, runs: int, setup: dict, now: datetime) -> dict:
    """Insert deliveries, notifications, runs, task runs and recipient lines."""
    rng = random.Random(6)
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    tables = {
        name: _columns(connection, name)
        for name in (
            "xmflows_delivery",
            "xmflows_notification",
            "xmflows_run",
            "xmflows_taskrun",
            "distributions_recipient",
        )
    }
    inserts = {name: _insert_sql(name, columns) for name, columns in tables.items()}
    workflows = setup["workflows"]
    defaults = setup["defaults"]
    cumulative = []
    total = 0.0
    for share in WORKFLOW_SHARES:
        total += share
        cumulative.append(total)
    start = now - timedelta(days=365)
    step = timedelta(days=365) / runs
    for first in range(0, runs, BATCH):
        rows: dict[str, list[tuple]] = {name: [] for name in tables}
        for number in range(first, min(runs, first + BATCH)):
            run_id = number + 1
            created = start + step * number
            pick = rng.random()
            workflow = workflows[next(i for i, edge in enumerate(cumulative) if pick <= edge)]
            status = rng.choice(STATUSES)
            if number % NOTIFICATIONS_PER_DELIVERY == 0:
                delivery = dict(defaults["xmflows_delivery"])
                delivery.update(
                    id=number // NOTIFICATIONS_PER_DELIVERY + 1,
                    received_at=_stamp(created),
                    workflow_id=workflow["id"],
                    outcome="accepted",
                    http_status=200,
                    notification_count=NOTIFICATIONS_PER_DELIVERY,
                    duplicate_count=0,
                    remote_addr="13.108.0.1",
                    body_bytes=120_000,
                )
                rows["xmflows_delivery"].append(
                    tuple(delivery[c] for c in tables["xmflows_delivery"])
                )
            fields = {
                "Id": record_id(number),
                "CaseNumber": f"{number:08d}",
                "ContactEmail": email(number),
                "First_Name__c": "Alex",
                "Last_Name__c": f"Person {number}",
                "IsClosed": "false" if status == "skipped" else "true",
                "Priority": "High",
                "Status": "Closed",
                "Subject": "Parcel arrived damaged",
            }
            payload = {
                "object_type": "Case",
                "notification_id": f"04l8a{number:013d}",
                "record_id": record_id(number),
                "organization_id": "00D8a000000XyZaEAK",
                "fields": fields,
            }
            notification = dict(defaults["xmflows_notification"])
            notification.update(
                {
                    "id": run_id,
                    "event_id": workflow["event_id"],
                    "notification_id": payload["notification_id"],
                    "delivery_id": number // NOTIFICATIONS_PER_DELIVERY + 1,
                    "received_at": _stamp(created),
                    "record_id": record_id(number),
                    "payload": json.dumps(payload),
                }
            )
            rows["xmflows_notification"].append(
                tuple(notification[c] for c in tables["xmflows_notification"])
            )
            finished = created + timedelta(milliseconds=rng.randint(20, 2000))
            # Some addresses as Salesforce sent them, in mixed case.
            address = email(number) if number % 7 else email(number).capitalize()
            run = dict(defaults["xmflows_run"])
            run.update(
                {
                    "id": run_id,
                    "workflow_id": workflow["id"],
                    "notification_id": run_id,
                    "trigger": "salesforce",
                    "status": status,
                    "reason": (
                        "condition not met (all): IsClosed equals 'true' — actual value 'false'"
                        if status == "skipped"
                        else "task 1 (distribute_survey): survey is not active"
                        if status == "failed"
                        else ""
                    ),
                    "record_id": record_id(number),
                    "email": address,
                    "created_at": _stamp(created),
                    "started_at": None if status == "queued" else _stamp(created),
                    "finished_at": None if status == "queued" else _stamp(finished),
                    "attempts": 0 if status == "queued" else 1,
                    "next_attempt_at": None,
                    "enqueued_at": _stamp(created),
                    "state": "{}",
                }
            )
            rows["xmflows_run"].append(tuple(run[c] for c in tables["xmflows_run"]))
            if status in {"succeeded", "failed"}:
                task_run = dict(defaults["xmflows_taskrun"])
                task_run.update(
                    {
                        "id": run_id,
                        "run_id": run_id,
                        "position": 0,
                        "type": "distribute_survey",
                        "status": status,
                        "output": json.dumps({"contact_id": 1, "warnings": []}),
                        "error": "survey is not active" if status == "failed" else "",
                        "attempts": 1,
                        "started_at": _stamp(created),
                        "finished_at": _stamp(finished),
                    }
                )
                rows["xmflows_taskrun"].append(
                    tuple(task_run[c] for c in tables["xmflows_taskrun"])
                )
            if status == "succeeded" and number % RECIPIENT_EVERY == 0:
                line = dict(defaults["distributions_recipient"])
                line.update(
                    id=run_id,
                    distribution_id=setup["distribution_id"],
                    survey_id=setup["survey_id"],
                    channel="email",
                    contact_id=None,
                    link_id=None,
                    status="delivered",
                    email=email(number),
                    to_address=email(number),
                    record_id=record_id(number),
                    workflow_run_id=run_id,
                    outcome_unknown=0,
                    attempts=1,
                    response_id=None,
                    sending_started_at=None,
                    enqueued_at=None,
                    next_attempt_at=None,
                    scheduled_for=None,
                    sent_at=_stamp(finished),
                    delivered_at=_stamp(finished),
                    opened_at=None,
                    started_at=None,
                    finished_at=None,
                    created_at=_stamp(created),
                    updated_at=_stamp(finished),
                )
                rows["distributions_recipient"].append(
                    tuple(line[c] for c in tables["distributions_recipient"])
                )
        with connection:
            for table in (
                "xmflows_delivery",
                "xmflows_notification",
                "xmflows_run",
                "xmflows_taskrun",
                "distributions_recipient",
            ):
                if rows[table]:
                    connection.executemany(inserts[table], rows[table])
        print(f"  {min(runs, first + BATCH):>9,} runs", end="\r", flush=True)
    print()
    facts = {"max_id": runs}
    connection.close()
    return facts


def page_two_before(db_path: Path, *, workflow_id: int | None, status: str | None) -> int:
    """The ?before= of the second page: the 50th newest matching run's id."""
    connection = sqlite3.connect(db_path)
    where, params = [], []
    if workflow_id:
        where.append("workflow_id = ?")
        params.append(workflow_id)
    if status:
        where.append("status = ?")
        params.append(status)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    row = connection.execute(
        f"SELECT id FROM xmflows_run {clause} ORDER BY id DESC LIMIT 1 OFFSET 49",  # noqa: S608
        params,
    ).fetchone()
    connection.close()
    return row[0]


def query_plans(db_path: Path, workflows: list[dict]) -> list[str]:
    """How SQLite answers each search, in its own words (which index it uses)."""
    connection = sqlite3.connect(db_path)
    questions = {
        "workflow + status": (
            "SELECT id FROM xmflows_run WHERE workflow_id = ? AND status = ? "
            "ORDER BY id DESC LIMIT 51",
            (workflows[3]["id"], "failed"),
        ),
        "record id": (
            "SELECT id FROM xmflows_run WHERE record_id = ? ORDER BY id DESC LIMIT 51",
            (record_id(12345),),
        ),
        "email": (
            "SELECT id FROM xmflows_run WHERE lower(email) = lower(?) ORDER BY id DESC LIMIT 51",
            ("Person12345@Example.org",),
        ),
        "workflow + dates": (
            "SELECT id FROM xmflows_run WHERE workflow_id = ? AND created_at >= ? "
            "AND created_at <= ? AND id >= ? AND id <= ? ORDER BY id DESC LIMIT 51",
            (workflows[0]["id"], "2026-01-01", "2026-01-31", 1, 2),
        ),
    }
    lines = []
    for name, (sql, params) in questions.items():
        plan = connection.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        lines.append(f"  {name:<18} {' / '.join(row[3] for row in plan)}")
    connection.close()
    return lines


class Client:
    """Sequential GETs over one keep-alive-less HTTP connection per request."""

    def __init__(self, server: GunicornServer, session: str):
        self.server = server
        self.cookie = f"sessionid={session}"

    def get(self, path: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
        connection.request("GET", path, headers={"Cookie": self.cookie})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return (time.perf_counter() - started) * 1000, response.status, body


def measure(client: Client, paths: list[str], *, requests: int, expect: bytes) -> list[float]:
    for path in paths[:3]:  # warm-up: caches, first template compile
        client.get(path)
    timings = []
    for index in range(requests):
        path = paths[index % len(paths)]
        elapsed, status, body = client.get(path)
        if status != 200 or expect not in body:
            raise RuntimeError(f"GET {path} answered {status}:\n{body[:500]!r}")
        timings.append(elapsed)
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60, help="timed requests per scenario")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn sync workers")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    var_dir = make_var_dir("xmflows-bench-reports-")
    env = app_env(var_dir=var_dir)  # SQLite in var_dir, always
    env.pop("REDIS_URL", None)
    db_path = var_dir / "db.sqlite3"
    try:
        print(f"Database: SQLite {db_path}")
        manage(["migrate", "--noinput"], env)
        setup = json.loads(run_python(SETUP, env))
        workflows = setup["workflows"]
        now = datetime.now(UTC)
        started = time.perf_counter()
        print(f"Filling {args.runs:,} runs (plus notifications, task runs, lines)…")
        fill(db_path, runs=args.runs, setup=setup, now=now)
        print(
            f"  filled in {time.perf_counter() - started:.0f} s; "
            f"database {db_path.stat().st_size / 1e9:.2f} GB"
        )
        print("Query plans:")
        print("\n".join(query_plans(db_path, workflows)))

        rng = random.Random(7)
        sample = [rng.randrange(args.runs) for _ in range(args.requests)]
        busy, rare = workflows[0]["id"], workflows[3]["id"]
        month_ago = now - timedelta(days=300)
        first_page_end = page_two_before(db_path, workflow_id=None, status=None)
        failed_page_end = page_two_before(db_path, workflow_id=busy, status="failed")
        scenarios = {
            "reports page": (["/reports/workflows/"], b"Workflow reports"),
            "workflow + status": (
                [
                    f"/reports/workflows/?workflow={busy}&status=failed",
                    f"/reports/workflows/?workflow={rare}&status=failed",
                    f"/reports/workflows/?workflow={workflows[1]['id']}&status=skipped",
                    f"/reports/workflows/?workflow={rare}&status=queued",
                ],
                b"Workflow reports",
            ),
            "workflow + dates": (
                [
                    f"/reports/workflows/?workflow={busy}&since={month_ago:%Y-%m-%d}"
                    f"&until={month_ago + timedelta(days=30):%Y-%m-%d}",
                    f"/reports/workflows/?workflow={rare}&status=failed"
                    f"&since={month_ago:%Y-%m-%d}&until={month_ago + timedelta(days=30):%Y-%m-%d}",
                ],
                b"Workflow reports",
            ),
            "record id": (
                [f"/reports/workflows/?q={record_id(n)}" for n in sample],
                b"/reports/workflows/runs/",
            ),
            "email": (
                [f"/reports/workflows/?q=Person{n % EMAILS}@Example.ORG" for n in sample],
                b"/reports/workflows/runs/",
            ),
            "page 2 (keyset)": (
                [
                    f"/reports/workflows/?before={first_page_end}",
                    f"/reports/workflows/?workflow={busy}&status=failed&before={failed_page_end}",
                ],
                b"/reports/workflows/runs/",
            ),
            "why not sent? (email)": (
                [f"/reports/workflows/why/?q=person{n % EMAILS}@example.org" for n in sample],
                b"answer",
            ),
        }
        results = []
        with GunicornServer(env, workers=args.workers) as server:
            print(
                f"Server: {server.description}, DEBUG off; {args.requests} sequential "
                "requests per scenario after a warm-up"
            )
            client = Client(server, setup["session"])
            for name, (paths, expect) in scenarios.items():
                timings = measure(client, paths, requests=args.requests, expect=expect)
                results.append((name, timings))
        print()
        print(
            f"{'scenario':<24}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}   target p95 ≤ "
            f"{TARGET_P95_MS:.0f} ms"
        )
        failed = False
        for name, timings in results:
            p50 = statistics.median(timings)
            p95 = percentile(timings, 0.95)
            verdict = "PASS" if p95 <= TARGET_P95_MS else "FAIL"
            failed |= verdict == "FAIL"
            print(f"{name:<24}{p50:>10.1f}{p95:>10.1f}{max(timings):>10.1f}   {verdict}")
        print()
        print("FAIL" if failed else "PASS")
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"Kept {var_dir}")
        else:
            remove_var_dir(var_dir)


if __name__ == "__main__":
    sys.exit(main())
