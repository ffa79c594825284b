"""What the current workflow would do with a stored payload (dry run), and piped-text
previews for the builder's message editor. Reads only: nothing is saved or sent.

Each task type's `preview(ctx)` renders without writing; it is run inside a
transaction that is always rolled back as well, so a preview that wrote by mistake
(or queued a send: the ORM broker's queue row, or an on-commit hook) still leaves
no trace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from core.piped_text import RenderContext, render
from xmflows import task_types
from xmflows.conditions import ConditionError, ConditionResult, evaluate_conditions
from xmflows.contact_mapping import MAPPED_CONTACT_FIELDS
from xmflows.engine import condition_fields, context_for
from xmflows.models import OnFailure, Run

logger = logging.getLogger(__name__)

# Piped-text names of the contact fields, in MAPPED_CONTACT_FIELDS order.
CONTACT_PIPED_NAMES = dict(
    zip(
        MAPPED_CONTACT_FIELDS,
        ("FirstName", "LastName", "Email", "PhoneNumber", "ExternalDataReference", "Language"),
        strict=True,
    )
)
PREVIEW_TEMPLATE_MAX = 200_000


@dataclass
class TaskPreview:
    position: int
    type: str
    label: str
    preview: dict[str, Any]
    # Set when an earlier task would fail and the workflow stops on failure.
    not_run: str = ""

    @property
    def error(self) -> str:
        return str(self.preview.get("error") or "")


@dataclass
class DryRun:
    run: Run
    conditions: ConditionResult | None
    conditions_error: str = ""
    tasks: list[TaskPreview] = field(default_factory=list)

    @property
    def would_run_tasks(self) -> bool:
        return self.conditions is not None and self.conditions.passed


def dry_run(*, run: Run) -> DryRun:
    """The run's stored payload through the workflow's current conditions and tasks.

    The context starts empty (no state from the original run): this is what a new
    run of the same notification — a replay — would meet. Task previews are shown
    even when the conditions fail, marked as such, so the admin sees both answers.
    """
    ctx = context_for(run, dry_run=True)
    ctx.state = {}
    try:
        conditions = evaluate_conditions(run.workflow.conditions, condition_fields(ctx))
    except ConditionError as error:
        return DryRun(run=run, conditions=None, conditions_error=str(error))
    result = DryRun(run=run, conditions=conditions)
    stopped_by = ""
    for task in run.workflow.tasks.order_by("position"):
        task_type = task_types.get(task.type)
        if task_type is None:
            preview: dict[str, Any] = {
                "error": f"unknown task type {task.type!r}: its module is not installed"
            }
            label = task.type
        else:
            label = task_type.label
            ctx.task_number = task.position + 1
            preview = _preview(task_type(task.config), ctx)
        result.tasks.append(
            TaskPreview(
                position=task.position,
                type=task.type,
                label=label,
                preview=preview,
                not_run=(
                    f"task {stopped_by} would fail and the workflow stops on failure"
                    if stopped_by
                    else ""
                ),
            )
        )
        if preview.get("error") and not stopped_by and run.workflow.on_failure == OnFailure.STOP:
            stopped_by = str(task.position + 1)
    return result


def _preview(task: task_types.TaskType, ctx) -> dict[str, Any]:
    try:
        with transaction.atomic():
            preview = task.preview(ctx)
            transaction.set_rollback(True)
    except Exception as error:  # a bug in one preview must not hide the others
        logger.exception("preview of %s failed", task.key)
        return {"error": f"internal error: {type(error).__name__}: {error}"}
    return dict(preview or {})


def preview_links() -> dict[str, str]:
    """Stand-ins for the personal links, which exist only once a line is created."""
    base = settings.PUBLIC_BASE_URL
    return {"SurveyURL": f"{base}/s/preview-link/", "OptOutURL": f"{base}/o/preview-link/"}


def message_preview(
    *,
    run: Run,
    contact_map: dict[str, str],
    embedded_data_map: dict[str, str],
    message: dict[str, str],
) -> dict[str, Any]:
    """Render a message being edited against a stored payload: the contact and
    embedded data mapped from it first (so ${m://FirstName} has a value), then each
    message field — subject and SMS text as plain text, the body as HTML. Never
    fails for any template; problems are the warnings."""
    ctx = context_for(run, dry_run=True)
    event_context = ctx.render_context()
    warnings: list[str] = []
    contact: dict[str, str] = {}
    for name, piped_name in CONTACT_PIPED_NAMES.items():
        rendered = render(str((contact_map or {}).get(name) or ""), event_context)
        warnings.extend(rendered.warnings)
        contact[piped_name] = rendered.text.strip()
    embedded: dict[str, str] = {}
    for name, template in (embedded_data_map or {}).items():
        rendered = render(str(template or ""), event_context)
        warnings.extend(rendered.warnings)
        embedded[str(name)] = rendered.text
    context = RenderContext(
        event_fields=ctx.fields,
        event_facts=ctx.event_facts(),
        contact=contact,
        embedded_data=embedded,
        links=preview_links(),
    )
    rendered_message: dict[str, str] = {}
    for key, template in (message or {}).items():
        html = key == "body"
        rendered = render(str(template or ""), context, html=html)
        warnings.extend(rendered.warnings)
        text = rendered.text
        if key in {"subject", "from_name"}:
            # As the send does: a header is one line.
            text = " ".join(text.split())
        rendered_message[str(key)] = text
    return {
        "run": run.pk,
        "record_id": run.record_id,
        "contact": contact,
        "embedded_data": embedded,
        "message": rendered_message,
        "warnings": list(dict.fromkeys(warnings)),
    }
