"""Troubleshooting and report pages: "why not sent?", dry run and replay of a stored
payload, and distribution reports with charts. Thin views over selectors/services."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_date
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from core.charts import Series, line_chart, stacked_bar_chart
from core.pages import forbidden
from core.params import id_or_none
from distributions.models import Distribution, DistributionChannel, MessageKind
from distributions.reports import (
    METRICS,
    default_period,
    distribution_report,
    rate,
    report_recipients,
)
from surveys.models import Survey
from surveys.selectors import survey_list_visible
from xmflows import selectors
from xmflows.dry_run import dry_run
from xmflows.models import Run, Workflow
from xmflows.services import can_operate, run_replay

WHY_LIMIT = 50
# Colours of the status series, fixed so a status looks the same in every chart.
METRIC_COLORS = {
    "sent": "#0969da",
    "delivered": "#1a7f37",
    "opened": "#8250df",
    "started": "#bf8700",
    "finished": "#0a7ea4",
    "bounced": "#953800",
    "failed": "#cf222e",
    "skipped": "#6e7781",
    "opted_out": "#bf3989",
    "waiting": "#57606a",
}
CHANNEL_COLORS = {"email": "#0969da", "sms": "#1a7f37", "sms_survey": "#8250df"}


@login_required
def why_not_sent_page(request: HttpRequest) -> HttpResponse:
    """From a Salesforce record id or an email address to the answer: each run of it,
    newest first, with the exact reason nothing (or something) was sent, and refused
    messages that mention it (those made no run)."""
    search = (request.GET.get("q") or "").strip()[:254]
    answers = []
    rejected = []
    orphans = []
    if search:
        runs = list(
            selectors.runs_matching(
                Run.objects.select_related("workflow", "notification"), search, unstarted=True
            ).order_by("-id")[:WHY_LIMIT]
        )
        explanations = selectors.run_explanations(runs, user=request.user)
        again = selectors.redeliveries(runs)
        answers = [
            {"run": run, "explanation": explanations[run.pk], "again": again.get(run.pk, [])}
            for run in runs
        ]
        rejected = selectors.rejected_deliveries_mentioning(search)
        orphans = selectors.lines_of_deleted_runs(search, user=request.user)
    phone_like = bool(search) and selectors.looks_like_phone(search)
    return render(
        request,
        "xmflows/why.html",
        {
            "search": search,
            "answers": answers,
            "rejected": rejected,
            "orphans": orphans,
            "limit": WHY_LIMIT,
            "phone_search": phone_like,
            # Only asked when nothing was found: the search itself read the number.
            "phone_unreadable": phone_like and not answers and not selectors.phone_forms(search),
        },
    )


def _run_or_404(run_id: int) -> Run:
    run = selectors.run_detail(run_id=run_id)
    if run is None:
        raise Http404(selectors.run_gone(run_id))
    return run


@login_required
def run_dry_run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """What the workflow as it is now would do with this run's payload; sends nothing."""
    run = _run_or_404(run_id)
    result = dry_run(run=run)
    return render(
        request,
        "xmflows/dry_run.html",
        {
            "run": run,
            "result": result,
            "can_operate": can_operate(workflow=run.workflow, user=request.user),
        },
    )


@login_required
@require_POST
def run_replay_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(run_id)
    if not can_operate(workflow=run.workflow, user=request.user):
        return forbidden(request, "only the workflow's owner or a staff member can replay a run")
    replay = run_replay(run=run)
    messages.success(
        request, f"Replay of run #{run.pk} queued as this run, with the workflow as it is now."
    )
    return redirect("run-detail", run_id=replay.pk)


# --- Distribution reports -----------------------------------------------------------


def _day(value: str | None) -> date | None:
    try:
        return parse_date(value or "") if value else None
    except ValueError:
        return None


def _choice(value: str | None, allowed, problems: list[str], refusal) -> str:
    """`value` when it is one of `allowed`; otherwise "" and refusal(value) among the
    page's problems (a filter that cannot be read is said, not applied)."""
    if value and value not in allowed:
        problems.append(refusal(value))
        return ""
    return value or ""


# What a follow-up line never records: starting and finishing the survey are recorded
# on the invitation's line, whose link it is.
INVITATION_ONLY_METRICS = frozenset({"started", "finished"})


