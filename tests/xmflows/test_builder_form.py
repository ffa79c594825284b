"""The builder form's pure parts: posted names to a definition, and errors back to names."""

from xmflows.builder_form import (
    apply_operation,
    definition_from_state,
    flatten_errors,
    map_errors,
    state_from_definition,
    state_from_post,
)

DEFINITION = {
    "name": "Closed case",
    "enabled": True,
    "event": {
        "type": "salesforce_outbound_message",
        "object": "Case",
        "organization_id": None,
        "fields": ["CaseNumber"],
    },
    "conditions": {"match": "any", "rules": [{"field": "IsClosed", "op": "equals", "value": True}]},
    "on_failure": "continue",
    "notify_owner_on_failure": True,
    "tasks": [
        {
            "type": "add_to_directory",
            "mode": "transaction",
            "mailing_list": 4,
            "contact": {"email": "${event://ContactEmail}"},
            "embedded_data": {"Store Region": "${event://Region__c}", "CaseNumber": "x"},
        },
        {
            "type": "distribute_survey",
            "channel": "sms",
            "survey": 2,
            "mailing_list": 4,
            "contact": {},
            "embedded_data": {},
            "message": {"text": "Hi ${m://FirstName}", "future": 1},
            "send_delay_minutes": 30,
            "reminder": {"after_days": 3},
        },
        {"type": "custom_webhook", "url": "https://example.com/hook"},
    ],
}


def test_a_definition_survives_the_form_state():
    definition, errors = definition_from_state(state_from_definition(DEFINITION))
    assert errors == {}
    assert definition["conditions"] == {
        "match": "any",
        "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}],
    }
    first, second, third = definition["tasks"]
    assert first["embedded_data"] == {"Store Region": "${event://Region__c}", "CaseNumber": "x"}
    assert first["mailing_list"] == "4"  # the serializer turns it back into a number
    # SMS keeps its text; keys without an input are carried through.
    assert second["message"] == {"future": 1, "text": "Hi ${m://FirstName}"}
    # The reminder is edited by the form now: its SMS text (blank here, which the
    # serializer refuses) and the default "when".
    assert second["reminder"] == {"after_days": "3", "when": "not_started", "text": ""}
    assert "thank_you" not in second and "send_at_next_working_hour" not in second
    assert third == {"type": "custom_webhook", "url": "https://example.com/hook"}
    assert (definition["on_failure"], definition["notify_owner_on_failure"]) == ("continue", True)


def test_posted_order_decides_and_blank_rows_are_dropped():
    post = {
        "name": "x",
        "tasks.7.type": "add_to_directory",
        "tasks.7.embedded_data.5.name": "B",
        "tasks.7.embedded_data.5.value": "2",
        "tasks.7.embedded_data.2.name": "",
        "tasks.7.embedded_data.2.value": "",
        "tasks.7.embedded_data.1.name": "A",
        "tasks.7.embedded_data.1.value": "1",
        "tasks.3.type": "distribute_survey",
        "conditions.rules.9.field": "",
        "conditions.rules.9.op": "equals",
        "conditions.rules.9.value": "",
        "conditions.rules.4.field": "Status",
        "conditions.rules.4.op": "is_empty",
        "conditions.rules.4.value": "ignored",
    }
    parsed = state_from_post(post)
    assert [task.type for task in parsed.state.tasks] == ["add_to_directory", "distribute_survey"]
    assert parsed.task_keys == ["7", "3"]
    assert parsed.state.tasks[0].embedded == [["B", "2"], ["A", "1"]]
    assert parsed.embedded_keys[0] == ["5", "1"]
    definition, _ = definition_from_state(parsed.state)
    # A unary operator takes no value.
    assert definition["conditions"]["rules"] == [{"field": "Status", "op": "is_empty"}]
    assert definition["enabled"] is False  # an unchecked box is not posted


def test_operations_name_cards_by_their_posted_index():
    parsed = state_from_post({"tasks.7.type": "add_to_directory", "tasks.3.type": "x"})
    apply_operation(parsed, "move_task_down:7", task_labels={"add_to_directory": "Add"})
    assert [task.type for task in parsed.state.tasks] == ["x", "add_to_directory"]
    apply_operation(parsed, "add_task:nope", task_labels={"add_to_directory": "Add"})
    assert len(parsed.state.tasks) == 2  # unknown types are not added


def test_serializer_errors_map_onto_input_names():
    state = state_from_definition(DEFINITION)
    detail = {
        "name": ["This field may not be blank."],
        "event": {"object": ["bad object"]},
        "conditions": ["rule 1: value is required for 'equals'", "match must be 'all' or 'any'"],
        "tasks": [
            {"embedded_data": {"Store Region": ["embedded data field names are too long"]}},
            {"message": {"text": ["required"]}, "non_field_errors": ["card problem"]},
            {"url": ["not allowed"]},
        ],
    }
    flat = flatten_errors(detail)
    assert flat["tasks.1.message.text"] == ["required"]
    assert flat["tasks.1"] == ["card problem"]
    mapped = map_errors(flat, state)
    assert mapped["event.object"] == ["bad object"]
    assert mapped["conditions.rules.0.value"] == ["value is required for 'equals'"]
    assert mapped["conditions.match"] == ["match must be 'all' or 'any'"]
    assert mapped["tasks.0.embedded_data.0.name"] == ["embedded data field names are too long"]
    assert mapped["tasks.1.message.text"] == ["required"]
    # A task without a form is edited as JSON: its errors go there.
    assert mapped["tasks.2.config_json"] == ["url: not allowed"]
