"""The workflow builder form: posted fields to a workflow definition and back, and the
definition's validation errors mapped onto the inputs; no Django imports.

The builder posts flat names (`tasks.1.message.subject`, `conditions.rules.0.op`,
`tasks.0.embedded_data.2.name`). Rows and cards are ordered by where their index
first appears in the post — the order of the page — so the browser script can add,
drop and move cards without renumbering anything; it only needs fresh indexes.

The definition built here goes through WorkflowSerializer like any API call (one
validation path); this module only turns its error tree back into input names, so
each message is shown beside the input it is about.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.jsontext import loads

__all__ = [
    "CONTACT_FIELDS",
    "EMAIL_MESSAGE_FIELDS",
    "FOLLOW_UPS",
    "FORM_TASK_TYPES",
    "SMS_CHANNELS",
    "ParsedForm",
    "apply_operation",
    "definition_from_state",
    "empty_state",
    "flatten_errors",
    "map_errors",
    "state_from_definition",
    "state_from_post",
]

# (key, label, required) in the order the field-mapping editor shows them (SPEC F3).
CONTACT_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("first_name", "First name", True),
    ("last_name", "Last name", True),
    ("email", "Email", True),
    ("phone", "Phone", False),
    ("external_data_reference", "External data reference", False),
    ("language", "Language", False),
)
EMAIL_MESSAGE_FIELDS: tuple[str, ...] = ("from_name", "from_email", "reply_to", "subject", "body")
SMS_CHANNELS = frozenset({"sms", "sms_survey"})
# The follow-ups of a distribute task (xmflows.campaign_config) and the inputs each has
# besides its on/off box: the texts shown are the channel's (subject and body for
# email, text for SMS), as for the invitation.
FOLLOW_UPS: dict[str, tuple[str, ...]] = {
    "reminder": ("after_days", "when", "subject", "body", "text"),
    "thank_you": ("subject", "body", "text"),
}
_FOLLOW_UP_DEFAULTS = {"when": "not_started"}
_FOLLOW_UP_NUMBERS = frozenset({"after_days"})
# Scalars edited with a checkbox: "on" or "" in the form, true/false in the definition.
_CHECKBOXES = frozenset({"send_at_next_working_hour"})
# The config keys each form edits; anything else in a task's config is carried
# through a hidden field untouched, so a key added later (reminders, link expiry…)
# is never lost by saving from the builder.
FORM_TASK_TYPES: dict[str, frozenset[str]] = {
    "add_to_directory": frozenset({"mode", "mailing_list", "contact", "embedded_data"}),
    "distribute_survey": frozenset(
        {
            "channel",
            "survey",
            "mailing_list",
            "contact",
            "embedded_data",
            "message",
            "send_delay_minutes",
            "link_expiry_days",
            "send_at_next_working_hour",
            *FOLLOW_UPS,
        }
    ),
}
_SCALARS: dict[str, tuple[str, ...]] = {
    "add_to_directory": ("mode", "mailing_list"),
    "distribute_survey": (
        "channel",
        "survey",
        "mailing_list",
        "send_delay_minutes",
        "link_expiry_days",
        "send_at_next_working_hour",
    ),
}
_DEFAULTS: dict[str, dict[str, str]] = {
    "add_to_directory": {"mode": "embedded_data", "mailing_list": ""},
    "distribute_survey": {
        "channel": "email",
        "survey": "",
        "mailing_list": "",
        "send_delay_minutes": "0",
        "link_expiry_days": "",
        "send_at_next_working_hour": "",
    },
}
_UNARY_OPERATORS = frozenset({"is_empty", "is_not_empty"})
_RULE = re.compile(r"^conditions\.rules\.(\d+)\.(field|op|value)$")
_TASK = re.compile(r"^tasks\.(\d+)\.(.+)$")
_EMBEDDED = re.compile(r"^embedded_data\.(\d+)\.(name|value)$")
_RULE_PROBLEM = re.compile(r"^rule (\d+): (.*)$", re.S)


@dataclass
class TaskState:
    type: str
    scalars: dict[str, str] = field(default_factory=dict)
    contact: dict[str, str] = field(default_factory=dict)
    embedded: list[list[str]] = field(default_factory=list)  # [name, value] rows
    message: dict[str, str] = field(default_factory=dict)
    # {"reminder": {"on": "on" or "", "after_days": …, "subject": …}, "thank_you": {…}}
    follow_ups: dict[str, dict[str, str]] = field(default_factory=dict)
    # Config keys the form does not edit, kept as they were (JSON in a hidden field).
    extra: dict[str, Any] = field(default_factory=dict)
    # The whole config as JSON, for task types that have no form of their own.
    config_json: str = ""

    @property
    def has_form(self) -> bool:
        return self.type in FORM_TASK_TYPES


@dataclass
class FormState:
    name: str = ""
    enabled: bool = True
    object_name: str = ""
    organization_id: str = ""
    event_fields: list[str] = field(default_factory=list)
    on_failure: str = "stop"
    notify_owner_on_failure: bool = False
    match: str = "all"
    rules: list[dict[str, str]] = field(default_factory=list)
    tasks: list[TaskState] = field(default_factory=list)


@dataclass
class ParsedForm:
    state: FormState
    # Problems found before validation (a row without a name, a name used twice,
    # JSON that does not parse), under the same input names as serializer errors.
    errors: dict[str, list[str]]
    # The index each card / row was posted with, in page order, for the no-script
    # buttons ("remove task 3") that name them.
    task_keys: list[str]
    rule_keys: list[str]
    embedded_keys: list[list[str]]


def empty_state() -> FormState:
    return FormState()


def new_task(task_type: str) -> TaskState:
    task = TaskState(type=task_type, scalars=dict(_DEFAULTS.get(task_type, {})))
    if task.has_form:
        task.contact = {key: "" for key, _, _ in CONTACT_FIELDS}
        task.embedded = [["", ""]]
        if task_type == "distribute_survey":
            task.message = dict.fromkeys(EMAIL_MESSAGE_FIELDS, "") | {"text": ""}
            task.follow_ups = {key: _follow_up_state(None, key) for key in FOLLOW_UPS}
    else:
        task.config_json = "{}"
    return task


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scalar_text(key: str, value: Any) -> str:
    if key in _CHECKBOXES:
        return "on" if value is True or _text(value).lower() in {"true", "on", "1"} else ""
    return _text(value)


def _follow_up_state(config: Any, key: str) -> dict[str, str]:
    """A follow-up's inputs: its box ticked when the definition has it, its values
    (or the defaults, so ticking the box later starts from them)."""
    values = config if isinstance(config, Mapping) else {}
    state = {"on": "on" if values else ""}
    for name in FOLLOW_UPS[key]:
        state[name] = _text(values.get(name, _FOLLOW_UP_DEFAULTS.get(name, "")))
    return state


def state_from_definition(definition: Mapping[str, Any]) -> FormState:
    """The form as it shows a saved (or exported) definition."""
    event = definition.get("event") or {}
    conditions = definition.get("conditions") or {}
    state = FormState(
        name=_text(definition.get("name")),
        enabled=bool(definition.get("enabled", True)),
        object_name=_text(event.get("object")),
        organization_id=_text(event.get("organization_id")),
        event_fields=[str(name) for name in event.get("fields") or []],
        on_failure=_text(definition.get("on_failure") or "stop"),
        notify_owner_on_failure=bool(definition.get("notify_owner_on_failure")),
        match=_text(conditions.get("match") or "all"),
        rules=[
            {
                "field": _text(rule.get("field")),
                "op": _text(rule.get("op") or "equals"),
                "value": _text(rule.get("value")),
            }
            for rule in conditions.get("rules") or []
            if isinstance(rule, Mapping)
        ],
    )
    for task in definition.get("tasks") or []:
        task_type = _text(task.get("type"))
        config = {key: value for key, value in task.items() if key != "type"}
        if task_type not in FORM_TASK_TYPES:
            state.tasks.append(TaskState(type=task_type, config_json=json.dumps(config, indent=2)))
            continue
        known = FORM_TASK_TYPES[task_type]
        scalars = dict(_DEFAULTS[task_type])
        scalars.update(
            {key: _scalar_text(key, config[key]) for key in _SCALARS[task_type] if key in config}
        )
        contact = config.get("contact") or {}
        message = dict(config.get("message") or {})
        extra = {key: value for key, value in config.items() if key not in known}
        message_extra = {
            key: value
            for key, value in message.items()
            if key not in EMAIL_MESSAGE_FIELDS and key != "text"
        }
        if message_extra:
            extra["message"] = message_extra
        embedded = config.get("embedded_data") or {}
        state.tasks.append(
            TaskState(
                type=task_type,
                scalars=scalars,
                contact={key: _text(contact.get(key)) for key, _, _ in CONTACT_FIELDS},
                embedded=[[str(name), _text(value)] for name, value in embedded.items()],
                message={key: _text(message.get(key)) for key in (*EMAIL_MESSAGE_FIELDS, "text")},
                follow_ups={key: _follow_up_state(config.get(key), key) for key in FOLLOW_UPS}
                if task_type == "distribute_survey"
                else {},
                extra=extra,
            )
        )
    return state


def _ordered_groups(keys: Iterable[str], pattern: re.Pattern[str]) -> dict[str, dict[str, str]]:
    """{index: {rest: key}} in order of each index's first appearance."""
    groups: dict[str, dict[str, str]] = {}
    for key in keys:
        match = pattern.match(key)
        if match:
            groups.setdefault(match.group(1), {})[match.group(2)] = key
    return groups