@login_required
def distribution_report_page(request: HttpRequest) -> HttpResponse:
    """Counts and rates per day by status and by channel, for a survey, a workflow or
    all the surveys the user may see, as charts (inline SVG) and tables, with the
    history CSV downloads of CONTRACT.md §6."""
    params = request.GET
    visible_surveys = survey_list_visible(user=request.user).order_by("name")
    survey_id = id_or_none(params.get("survey"))
    survey = visible_surveys.filter(pk=survey_id).first() if survey_id else None
    if survey_id and survey is None:
        if not Survey.objects.filter(pk=survey_id).exists():
            raise Http404(f"no survey {survey_id}")
        return forbidden(request, "you do not have access to this survey")
    # A filter that cannot be read is said and not applied (as on the run list), so
    # the charts never look filtered while showing everything.
    problems: list[str] = []
    workflow_id = id_or_none(params.get("workflow"))
    workflow = Workflow.objects.filter(pk=workflow_id).first() if workflow_id else None
    if params.get("workflow") and workflow is None:
        problems.append(f"workflow: {params['workflow']!r} is not a workflow's id; not applied")
    channel = _choice(
        params.get("channel"),
        DistributionChannel.values,
        problems,
        lambda value: (
            f"channel: unknown channel {value!r} (one of "
            f"{', '.join(DistributionChannel.values)}); not applied"
        ),
    )
    kind = _choice(
        params.get("kind"),
        MessageKind.values,
        problems,
        lambda value: (
            f"Message: {value!r} is not one of "
            f"{', '.join(f'{label}s' for label in MessageKind.labels)}; not applied"
        ),
    )
    default_since, default_until = default_period()
    dates = {}
    for name, default in (("since", default_since), ("until", default_until)):
        dates[name] = _day(params.get(name))
        if params.get(name) and dates[name] is None:
            problems.append(
                f"{name}: not a valid date (YYYY-MM-DD): {params[name]!r}; {default:%Y-%m-%d} used"
            )
    since = dates["since"] or default_since
    until = dates["until"] or default_until
    recipients = report_recipients(
        user=request.user,
        survey_id=survey.pk if survey else None,
        workflow_id=workflow.pk if workflow else None,
        channel=channel or None,
        kind=kind or None,
    )
    report = distribution_report(recipients=recipients, since=since, until=until)
    labels = [day.strftime("%m-%d") for day in report.days]
    channel_labels = dict(DistributionChannel.choices)
    charts = {
        "counts": line_chart(
            title="Lines per day by status (by the day the line was created)",
            x_labels=labels,
            series=[
                Series(metric.label, report.series(metric.key), METRIC_COLORS[metric.key])
                for metric in METRICS
            ],
        ),
        "rates": line_chart(
            title="Rates per day (delivered … bounced: % of sent; the others: % of lines)",
            x_labels=labels,
            series=[
                Series(metric.label, report.rate_series(metric), METRIC_COLORS[metric.key])
                for metric in METRICS
            ],
            percent=True,
        ),
        "channels": stacked_bar_chart(
            title="Lines per day by channel",
            x_labels=labels,
            series=[
                Series(channel_labels.get(code, code), values, CHANNEL_COLORS.get(code, ""))
                for code, values in report.lines_by_day_and_channel.items()
            ],
        ),
    }
    totals = [
        {"metric": metric, "count": report.totals[metric.key], "rate": rate(report.totals, metric)}
        for metric in METRICS
    ]
    channels = [
        {
            "label": channel_labels.get(code, code),
            "lines": counts["lines"],
            "metrics": [
                {"count": counts[metric.key], "rate": rate(counts, metric)} for metric in METRICS
            ],
        }
        for code, counts in sorted(report.by_channel.items())
    ]
    kind_labels = dict(MessageKind.choices)
    kinds = [
        {
            "label": kind_labels.get(code, code),
            "lines": counts["lines"],
            # Survey progress is credited to the invitation's line (the link is its):
            # for a reminder or thank-you those columns do not apply.
            "metrics": [
                {"na": True}
                if code != MessageKind.INVITATION and metric.key in INVITATION_ONLY_METRICS
                else {"count": counts[metric.key], "rate": rate(counts, metric)}
                for metric in METRICS
            ],
        }
        for code, counts in report.by_kind.items()
    ]
    days = [
        {
            "day": day,
            "lines": report.by_day[day]["lines"],
            "metrics": [report.by_day[day][metric.key] for metric in METRICS],
        }
        for day in reversed(report.days)
        if report.by_day[day]["lines"]
    ]
    workflow_distributions = (
        list(
            Distribution.objects.filter(
                workflow_id=workflow.pk, survey__in=visible_surveys.values("pk")
            )
            .select_related("survey")
            .order_by("-id")[:20]
        )
        if workflow
        else []
    )
    workflow_surveys = (
        visible_surveys.filter(distributions__workflow_id=workflow.pk).distinct()
        if workflow
        else []
    )
    # Distributions of this workflow to surveys the user may not see: left out of the
    # figures, and said so ("distributed nothing" would be untrue).
    hidden_distributions = (
        Distribution.objects.filter(workflow_id=workflow.pk)
        .exclude(survey__in=visible_surveys.values("pk"))
        .count()
        if workflow
        else 0
    )
    return render(
        request,
        "reports/distributions.html",
        {
            "report": report,
            # Markup built and escaped by core.charts.
            "charts": {name: mark_safe(svg) for name, svg in charts.items()},  # noqa: S308
            "totals": totals,
            "channels": channels,
            "days": days,
            "metrics": METRICS,
            "surveys": visible_surveys,
            "survey": survey,
            "hidden_distributions": hidden_distributions,
            "workflows": Workflow.objects.order_by("name").only("id", "name"),
            "workflow": workflow,
            "channel": channel,
            "channel_choices": DistributionChannel.choices,
            "kinds": kinds,
            "kind": kind,
            "kind_choices": MessageKind.choices,
            "workflow_distributions": workflow_distributions,
            "workflow_surveys": workflow_surveys,
            "filter_problems": problems,
            # Delivered comes from the provider's webhooks: the outbox gets none.
            "no_delivery_reports": settings.EMAIL_BACKEND.endswith(".OutboxEmailBackend"),
        },
    )
