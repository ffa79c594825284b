"""The workflow builder pages: the form editor, its dynamic-text menu and piped-text
preview endpoints, and the event test button. Thin views: the form is read and
mapped by xmflows.builder_form, validated by WorkflowSerializer (the API's own),
saved by the services."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from contacts.models import MailingList
from contacts.selectors import embedded_data_names
from core.jsontext import loads
from core.pages import forbidden
from core.params import id_or_none, parse_id
from core.piped_text import menu_entries, placeholders_of_kind, template_problems
from distributions.services import sender_is_verified
from surveys.models import Survey, SurveyStatus
from surveys.selectors import survey_list_visible
from xmflows import selectors, task_types
from xmflows.builder_form import (
    CONTACT_FIELDS,
    EMAIL_MESSAGE_FIELDS,
    FOLLOW_UPS,
    FORM_TASK_TYPES,
    SMS_CHANNELS,
    FormState,
    TaskState,
    apply_operation,
    definition_from_state,
    dropped_channel_texts,
    empty_state,
    flatten_errors,
    map_errors,
    new_task,
    state_from_definition,
    state_from_post,
)
from xmflows.conditions import OPERATOR_PHRASES, OPERATORS, text_comparisons
from xmflows.demo import DEMO_WORKFLOW_NAME
from xmflows.dry_run import PREVIEW_TEMPLATE_MAX, message_preview
from xmflows.models import OnFailure, Run, Workflow
from xmflows.salesforce_objects import STANDARD_OBJECTS
from xmflows.serializers import WorkflowSerializer
from xmflows.services import (
    EventTestRefused,
    NotOwnerError,
    can_see_secrets,
    workflow_event_test,
    workflow_export,
)
from xmflows.task_types.base import directory_write_refusal

CHANNEL_CHOICES = [
    ("email", "Email invitation"),
    ("sms", "SMS invitation"),
    ("sms_survey", "Two-way SMS survey"),
]
MATCH_CHOICES = [
    ("all", "all rules are met"),
    ("any", "any rule is met"),
]
MODE_CHOICES = [
    ("embedded_data", "Save or update embedded data (creates the contact)"),
    ("transaction", "Add as transaction (the contact must exist)"),
]
MESSAGE_LABELS = {
    "from_name": "From name",
    "from_email": "From address (a verified sender)",
    "reply_to": "Reply-to",
    "subject": "Subject",
    "body": "Message (HTML allowed)",
    "text": "SMS text",
}
FOLLOW_UP_LABELS = {
    "after_days": "After (days)",
    "when": "If the respondent has",
    "subject": "Subject",
    "body": "Message (HTML allowed)",
    "text": "SMS text",
}
FOLLOW_UP_TEXTS = {
    "reminder": {
        "title": "Send a reminder",
        "help": "Sent once, by the invitation's channel, with the same personal link, to "
        "a respondent who has not started (or not finished) the survey by then. Piped "
        "text shows the values frozen at the invitation.",
    },
    "thank_you": {
        "title": "Send a thank-you when the survey is finished",
        "help": "Sent by the invitation's channel once the respondent finishes the "
        "survey. Piped text shows the values frozen at the invitation.",
    },
}
REMINDER_WHEN_CHOICES = [
    ("not_started", "not started the survey"),
    ("not_finished", "not finished the survey"),
]


# --- The JSON editor: the advanced view, kept beside the form ---------------------------

NEW_WORKFLOW_TEMPLATE = {
    "name": "Closed case survey",
    "enabled": True,
    "event": {"type": "salesforce_outbound_message", "object": "Case", "organization_id": None},
    "conditions": {
        "match": "all",
        "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}],
    },
    "tasks": [],
}


def _saved_messages(request: HttpRequest, workflow: Workflow) -> None:
    messages.success(request, "Workflow saved.")
    for warning in selectors.condition_field_warnings(workflow=workflow):
        messages.warning(request, warning)
    state = state_from_definition(workflow_export(workflow=workflow))
    known = selectors.object_fields_known(
        object_name=state.object_name, declared=state.event_fields, workflow=workflow
    )
    notices = _task_notices(state, owner=workflow.owner, event_fields=known)
    if notices:
        # Said beside "saved": the list itself is on the page, above the form.
        count = "1 thing" if len(notices) == 1 else f"{len(notices)} things"
        messages.warning(
            request,
            f"Saved, but {count} will make runs fail or misbehave: see “Check before it "
            "runs” below.",
        )


def definition_form(request: HttpRequest, *, workflow: Workflow | None) -> HttpResponse:
    """The advanced editor: the whole definition as JSON, the API's own format."""
    errors = None
    if request.method == "POST":
        text = request.POST.get("definition", "")
        try:
            data = loads(text)
        except ValueError as error:
            errors = {"definition": [f"not valid JSON: {error}"]}
            data = None
        if data is not None:
            serializer = WorkflowSerializer(
                instance=workflow, data=data, context={"request": request}
            )
            if serializer.is_valid():
                saved = serializer.save()
                _saved_messages(request, saved)
                return redirect("workflow-detail", workflow_id=saved.pk)
            errors = serializer.errors
    else:
        definition = workflow_export(workflow=workflow) if workflow else NEW_WORKFLOW_TEMPLATE
        text = json.dumps(definition, indent=2)
    return render(
        request,
        "xmflows/workflow_form.html",
        {
            "workflow": workflow,
            "text": text,
            "errors": errors,
            "error_lines": error_lines(errors) if errors else [],
        },
        status=400 if errors else 200,
    )