def _multiline(value: str) -> str:
    # Browsers submit textarea line breaks as CRLF; the stored template keeps LF.
    return value.replace("\r\n", "\n")


def _split_names(value: str) -> list[str]:
    names = [name.strip() for name in re.split(r"[\s,;]+", value or "")]
    return list(dict.fromkeys(name for name in names if name))


def state_from_post(data: Mapping[str, str]) -> ParsedForm:
    """Read the builder's POST (a QueryDict or any ordered mapping of last values)."""
    keys = list(data.keys())
    errors: dict[str, list[str]] = {}
    state = FormState(
        name=data.get("name", ""),
        enabled=bool(data.get("enabled")),
        object_name=data.get("event.object", "").strip(),
        organization_id=data.get("event.organization_id", "").strip(),
        event_fields=_split_names(data.get("event.fields", "")),
        on_failure=data.get("on_failure", "stop"),
        notify_owner_on_failure=bool(data.get("notify_owner_on_failure")),
        match=data.get("conditions.match", "all"),
    )
    rule_keys: list[str] = []
    for index, parts in _ordered_groups(keys, _RULE).items():
        rule = {
            "field": data.get(parts.get("field", ""), "").strip(),
            "op": data.get(parts.get("op", ""), "equals"),
            "value": data.get(parts.get("value", ""), ""),
        }
        if not rule["field"] and not rule["value"] and rule["op"] not in _UNARY_OPERATORS:
            continue  # an untouched blank row
        state.rules.append(rule)
        rule_keys.append(index)

    task_keys: list[str] = []
    embedded_keys: list[list[str]] = []
    for index, parts in _ordered_groups(keys, _TASK).items():
        position = len(state.tasks)
        prefix = f"tasks.{position}"

        def value(rest: str, index: str = index) -> str:
            return data.get(f"tasks.{index}.{rest}", "")

        task_type = value("type")
        task_keys.append(index)
        if task_type not in FORM_TASK_TYPES:
            state.tasks.append(
                TaskState(type=task_type, config_json=_multiline(value("config_json")))
            )
            embedded_keys.append([])
            continue
        task = TaskState(type=task_type)
        task.scalars = {
            key: ("on" if value(key) else "") if key in _CHECKBOXES else value(key).strip()
            for key in _SCALARS[task_type]
        }
        if task_type == "distribute_survey":
            task.follow_ups = {
                key: {"on": "on" if value(f"{key}.on") else ""}
                | {
                    name: value(f"{key}.{name}").strip()
                    if name in _FOLLOW_UP_NUMBERS
                    else _multiline(value(f"{key}.{name}"))
                    for name in names
                }
                for key, names in FOLLOW_UPS.items()
            }
        task.contact = {key: value(f"contact.{key}") for key, _, _ in CONTACT_FIELDS}
        task.message = {
            key: _multiline(value(f"message.{key}")) for key in (*EMAIL_MESSAGE_FIELDS, "text")
        }
        extra_text = value("extra").strip()
        if extra_text:
            try:
                extra = loads(extra_text)
            except ValueError:
                extra = None
            if isinstance(extra, dict):
                task.extra = extra
            else:
                errors[f"{prefix}"] = ["the task's hidden settings were damaged; reload the page"]
        rows: list[list[str]] = []
        row_keys: list[str] = []
        embedded_parts = _ordered_groups(parts, _EMBEDDED)
        for row_index in embedded_parts:
            name = value(f"embedded_data.{row_index}.name")
            row_value = value(f"embedded_data.{row_index}.value")
            if not name.strip() and not row_value:
                continue
            rows.append([name, row_value])
            row_keys.append(row_index)
        task.embedded = rows
        state.tasks.append(task)
        embedded_keys.append(row_keys)
    return ParsedForm(
        state=state,
        errors=errors,
        task_keys=task_keys,
        rule_keys=rule_keys,
        embedded_keys=embedded_keys,
    )


