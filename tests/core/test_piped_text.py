"""Tests for core.piped_text: every rule of PIPED_TEXT.md, without a database."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.piped_text import (
    CONTACT_FIELDS,
    EVENT_FACTS,
    LINK_NAMES,
    Placeholder,
    RenderContext,
    Rendered,
    find_placeholders,
    menu_entries,
    render,
    template_problems,
)

SURVEY_URL = "https://xm.example.com/s/abc?r=1&t=2"
OPT_OUT_URL = "https://xm.example.com/unsubscribe/xyz"


@pytest.fixture
def context() -> RenderContext:
    return RenderContext(
        event_fields={
            "ContactEmail": "sofia@example.com",
            "First_Name__c": "Sofía",
            "Region__c": None,
            "Blank__c": "",
            "Spaces__c": "   ",
            "RecordId": "field-value-loses",
            "Notes__c": "<script>alert(1)</script> & O'Brien",
        },
        event_facts={
            "ObjectType": "Case",
            "RecordId": "500xx000000001",
            "NotificationId": "04lxx0000000001",
            "OrganizationId": "00Dxx0000000001",
        },
        contact={
            "FirstName": "Sofía",
            "LastName": "Núñez",
            "Email": "sofia@example.com",
            "PhoneNumber": "+14155550100",
            "ExternalDataReference": "003xx01",
            "Language": "",
        },
        embedded_data={"Store Region": "West", "region": "lowercase", "Tier": None},
        transaction={"Order Total": "45.00"},
        links={"SurveyURL": SURVEY_URL, "OptOutURL": OPT_OUT_URL},
    )


# --- every placeholder kind -------------------------------------------------


def test_event_field_by_api_name(context: RenderContext) -> None:
    result = render("To: ${event://ContactEmail}", context)
    assert result == Rendered(text="To: sofia@example.com", warnings=())


def test_event_facts_are_available(context: RenderContext) -> None:
    template = "${event://ObjectType} ${event://NotificationId} ${event://OrganizationId}"
    assert render(template, context).text == "Case 04lxx0000000001 00Dxx0000000001"


def test_event_fact_wins_over_record_field_of_same_name(
    context: RenderContext,
) -> None:
    assert render("${event://RecordId}", context).text == "500xx000000001"


def test_record_field_used_when_fact_absent() -> None:
    context = RenderContext(event_fields={"RecordId": "from-the-record"})
    assert render("${event://RecordId}", context).text == "from-the-record"


@pytest.mark.parametrize("name", CONTACT_FIELDS[:5])
def test_contact_fields(context: RenderContext, name: str) -> None:
    result = render(f"${{m://{name}}}", context)
    assert result.text == context.contact[name]
    assert result.warnings == ()


def test_embedded_data_with_space_in_name(context: RenderContext) -> None:
    assert render("${e://Field/Store Region}", context).text == "West"


def test_embedded_data_name_is_case_sensitive(context: RenderContext) -> None:
    assert render("${e://Field/region}", context).text == "lowercase"
    result = render("${e://Field/REGION}", context)
    assert result.text == ""
    assert result.warnings == ("${e://Field/REGION} names an unknown field",)


def test_embedded_data_without_field_prefix_is_unknown(
    context: RenderContext,
) -> None:
    result = render("${e://Store Region}", context)
    assert result.text == ""
    assert "names an unknown field" in result.warnings[0]
    assert "${e://Field/Name}" in result.warnings[0]


def test_transaction_field(context: RenderContext) -> None:
    assert render("${tx://Field/Order Total}", context).text == "45.00"


def test_survey_url_in_both_modes(context: RenderContext) -> None:
    assert render("${l://SurveyURL}", context).text == SURVEY_URL
    # In HTML an "&" inside a URL must be escaped to stay valid markup.
    assert render("${l://SurveyURL}", context, html=True).text == (
        "https://xm.example.com/s/abc?r=1&amp;t=2"
    )


def test_survey_link_html_is_anchor_with_decoded_text(context: RenderContext) -> None:
    result = render("<p>${l://SurveyLink?d=Take%20the%20survey}</p>", context, html=True)
    assert result.text == (
        '<p><a href="https://xm.example.com/s/abc?r=1&amp;t=2">Take the survey</a></p>'
    )
    assert result.warnings == ()


def test_survey_link_accepts_unencoded_spaces(context: RenderContext) -> None:
    result = render("${l://SurveyLink?d=Take the survey}", context, html=True)
    assert ">Take the survey</a>" in result.text


def test_survey_link_text_is_escaped(context: RenderContext) -> None:
    result = render("${l://SurveyLink?d=%3Cb%3EGo%3C%2Fb%3E}", context, html=True)
    assert ">&lt;b&gt;Go&lt;/b&gt;</a>" in result.text


def test_survey_link_in_plain_mode_is_the_url(context: RenderContext) -> None:
    result = render("Answer here: ${l://SurveyLink?d=Take%20the%20survey}", context)
    assert result.text == f"Answer here: {SURVEY_URL}"


def test_survey_link_without_text_gets_a_readable_label(
    context: RenderContext,
) -> None:
    result = render("${l://SurveyLink}", context, html=True)
    assert result.text.endswith(">Take the survey</a>")


def test_opt_out_url_and_link(context: RenderContext) -> None:
    assert render("${l://OptOutURL}", context).text == OPT_OUT_URL
    assert render("${l://OptOutLink?d=Unsubscribe}", context).text == OPT_OUT_URL
    assert render("${l://OptOutLink?d=Unsubscribe}", context, html=True).text == (
        f'<a href="{OPT_OUT_URL}">Unsubscribe</a>'
    )


def test_link_with_ampersand_in_unencoded_text(context: RenderContext) -> None:
    result = render("${l://SurveyLink?d=Q&A survey}", context, html=True)
    assert ">Q&amp;A survey</a>" in result.text


def test_missing_link_renders_empty_with_warning() -> None:
    result = render("Go: ${l://SurveyLink?d=Go}", RenderContext(), html=True)
    assert result.text == "Go: "
    assert result.warnings == ("${l://SurveyLink?d=Go} is empty: no survey link at this point",)


def test_unknown_link_name() -> None:
    result = render("${l://Whatever}", RenderContext(links={"SurveyURL": "u"}))
    assert result == Rendered(text="", warnings=("${l://Whatever} names an unknown field",))


# --- fallbacks, unknowns, empties -------------------------------------------


def test_fallback_used_for_nil_value_and_still_warned(context: RenderContext) -> None:
    result = render("Region: ${event://Region__c?default=Unknown}", context)
    assert result.text == "Region: Unknown"
    assert result.warnings == (
        "${event://Region__c?default=Unknown} is empty; used the fallback 'Unknown'",
    )


def test_fallback_is_url_decoded(context: RenderContext) -> None:
    result = render("${event://Nope__c?default=Valued%20customer}", context)
    assert result.text == "Valued customer"


def test_fallback_not_used_when_value_present(context: RenderContext) -> None:
    result = render("${m://FirstName?default=there}", context)
    assert result == Rendered(text="Sofía", warnings=())


def test_fallback_for_unknown_kind(context: RenderContext) -> None:
    result = render("${x://Foo?default=bar}", context)
    assert result.text == "bar"
    assert result.warnings == (
        "${x://Foo?default=bar} has an unknown kind 'x'; used the fallback 'bar'",
    )


def test_fallback_is_escaped_in_html(context: RenderContext) -> None:
    result = render("${event://Nope?default=<b>&}", context, html=True)
    assert result.text == "&lt;b&gt;&amp;"


def test_unknown_kind(context: RenderContext) -> None:
    result = render("Hello ${x://Foo}!", context)
    assert result == Rendered(text="Hello !", warnings=("${x://Foo} has an unknown kind 'x'",))


def test_placeholder_without_kind_is_reported() -> None:
    result = render("Hello ${FirstName},", RenderContext())
    assert result.text == "Hello ,"
    assert result.warnings == ("${FirstName} is not of the form ${kind://path}",)


def test_unknown_event_field(context: RenderContext) -> None:
    result = render("Hello ${event://Foo},", context)
    assert result == Rendered(text="Hello ,", warnings=("${event://Foo} names an unknown field",))


def test_unknown_contact_field(context: RenderContext) -> None:
    result = render("${m://Nickname}", context)
    assert result.warnings == ("${m://Nickname} names an unknown field",)


@pytest.mark.parametrize(
    "template", ["${event://Region__c}", "${event://Blank__c}", "${event://Spaces__c}"]
)
def test_none_empty_and_blank_values_warn(context: RenderContext, template: str) -> None:
    result = render(f"Hello {template},", context)
    assert result == Rendered(text="Hello ,", warnings=(f"{template} is empty",))


def test_empty_contact_field_warns(context: RenderContext) -> None:
    assert render("${m://Language}", context).warnings == ("${m://Language} is empty",)


def test_contact_placeholder_before_contact_is_known() -> None:
    result = render("Hi ${m://FirstName}", RenderContext())
    assert result.text == "Hi "
    assert result.warnings == ("${m://FirstName} is empty: no contact is known yet",)


def test_none_embedded_data_value_warns(context: RenderContext) -> None:
    assert render("${e://Field/Tier}", context).warnings == ("${e://Field/Tier} is empty",)


def test_same_problem_twice_is_one_warning(context: RenderContext) -> None:
    result = render("${event://Foo} and ${event://Foo}", context)
    assert result.warnings == ("${event://Foo} names an unknown field",)


def test_warnings_follow_template_order(context: RenderContext) -> None:
    result = render("${event://B} ${x://A} ${event://C", context)
    assert result.warnings == (
        "${event://B} names an unknown field",
        "${x://A} has an unknown kind 'x'",
        "'${event://C' is not closed; copied as text",
    )


# --- HTML escaping ----------------------------------------------------------


def test_html_mode_escapes_values_not_template(context: RenderContext) -> None:
    result = render("<p>${event://Notes__c}</p>", context, html=True)
    assert result.text == ("<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; O&#x27;Brien</p>")


def test_plain_mode_leaves_values_unescaped(context: RenderContext) -> None:
    result = render("<p>${event://Notes__c}</p>", context)
    assert result.text == "<p><script>alert(1)</script> & O'Brien</p>"


def test_unicode_values_survive_both_modes(context: RenderContext) -> None:
    template = "Hola ${m://FirstName} ${m://LastName} — ¿qué tal?"
    assert render(template, context).text == "Hola Sofía Núñez — ¿qué tal?"
    assert render(template, context, html=True).text == "Hola Sofía Núñez — ¿qué tal?"


# --- literal text and malformed placeholders --------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "Price: $5 {net}",
        "$",
        "{",
        "}",
        "{$}",
        "$ {event://ContactEmail}",
        "body { color: red; }",
        "",
    ],
)
def test_dollar_and_brace_alone_are_plain(context: RenderContext, template: str) -> None:
    assert render(template, context) == Rendered(text=template, warnings=())


def test_double_dollar_keeps_first_as_text(context: RenderContext) -> None:
    result = render("Total $${tx://Field/Order Total}", context)
    assert result == Rendered(text="Total $45.00", warnings=())


def test_unclosed_placeholder_copied_verbatim(context: RenderContext) -> None:
    result = render("Hello ${event://Foo and goodbye", context)
    assert result.text == "Hello ${event://Foo and goodbye"
    assert result.warnings == ("'${event://Foo and goodbye' is not closed; copied as text",)


def test_unclosed_placeholder_does_not_swallow_the_next_one(
    context: RenderContext,
) -> None:
    result = render("Hi ${m://FirstName, ${m://LastName}!", context)
    assert result.text == "Hi ${m://FirstName, Núñez!"
    assert result.warnings == ("'${m://FirstName,' is not closed; copied as text",)


def test_unclosed_placeholder_stops_at_end_of_line(context: RenderContext) -> None:
    template = "Hi ${m://FirstName\n<style>p { margin: 0 }</style>"
    result = render(template, context, html=True)
    assert result.text == template
    assert result.warnings == ("'${m://FirstName' is not closed; copied as text",)


def test_long_unclosed_text_is_shortened_in_warning(context: RenderContext) -> None:
    template = "${" + "x" * 200
    result = render(template, context)
    assert result.text == template
    assert len(result.warnings[0]) < 80
    assert "…" in result.warnings[0]


def test_empty_placeholder(context: RenderContext) -> None:
    result = render("a${}b", context)
    assert result.text == "ab"
    assert result.warnings == ("${} is not of the form ${kind://path}",)


# --- find_placeholders ------------------------------------------------------


def test_find_placeholders_in_order_with_parsed_parts() -> None:
    template = (
        "Hi ${m://FirstName?default=there}, ${e://Field/Store Region} "
        "${l://SurveyLink?d=Take%20the%20survey} ${event://X ${x://Y}"
    )
    assert find_placeholders(template) == [
        Placeholder(
            raw="${m://FirstName?default=there}",
            kind="m",
            path="FirstName",
            default="there",
            params={"default": "there"},
        ),
        Placeholder(
            raw="${e://Field/Store Region}",
            kind="e",
            path="Field/Store Region",
            default=None,
            params={},
        ),
        Placeholder(
            raw="${l://SurveyLink?d=Take%20the%20survey}",
            kind="l",
            path="SurveyLink",
            default=None,
            params={"d": "Take the survey"},
        ),
        Placeholder(raw="${x://Y}", kind="x", path="Y", default=None, params={}),
    ]


def test_find_placeholders_returns_copies_safe_to_mutate() -> None:
    template = "${l://SurveyLink?d=Go}"
    find_placeholders(template)[0].params["d"] = "changed"
    assert find_placeholders(template)[0].params == {"d": "Go"}
    assert ">Go</a>" in render(template, RenderContext(links={"SurveyURL": "u"}), html=True).text


def test_placeholders_are_hashable() -> None:
    assert len(set(find_placeholders("${m://Email} ${m://Email}"))) == 1


def test_find_placeholders_empty_template() -> None:
    assert find_placeholders("") == []
    assert find_placeholders("no placeholders, $ { }") == []


# --- menu_entries -----------------------------------------------------------


def test_menu_entries_groups_and_placeholders() -> None:
    entries = menu_entries(
        event_fields=["ContactEmail", "RecordId", "ContactEmail"],
        embedded_data_names=["Store Region", "Purchased?"],
    )
    groups = [entry["group"] for entry in entries]
    assert groups == sorted(groups, key=["Event", "Contact", "Embedded data", "Links"].index)

    event = [e["placeholder"] for e in entries if e["group"] == "Event"]
    # Declared fields first, deduplicated; the notification facts always follow.
    assert event == [
        "${event://ContactEmail}",
        "${event://RecordId}",
        "${event://ObjectType}",
        "${event://NotificationId}",
        "${event://OrganizationId}",
    ]
    contact = [e["placeholder"] for e in entries if e["group"] == "Contact"]
    assert contact == [f"${{m://{name}}}" for name in CONTACT_FIELDS]
    embedded = [e for e in entries if e["group"] == "Embedded data"]
    assert embedded[0] == {
        "group": "Embedded data",
        "label": "Store Region",
        "placeholder": "${e://Field/Store Region}",
    }
    links = [e["placeholder"] for e in entries if e["group"] == "Links"]
    assert links == [
        "${l://SurveyURL}",
        "${l://SurveyLink?d=Take%20the%20survey}",
        "${l://OptOutURL}",
        "${l://OptOutLink?d=Unsubscribe}",
    ]


def test_every_menu_placeholder_renders_its_value() -> None:
    """What the menu inserts must be what the renderer reads, awkward names too."""
    names = ["Store Region", "Purchased?", "50% off", "a}b"]
    context = RenderContext(
        event_fields={"ContactEmail": "e"},
        event_facts=dict.fromkeys(EVENT_FACTS, "fact"),
        contact=dict.fromkeys(CONTACT_FIELDS, "c"),
        embedded_data={name: f"value of {name}" for name in names},
        links={"SurveyURL": "s", "OptOutURL": "o"},
    )
    entries = menu_entries(event_fields=["ContactEmail"], embedded_data_names=names)
    for entry in entries:
        result = render(entry["placeholder"], context)
        assert result.warnings == (), entry
        assert result.text, entry
    embedded = {
        e["label"]: render(e["placeholder"], context).text
        for e in entries
        if e["group"] == "Embedded data"
    }
    assert embedded == {name: f"value of {name}" for name in names}


def test_link_names_constant_matches_menu() -> None:
    paths = {
        p.path
        for e in menu_entries(event_fields=[], embedded_data_names=[])
        for p in find_placeholders(e["placeholder"])
        if p.kind == "l"
    }
    assert paths == set(LINK_NAMES)


# --- robustness -------------------------------------------------------------

_template_alphabet = st.sampled_from(
    [
        *"${}:/?&=%\n ",
        *["${", "://", "event", "m", "e", "tx", "l", "Field/"],
        *string.ascii_letters[:6],
        *["é", "\x00", "\ud800"],
    ]
)
_templates = st.one_of(st.text(), st.lists(_template_alphabet, max_size=40).map("".join))
_maybe_text = st.one_of(st.none(), st.text(max_size=20))
_mappings = st.dictionaries(st.text(max_size=12), _maybe_text, max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    template=_templates,
    event_fields=_mappings,
    event_facts=_mappings,
    contact=_mappings,
    embedded_data=_mappings,
    transaction=_mappings,
    links=st.dictionaries(st.sampled_from(["SurveyURL", "OptOutURL", "x"]), st.text()),
    html=st.booleans(),
)
def test_render_never_raises(
    template: str,
    event_fields: dict[str, str | None],
    event_facts: dict[str, str | None],
    contact: dict[str, str | None],
    embedded_data: dict[str, str | None],
    transaction: dict[str, str | None],
    links: dict[str, str],
    html: bool,
) -> None:
    context = RenderContext(
        event_fields=event_fields,
        event_facts=event_facts,
        contact=contact,
        embedded_data=embedded_data,
        transaction=transaction,
        links=links,
    )
    result = render(template, context, html=html)
    assert isinstance(result.text, str)
    assert all(isinstance(warning, str) for warning in result.warnings)
    find_placeholders(template)


@settings(max_examples=200, deadline=None)
@given(st.text().filter(lambda text: "${" not in text))
def test_text_without_placeholders_is_unchanged(template: str) -> None:
    assert render(template, RenderContext(), html=True) == Rendered(text=template, warnings=())


@pytest.mark.parametrize(
    ("template", "problems"),
    [
        ("Hello ${event://First_Name__c}, ${m://FirstName} ${e://Field/Store Region}", []),
        ("${event://NoSuchField__c}", []),  # the event may still send it
        ("${l://SurveyLink?d=Take%20it} ${tx://Field/Order}", []),
        ("$5 and {braces}", []),
        ("${event://}", ["${event://} names no field (${event://FieldName})"]),
        (
            "Hi ${event://StageName",
            ["'${event://StageName' is not closed: a placeholder ends with }"],
        ),
        ("${bogus://X}", ["${bogus://X} has an unknown kind 'bogus' (event, m, e, tx or l)"]),
        ("${FirstName}", ["${FirstName} is not of the form ${kind://path}"]),
        ("${e://Region}", ["${e://Region} names no field (${e://Field/Name})"]),
        (
            "${l://Survey} ${l://Survey}",
            ["${l://Survey} names no link (SurveyURL, SurveyLink, OptOutURL, OptOutLink)"],
        ),
    ],
)
def test_template_problems_are_the_placeholders_that_can_never_give_a_value(template, problems):
    assert template_problems(template) == problems