def error_lines(errors: Any, path: str = "") -> list[tuple[str, str]]:
    """A serializer's nested errors as (where, message) lines, the place written as a
    path into the definition ("tasks[1].send_delay_minute"): the raw structure, with
    an empty {} for every task without a problem, had to be counted by hand."""
    if isinstance(errors, dict):
        return [
            line
            for key, value in errors.items()
            for line in error_lines(value, str(key) if not path else f"{path}.{key}")
        ]
    if isinstance(errors, list):
        if all(isinstance(item, str) for item in errors):
            return [(path or "definition", str(item)) for item in errors]
        return [
            line
            for index, item in enumerate(errors)
            for line in error_lines(item, f"{path}[{index}]")
        ]
    return [(path or "definition", str(errors))]


@login_required
def workflow_create_json_page(request: HttpRequest) -> HttpResponse:
    return definition_form(request, workflow=None)


@login_required
def workflow_edit_json_page(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    if workflow.owner_id != request.user.pk:
        return forbidden(request, NotOwnerError.message)
    return definition_form(request, workflow=workflow)


# --- The form as the template shows it -------------------------------------------------


class _View:
    """Builds the template's view of a FormState: each input with its name, id, value
    and the errors that belong to it; remembers which errors found an input, so the
    others are still shown (at the top) instead of disappearing."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        self.consumed: set[str] = set()

    def field(self, name: str, value: Any = "") -> dict[str, Any]:
        self.consumed.add(name)
        return {
            "name": name,
            "id": "f-" + name.replace(".", "-").replace(" ", "_"),
            "value": value,
            "errors": self.errors.get(name, []),
        }

    def rule(self, key: str, rule: dict[str, str]) -> dict[str, Any]:
        prefix = f"conditions.rules.{key}"
        return {
            "key": key,
            "field": self.field(f"{prefix}.field", rule.get("field", "")),
            "op": self.field(f"{prefix}.op", rule.get("op", "equals")),
            "value": self.field(f"{prefix}.value", rule.get("value", "")),
            "errors": self._take(prefix),
        }

    def embedded_row(self, task_key: str, key: str, name: str, value: str) -> dict[str, Any]:
        prefix = f"tasks.{task_key}.embedded_data.{key}"
        return {
            "key": key,
            "name": self.field(f"{prefix}.name", name),
            "value": self.field(f"{prefix}.value", value),
        }

    def task(self, key: str, task: TaskState, labels: dict[str, str]) -> dict[str, Any]:
        prefix = f"tasks.{key}"
        view: dict[str, Any] = {
            "key": key,
            "number": int(key) + 1 if key.isdecimal() else "",
            "type": task.type,
            "label": labels.get(task.type, task.type or "Unknown task type"),
            "has_form": task.has_form,
            "type_field": self.field(f"{prefix}.type", task.type),
        }
        if task.has_form:
            for name, value in task.scalars.items():
                view[name] = self.field(f"{prefix}.{name}", value)
            sms = task.scalars.get("channel") in SMS_CHANNELS
            view["contact"] = [
                {
                    **self.field(f"{prefix}.contact.{name}", task.contact.get(name, "")),
                    "label": label,
                    # A text goes to the phone: it, not the email, is then required.
                    "required": (name == "phone")
                    if sms and name in {"email", "phone"}
                    else required,
                }
                for name, label, required in CONTACT_FIELDS
            ]
            view["embedded"] = [
                self.embedded_row(key, str(row), name, value)
                for row, (name, value) in enumerate(task.embedded)
            ]
            view["embedded_errors"] = self._take(f"{prefix}.embedded_data")
            view["extra"] = json.dumps(task.extra) if task.extra else ""
            if task.type == "distribute_survey":
                # Which message fields show before the script runs (and without it).
                view["is_sms"] = sms
                view["is_email"] = not view["is_sms"]
                view["message"] = [
                    {
                        **self.field(f"{prefix}.message.{name}", task.message.get(name, "")),
                        "key": name,
                        "label": MESSAGE_LABELS[name],
                        "channel_group": "sms" if name == "text" else "email",
                    }
                    for name in (*EMAIL_MESSAGE_FIELDS, "text")
                ]
                view["message_errors"] = self._take(f"{prefix}.message")
                view["follow_ups_view"] = [
                    self.follow_up(prefix, key, task.follow_ups.get(key) or {})
                    for key in FOLLOW_UPS
                ]
        else:
            view["config_json"] = self.field(f"{prefix}.config_json", task.config_json)
        # Whatever else was said about this task: on its card.
        view["errors"] = self._take(prefix) + [
            f"{path.removeprefix(prefix + '.')}: {message}"
            for path in sorted(self.errors)
            if path.startswith(prefix + ".") and path not in self.consumed
            for message in self._take(path)
        ]
        return view

    def follow_up(self, prefix: str, key: str, values: dict[str, str]) -> dict[str, Any]:
        """A follow-up's box and inputs; its texts carry the channel they belong to."""
        view: dict[str, Any] = {
            "key": key,
            "on": self.field(f"{prefix}.{key}.on", values.get("on", "")),
            **FOLLOW_UP_TEXTS[key],
        }
        for name in FOLLOW_UPS[key]:
            view[name] = {
                **self.field(f"{prefix}.{key}.{name}", values.get(name, "")),
                "label": FOLLOW_UP_LABELS[name],
            }
        view["errors"] = self._take(f"{prefix}.{key}")
        return view

    def _take(self, name: str) -> list[str]:
        self.consumed.add(name)
        return list(self.errors.get(name, []))

    def leftovers(self) -> list[tuple[str, list[str]]]:
        return [(path, msgs) for path, msgs in self.errors.items() if path not in self.consumed]


def _task_labels() -> dict[str, str]:
    return {key: task_type.label for key, task_type in sorted(task_types.all_types().items())}


def _form_view(state: FormState, errors: dict[str, list[str]]) -> dict[str, Any]:
    view = _View(errors)
    labels = _task_labels()
    form = {
        "name": view.field("name", state.name),
        "enabled": view.field("enabled", state.enabled),
        "object": view.field("event.object", state.object_name),
        "organization_id": view.field("event.organization_id", state.organization_id),
        "event_fields": view.field("event.fields", "\n".join(state.event_fields)),
        "on_failure": view.field("on_failure", state.on_failure),
        "notify": view.field("notify_owner_on_failure", state.notify_owner_on_failure),
        "match": view.field("conditions.match", state.match),
        "rules": [view.rule(str(index), rule) for index, rule in enumerate(state.rules)],
        "tasks": [view.task(str(index), task, labels) for index, task in enumerate(state.tasks)],
    }
    form["condition_errors"] = view._take("conditions")
    form["event_errors"] = view._take("event")
    form["task_list_errors"] = view._take("tasks")
    form["other_errors"] = view.leftovers()
    form["error_count"] = sum(len(messages) for messages in errors.values())
    # Blank cards and rows for the page script to copy; "__T__"/"__R__" become fresh
    # indexes when it does. Never posted: <template> content is not part of the form.
    blank = _View({})
    form["new_tasks"] = [
        blank.task("__T__", new_task(key), labels) for key in labels if key in FORM_TASK_TYPES
    ] + [blank.task("__T__", new_task(key), labels) for key in labels if key not in FORM_TASK_TYPES]
    form["new_rule"] = blank.rule("__R__", {"field": "", "op": "equals", "value": ""})
    form["new_embedded_row"] = blank.embedded_row("__T__", "__R__", "", "")
    return form


def _choices(user, state: FormState | None = None) -> dict[str, Any]:
    mailing_lists = [
        (str(item.pk), f"{item.directory.name} / {item.name}")
        for item in MailingList.objects.select_related("directory").order_by(
            "directory__name", "name"
        )[:500]
    ]
    surveys = [
        # "Old survey — inactive (closed)": the status's label reads well after a dash.
        (str(item.pk), f"{item.name} — {item.get_status_display().lower()}")
        for item in survey_list_visible(user=user).order_by("name")[:500]
    ]
    # A survey the form already names but this user may not see (a copied workflow,
    # say): shown as what it is, not as an empty choice that then reads "required".
    listed = {value for value, _ in surveys}
    named = {
        task.scalars.get("survey", "")
        for task in (state.tasks if state else [])
        if task.type == "distribute_survey"
    }
    hidden = sorted(filter(None, (id_or_none(value) for value in named - listed)))
    for survey in Survey.objects.filter(pk__in=hidden).select_related("owner"):
        surveys.append(
            (
                str(survey.pk),
                f"{survey.name} (id {survey.pk}, of {survey.owner.get_username()}: not shared "
                "with you to distribute — runs fail until it is, or choose another)",
            )
        )
    return {
        "mailing_list_choices": mailing_lists,
        "survey_choices": surveys,
        "channel_choices": CHANNEL_CHOICES,
        "mode_choices": MODE_CHOICES,
        "reminder_when_choices": REMINDER_WHEN_CHOICES,
        "operator_choices": [(op, OPERATOR_PHRASES[op]) for op in OPERATORS],
        "match_choices": MATCH_CHOICES,
        "on_failure_choices": OnFailure.choices,
        "object_suggestions": list(STANDARD_OBJECTS),
        "task_type_choices": list(_task_labels().items()),
    }


def menu_for(
    *,
    object_name: str,
    declared: list[str],
    workflow: Workflow | None,
    extra_embedded: list[str] = (),
) -> dict[str, Any]:
    """The {a} menu: event fields (declared, seen, standard), contact fields, embedded
    data names (seen in the directory and mapped in this form), links."""
    fields = selectors.object_fields_known(
        object_name=object_name, declared=declared, workflow=workflow
    )
    embedded = list(dict.fromkeys([*extra_embedded, *embedded_data_names()]))
    return {
        "entries": menu_entries(event_fields=fields, embedded_data_names=embedded),
        "event_fields": fields,
    }


def builder_context(
    request: HttpRequest,
    *,
    state: FormState,
    errors: dict[str, list[str]],
    workflow: Workflow | None,
    readonly: bool = False,
) -> dict[str, Any]:
    """Everything the builder form needs; the workflow page uses it read-only."""
    embedded_in_form = [name for task in state.tasks for name, _ in task.embedded if name]
    menu = menu_for(
        object_name=state.object_name,
        declared=state.event_fields,
        workflow=workflow,
        extra_embedded=embedded_in_form,
    )
    return {
        "workflow": workflow,
        # seed_demo (run.sh) puts the demo's definition back at every start.
        "is_demo": workflow is not None and workflow.name == DEMO_WORKFLOW_NAME,
        "may_see_event_url": workflow is not None
        and can_see_secrets(user=request.user, owner_id=workflow.owner_id),
        "task_notices": _task_notices(
            state,
            owner=workflow.owner if workflow else request.user,
            event_fields=menu["event_fields"],
        ),
        "form": _form_view(state, errors),
        "readonly": readonly,
        "menu": menu,
        "event_field_suggestions": menu["event_fields"],
        "sample_runs": selectors.sample_runs(workflow=workflow, object_name=state.object_name),
        **_choices(request.user, state),
    }


def _task_notices(state: FormState, *, owner, event_fields: list[str] = ()) -> list[str]:
    """What will make runs fail or misbehave whatever the message, said when the
    workflow is shown and saved (not refused: piped text renders, with a warning, what
    it cannot fill, and a survey may be activated later).

    `event_fields` are the fields the event is known to carry (declared, received,
    standard for its object): a ${event://…} naming none of them (a typo, most often)
    comes out empty in every message. Only when the event lists its fields: without
    the list, any custom field may come."""
    notices: list[str] = []
    known = {name.lower() for name in event_fields} if state.event_fields else set()
    labels = []
    for task in state.tasks:
        task_type = task_types.get(task.type)
        if task_type is not None and task_type.writes_directory and task_type.label not in labels:
            labels.append(task_type.label)
    refusal = directory_write_refusal(owner) if labels else ""
    if refusal:
        named = " and ".join(f"“{label}”" for label in labels)
        notices.append(f"{named} will fail on every run: {refusal}.")
    notices.extend(f"Conditions, {note}." for note in text_comparisons(_conditions(state)))
    for number, task in enumerate(state.tasks, start=1):
        for label, template in _templates(task):
            for problem in template_problems(template):
                # As the renderer treats it (PIPED_TEXT.md): an unclosed placeholder is
                # kept as written, any other broken one renders as nothing.
                result = (
                    "it is copied as text" if "is not closed" in problem else "it comes out empty"
                )
                notices.append(f"Task {number}, {label}: {problem}; {result}.")
            for placeholder in placeholders_of_kind(template, ("event",)) if known else ():
                name = placeholder[len("${event://") : -1].split("?", 1)[0].strip()
                if name and name.lower() not in known:
                    notices.append(
                        f"Task {number}, {label}: {placeholder} names a field this event "
                        f"neither lists nor has received, nor a standard {state.object_name} "
                        "field: it comes out empty (is it spelled right?)."
                    )
        for label, template in _contact_templates(task):
            for placeholder in placeholders_of_kind(template, ("m", "l")):
                what = "the contact" if placeholder.startswith("${m:") else "a survey link"
                notices.append(
                    f"Task {number}, {label}: {placeholder} is always empty here: contact fields "
                    f"are filled from the event, before {what} exists (use ${{event://…}})."
                )
        if task.type == "distribute_survey":
            notices.extend(f"Task {number}: {note}" for note in _distribution_notes(task))
    return notices


def _conditions(state: FormState) -> dict[str, Any]:
    return {"rules": [dict(rule) for rule in state.rules]}


def _contact_templates(task: TaskState) -> list[tuple[str, str]]:
    """(where, template) for the contact fields and embedded data values of a task:
    rendered from the event alone, before there is a contact or a survey link."""
    found = [(f"contact {name.replace('_', ' ')}", value) for name, value in task.contact.items()]
    found += [(f"embedded data {name or '(unnamed)'}", value) for name, value in task.embedded]
    return [(where, template) for where, template in found if template]


def _templates(task: TaskState) -> list[tuple[str, str]]:
    """(where, template) for every piped-text value of a task's form."""
    found = _contact_templates(task)
    channel = task.scalars.get("channel") or "email"
    message_keys = ("text",) if channel in SMS_CHANNELS else EMAIL_MESSAGE_FIELDS
    found += [(name.replace("_", " "), task.message.get(name) or "") for name in message_keys]
    for follow_up, values in task.follow_ups.items():
        if values.get("on"):
            found += [
                (f"{follow_up.replace('_', '-')} {name}", value)
                for name, value in values.items()
                if name in ("subject", "body", "text")
            ]
    return [(where, template) for where, template in found if template]


_SURVEY_LINKS = ("${l://SurveyURL", "${l://SurveyLink")


def _distribution_notes(task: TaskState) -> list[str]:
    notes = []
    survey = id_or_none(task.scalars.get("survey"))
    found = (
        Survey.objects.filter(pk=survey).values_list("name", "status").first() if survey else None
    )
    if found is not None and found[1] != SurveyStatus.ACTIVE:
        notes.append(
            f"survey “{found[0]}” is not active: every run fails (“survey is not active”) "
            "until it is activated."
        )
    channel = task.scalars.get("channel") or "email"
    sender = (task.message.get("from_email") or "").strip()
    if channel not in SMS_CHANNELS and "@" in sender and not sender_is_verified(address=sender):
        # A staff member may have withdrawn it since the save, or it never was (the
        # save refused it, and this notice repeats why the runs would fail).
        notes.append(
            f"the sender {sender} is not a verified sender: every email fails (“sender "
            "address … is no longer verified”) until a staff member verifies it "
            "(Admin → Verified senders)."
        )
    if channel == "sms_survey":
        return notes  # the questions go by text: no link needed
    invitation = task.message.get("text" if channel in SMS_CHANNELS else "body") or ""
    if invitation.strip() and not any(link in invitation for link in _SURVEY_LINKS):
        notes.append(
            "the invitation holds no ${l://SurveyLink} or ${l://SurveyURL}: the person "
            "gets no way to answer."
        )
    return notes


def _merge(*sources: dict[str, list[str]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for source in sources:
        for name, items in source.items():
            merged.setdefault(name, []).extend(items)
    return merged


def _builder(request: HttpRequest, *, workflow: Workflow | None) -> HttpResponse:
    status = 200
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        parsed = state_from_post(request.POST)
        state = parsed.state
        operation = request.POST.get("op") or "save"
        if operation != "save":
            # A no-script button (add a task, move it…): show the changed form, unsaved.
            apply_operation(parsed, operation, task_labels=_task_labels())
        else:
            definition, form_errors = definition_from_state(state)
            serializer = WorkflowSerializer(
                instance=workflow, data=definition, context={"request": request}
            )
            valid = serializer.is_valid()
            errors = _merge(parsed.errors, form_errors)
            if valid and not errors:
                try:
                    saved = serializer.save()
                except NotOwnerError as error:
                    return forbidden(request, str(error))
                _saved_messages(request, saved)
                for note in dropped_channel_texts(state):
                    messages.warning(request, note)
                return redirect("workflow-detail", workflow_id=saved.pk)
            if not valid:
                errors = _merge(errors, map_errors(flatten_errors(serializer.errors), state))
            status = 400
    elif workflow is not None:
        state = state_from_definition(workflow_export(workflow=workflow))
    else:
        state = empty_state()
    context = builder_context(request, state=state, errors=errors, workflow=workflow)
    context["json_url"] = (
        reverse("workflow-edit-json", args=[workflow.pk])
        if workflow
        else reverse("workflow-create-json")
    )
    return render(request, "xmflows/builder.html", context, status=status)


@login_required
def workflow_create_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and "definition" in request.POST:
        # The JSON editor posts here too (its URL before the builder existed).
        return definition_form(request, workflow=None)
    return _builder(request, workflow=None)


@login_required
def workflow_edit_page(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow.objects.select_related("event"), pk=workflow_id)
    if workflow.owner_id != request.user.pk:
        return forbidden(request, NotOwnerError.message)
    if request.method == "POST" and "definition" in request.POST:
        return definition_form(request, workflow=workflow)
    return _builder(request, workflow=workflow)


# --- JSON endpoints for the page script --------------------------------------------


def _names(value: str) -> list[str]:
    return [name.strip() for name in (value or "").split(",") if name.strip()][:500]


@login_required
@require_GET
def dynamic_text_menu(request: HttpRequest) -> JsonResponse:
    """GET ?object=Case&fields=A,B&embedded=X,Y&workflow=ID → the {a} menu entries."""
    workflow = None
    workflow_id = request.GET.get("workflow") or ""
    if id_or_none(workflow_id):
        workflow = Workflow.objects.select_related("event").filter(pk=workflow_id).first()
    menu = menu_for(
        object_name=request.GET.get("object", "")[:100],
        declared=_names(request.GET.get("fields", "")),
        workflow=workflow,
        extra_embedded=_names(request.GET.get("embedded", "")),
    )
    return JsonResponse(menu)


def _string_map(value: Any, name: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    result: dict[str, str] = {}
    for key, item in value.items():
        text = "" if item is None else str(item)
        if len(text) > PREVIEW_TEMPLATE_MAX:
            raise ValueError(f"{name}.{key} is longer than {PREVIEW_TEMPLATE_MAX} characters")
        result[str(key)] = text
    return result


@login_required
@require_POST
def piped_text_preview(request: HttpRequest) -> JsonResponse:
    """POST {"run": id, "contact": {…}, "embedded_data": {…}, "message": {…}} →
    the message rendered against that run's stored payload, with warnings.

    Sends the CSRF token in X-CSRFToken like any form post; renders only."""
    try:
        data = loads(request.body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        run_id = parse_id(str(data.get("run") or "")) or 0
        contact = _string_map(data.get("contact"), "contact")
        embedded = _string_map(data.get("embedded_data"), "embedded_data")
        message = _string_map(data.get("message"), "message")
    except (ValueError, TypeError) as error:
        return JsonResponse({"error": str(error)}, status=400)
    run = (
        Run.objects.select_related("workflow", "notification").filter(pk=run_id).first()
        if run_id
        else None
    )
    if run is None:
        return JsonResponse({"error": "choose a stored message (run) to preview with"}, status=404)
    return JsonResponse(
        message_preview(run=run, contact_map=contact, embedded_data_map=embedded, message=message)
    )


# --- Event test ----------------------------------------------------------------------


@login_required
@require_POST
def workflow_event_test_page(request: HttpRequest, workflow_id: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow.objects.select_related("event"), pk=workflow_id)
    try:
        result = workflow_event_test(workflow=workflow, user=request.user)
    except NotOwnerError as error:
        return forbidden(request, str(error))
    except EventTestRefused as error:
        messages.error(
            request,
            f"The endpoint refused the sample message: {error}. "
            "It is listed under Deliveries, as Salesforce's messages are."
            + (
                ""
                if workflow.enabled
                else " This workflow is disabled: tick Enabled in its editor, then test again."
            ),
        )
        return redirect("workflow-detail", workflow_id=workflow.pk)
    messages.success(
        request,
        f"Sample message for record {result.record_id} went through the event URL's "
        "endpoint; this is its run.",
    )
    return redirect("run-detail", run_id=result.run_id)