def _follow_up_config(key: str, follow_up: Mapping[str, str], channel: str) -> dict[str, str]:
    """A ticked follow-up as the task config has it: the channel's texts only, and a
    number left blank absent (so the serializer says it is required)."""
    texts = {"text"} if channel in SMS_CHANNELS else {"subject", "body"}
    config = {}
    for name in FOLLOW_UPS[key]:
        value = follow_up.get(name, "")
        if name in {"subject", "body", "text"} and name not in texts:
            continue
        if name in _FOLLOW_UP_NUMBERS and value == "":
            continue
        config[name] = value
    return config


def definition_from_state(state: FormState) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The definition to validate, and the problems the definition cannot express
    (an embedded data row without a name, a name used twice, unparsable JSON)."""
    errors: dict[str, list[str]] = {}
    rules = []
    for rule in state.rules:
        item: dict[str, Any] = {"field": rule["field"], "op": rule["op"]}
        if rule["op"] not in _UNARY_OPERATORS:
            item["value"] = rule["value"]
        rules.append(item)
    tasks: list[dict[str, Any]] = []
    for position, task in enumerate(state.tasks):
        prefix = f"tasks.{position}"
        if not task.has_form:
            try:
                config = loads(task.config_json or "{}")
            except ValueError as error:
                errors[f"{prefix}.config_json"] = [f"not valid JSON: {error}"]
                config = {}
            if not isinstance(config, dict):
                errors[f"{prefix}.config_json"] = ["the settings must be a JSON object"]
                config = {}
            config.pop("type", None)
            tasks.append({"type": task.type, **config})
            continue
        extra = copy.deepcopy(task.extra)
        message_extra = extra.pop("message", None)
        config: dict[str, Any] = {"type": task.type, **extra}
        for key, value in task.scalars.items():
            if key in _CHECKBOXES:
                if value == "on":
                    config[key] = True
                else:
                    config.pop(key, None)
            # Left blank, a number is absent: "this field is required" (or the
            # default) reads better than "a valid integer is required".
            elif value != "":
                config[key] = value
        config["contact"] = dict(task.contact)
        embedded: dict[str, str] = {}
        for row, (name, value) in enumerate(task.embedded):
            if not name.strip():
                errors[f"{prefix}.embedded_data.{row}.name"] = [
                    "give the embedded data field a name, or clear the row"
                ]
            elif name in embedded:
                errors[f"{prefix}.embedded_data.{row}.name"] = [
                    f"'{name}' is mapped twice; each embedded data field once"
                ]
            else:
                embedded[name] = value
        config["embedded_data"] = embedded
        if task.type == "distribute_survey":
            channel = task.scalars.get("channel") or "email"
            keys = ("text",) if channel in SMS_CHANNELS else EMAIL_MESSAGE_FIELDS
            picked = {key: task.message.get(key, "") for key in keys}
            config["message"] = {**(message_extra or {}), **picked}
            for key in FOLLOW_UPS:
                follow_up = task.follow_ups.get(key) or {}
                if follow_up.get("on") == "on":
                    config[key] = _follow_up_config(key, follow_up, channel)
                else:
                    config.pop(key, None)  # unticked: the follow-up is removed
        tasks.append(config)
    definition = {
        "name": state.name,
        "enabled": state.enabled,
        "event": {
            "type": "salesforce_outbound_message",
            "object": state.object_name,
            "organization_id": state.organization_id or None,
            "fields": list(state.event_fields),
        },
        "conditions": {"match": state.match, "rules": rules} if rules else {},
        "on_failure": state.on_failure,
        "notify_owner_on_failure": state.notify_owner_on_failure,
        "tasks": tasks,
    }
    return definition, errors


def dropped_channel_texts(state: FormState) -> list[str]:
    """What a save leaves out because the task's channel does not use it: the texts
    typed for another channel (an email's from, subject and body on a task now
    sending by SMS, or the reverse). A task holds one channel's message, so they are
    not kept; the admin is told which, instead of finding them empty later."""
    notes: list[str] = []
    for number, task in enumerate(state.tasks, start=1):
        if task.type != "distribute_survey":
            continue
        sms = (task.scalars.get("channel") or "email") in SMS_CHANNELS
        unused = EMAIL_MESSAGE_FIELDS if sms else ("text",)
        names = [key.replace("_", " ") for key in unused if (task.message.get(key) or "").strip()]
        for key in FOLLOW_UPS:
            follow_up = task.follow_ups.get(key) or {}
            if follow_up.get("on") != "on":
                continue
            texts = ("subject", "body") if sms else ("text",)
            names += [
                f"{key.replace('_', '-')} {name}"
                for name in texts
                if (follow_up.get(name) or "").strip()
            ]
        if names:
            channel = "SMS" if sms else "email"
            notes.append(
                f"Task {number} sends by {channel}, so what was typed for the other channel "
                f"was not kept: {', '.join(names)}."
            )
    return notes


def apply_operation(parsed: ParsedForm, operation: str, *, task_labels: Mapping[str, str]) -> None:
    """The no-script fallbacks of the builder's buttons ("add_task:distribute_survey",
    "remove_task:3", "move_task_up:3", "add_rule", "add_embedded:3", …): the same
    change the script makes in the page, done on the server. Indexes are the ones
    the cards and rows were posted with."""
    state = parsed.state
    verb, _, argument = operation.partition(":")
    task_position = {key: position for position, key in enumerate(parsed.task_keys)}
    if verb == "add_task" and argument in task_labels:
        state.tasks.append(new_task(argument))
    elif verb == "add_rule":
        state.rules.append({"field": "", "op": "equals", "value": ""})
    elif verb == "remove_rule":
        positions = {key: position for position, key in enumerate(parsed.rule_keys)}
        if argument in positions:
            del state.rules[positions[argument]]
    elif verb in {"remove_task", "move_task_up", "move_task_down"} and argument in task_position:
        position = task_position[argument]
        if verb == "remove_task":
            del state.tasks[position]
        else:
            other = position - 1 if verb == "move_task_up" else position + 1
            if 0 <= other < len(state.tasks):
                state.tasks[position], state.tasks[other] = (
                    state.tasks[other],
                    state.tasks[position],
                )
    elif verb == "add_embedded" and argument in task_position:
        state.tasks[task_position[argument]].embedded.append(["", ""])
    elif verb == "remove_embedded":
        task_key, _, row_key = argument.partition(".")
        if task_key in task_position:
            position = task_position[task_key]
            row_keys = parsed.embedded_keys[position]
            if row_key in row_keys:
                del state.tasks[position].embedded[row_keys.index(row_key)]


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """A serializer's error tree as {"tasks.1.message.subject": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            name = prefix if key == "non_field_errors" else f"{prefix}.{key}" if prefix else key
            for path, messages in flatten_errors(value, name).items():
                flat.setdefault(path, []).extend(messages)
    elif isinstance(detail, list | tuple):
        if all(isinstance(item, str) for item in detail):
            if detail:
                flat.setdefault(prefix, []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                for path, messages in flatten_errors(item, f"{prefix}.{index}").items():
                    flat.setdefault(path, []).extend(messages)
    elif detail not in (None, ""):
        flat.setdefault(prefix, []).append(str(detail))
    return flat


def _rule_input(problem: str) -> str:
    if problem.startswith("field"):
        return "field"
    if problem.startswith(("op ", "unknown operator")):
        return "op"
    if problem.startswith("value"):
        return "value"
    return ""


def map_errors(flat: Mapping[str, list[str]], state: FormState) -> dict[str, list[str]]:
    """Serializer paths to the builder's input names: "rule 2: value is required" goes
    beside rule 2's value, an embedded data name's problem beside that row."""
    mapped: dict[str, list[str]] = {}

    def add(name: str, messages: Iterable[str]) -> None:
        mapped.setdefault(name, []).extend(messages)

    for path, messages in flat.items():
        if path == "conditions":
            for message in messages:
                found = _RULE_PROBLEM.match(message)
                if found:
                    row = int(found.group(1)) - 1
                    target = _rule_input(found.group(2))
                    name = f"conditions.rules.{row}" + (f".{target}" if target else "")
                    add(name, [found.group(2)])
                elif message.startswith("match"):
                    add("conditions.match", [message])
                else:
                    add("conditions", [message])
            continue
        task_match = _TASK.match(path)
        if task_match:
            position = int(task_match.group(1))
            rest = task_match.group(2)
            if rest.startswith("embedded_data.") and not _EMBEDDED.match(rest):
                key = rest.removeprefix("embedded_data.")
                rows = state.tasks[position].embedded if position < len(state.tasks) else []
                names = [name for name, _ in rows]
                if key in names:
                    row = names.index(key)
                    about_name = any("name" in message for message in messages)
                    add(
                        f"tasks.{position}.embedded_data.{row}."
                        + ("name" if about_name else "value"),
                        messages,
                    )
                    continue
                add(f"tasks.{position}.embedded_data", messages)
                continue
            if position < len(state.tasks) and not state.tasks[position].has_form:
                # A task without a form is edited as JSON: its problems go there.
                add(f"tasks.{position}.config_json", [f"{rest}: {m}" for m in messages])
                continue
        add(path, messages)
    return mapped
