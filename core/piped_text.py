"""Piped text: renders ${kind://path} placeholders (PIPED_TEXT.md); no Django imports."""

from __future__ import annotations

import functools
import html as html_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

__all__ = [
    "CONTACT_FIELDS",
    "EVENT_FACTS",
    "LINK_NAMES",
    "Placeholder",
    "RenderContext",
    "Rendered",
    "find_placeholders",
    "menu_entries",
    "render",
    "template_problems",
]

CONTACT_FIELDS: tuple[str, ...] = (
    "FirstName",
    "LastName",
    "Email",
    "PhoneNumber",
    "ExternalDataReference",
    "Language",
)
EVENT_FACTS: tuple[str, ...] = (
    "ObjectType",
    "RecordId",
    "NotificationId",
    "OrganizationId",
)
LINK_NAMES: tuple[str, ...] = ("SurveyURL", "SurveyLink", "OptOutURL", "OptOutLink")

# Each link placeholder reads one URL from RenderContext.links; the *Link forms
# become anchors in HTML.
_LINK_URL_KEY: dict[str, str] = {
    "SurveyURL": "SurveyURL",
    "SurveyLink": "SurveyURL",
    "OptOutURL": "OptOutURL",
    "OptOutLink": "OptOutURL",
}
# An anchor needs visible text even when the admin wrote no ?d=.
_LINK_DEFAULT_TEXT: dict[str, str] = {
    "SurveyLink": "Take the survey",
    "OptOutLink": "Unsubscribe",
}
_LINK_PURPOSE: dict[str, str] = {
    "SurveyURL": "survey link",
    "OptOutURL": "unsubscribe link",
}
_FIELD_PREFIX = "Field/"
_OPEN = "${"
# Keeps warnings about a stray "${" readable when the rest of the line is long.
_EXCERPT_LIMIT = 40


@dataclass(frozen=True)
class Placeholder:
    """One well-formed ``${...}`` found in a template."""

    raw: str
    kind: str
    path: str
    default: str | None = None
    # Excluded from the hash so placeholders stay usable as dict keys and set
    # members despite holding a dict.
    params: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass
class RenderContext:
    """Everything a placeholder may read; each mapping may be empty."""

    event_fields: Mapping[str, str | None] = field(default_factory=dict)
    event_facts: Mapping[str, str | None] = field(default_factory=dict)
    contact: Mapping[str, str | None] = field(default_factory=dict)
    embedded_data: Mapping[str, str | None] = field(default_factory=dict)
    transaction: Mapping[str, str | None] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    text: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Malformed:
    """A "${" that never closes: copied as text, reported once per render."""

    text: str
    warning: str


_Token = str | Placeholder | _Malformed


def render(template: str, context: RenderContext, *, html: bool = False) -> Rendered:
    """Render ``template`` against ``context``; never raises for any input.

    ``html=True`` is for HTML email bodies: values are escaped and *Link
    placeholders become anchors. Text outside placeholders is the admin's own
    markup and is copied unchanged in both modes.
    """
    if not template:
        return Rendered(text="", warnings=())
    tokens = _tokenize(template)
    parts: list[str] = []
    warnings: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            parts.append(token)
        elif isinstance(token, Placeholder):
            value, warning = _resolve(token, context, html)
            parts.append(value)
            if warning is not None:
                warnings.append(warning)
        else:
            parts.append(token.text)
            warnings.append(token.warning)
    # A placeholder used twice with the same problem is one thing to fix.
    return Rendered(text="".join(parts), warnings=tuple(dict.fromkeys(warnings)))


def find_placeholders(template: str) -> list[Placeholder]:
    """Return the well-formed placeholders of ``template`` in order of appearance."""
    if not template:
        return []
    # Copies, so a caller mutating params cannot corrupt the parse cache.
    return [
        replace(token, params=dict(token.params))
        for token in _tokenize(template)
        if isinstance(token, Placeholder)
    ]


def template_problems(template: str) -> list[str]:
    """The placeholders of ``template`` that can never give a value, whatever the
    message: unclosed, of an unknown kind, or naming what that kind cannot hold. One
    sentence each, for refusing a template when it is saved (render() only warns, run
    after run). A field the event may still send (${event://Any}) is not one."""
    problems: list[str] = []
    for token in _tokenize(template or ""):
        if isinstance(token, _Malformed):
            excerpt = token.text.rstrip()
            if len(excerpt) > _EXCERPT_LIMIT:
                excerpt = excerpt[:_EXCERPT_LIMIT] + "…"
            problems.append(f"'{excerpt}' is not closed: a placeholder ends with }}")
        elif isinstance(token, Placeholder):
            problem = _syntax_problem(token)
            if problem:
                problems.append(f"{token.raw} {problem}")
    return list(dict.fromkeys(problems))


def placeholders_of_kind(template: str, kinds: Iterable[str]) -> list[str]:
    """The placeholders of ``template`` (as written) whose kind is one of ``kinds``."""
    wanted = set(kinds)
    found = [
        token.raw
        for token in _tokenize(template or "")
        if isinstance(token, Placeholder) and token.kind in wanted
    ]
    return list(dict.fromkeys(found))


def _syntax_problem(placeholder: Placeholder) -> str:
    kind, path = placeholder.kind, placeholder.path
    if kind == "":
        return "is not of the form ${kind://path}"
    if kind == "event":
        return "" if path.strip() else "names no field (${event://FieldName})"
    if kind == "m":
        return (
            ""
            if path in CONTACT_FIELDS
            else f"names no contact field ({', '.join(CONTACT_FIELDS)})"
        )
    if kind in ("e", "tx"):
        name = path[len(_FIELD_PREFIX) :] if path.startswith(_FIELD_PREFIX) else ""
        return "" if name.strip() else f"names no field (${{{kind}://Field/Name}})"
    if kind == "l":
        return "" if path in _LINK_URL_KEY else f"names no link ({', '.join(LINK_NAMES)})"
    return f"has an unknown kind '{kind}' (event, m, e, tx or l)"


def menu_entries(
    *, event_fields: Iterable[str], embedded_data_names: Iterable[str]
) -> list[dict[str, str]]:
    """Build the dynamic text menu ({a}): event, contact, embedded data, links."""
    entries: list[dict[str, str]] = []
    seen_event: set[str] = set()
    for name in [*event_fields, *EVENT_FACTS]:
        if name and name not in seen_event:
            seen_event.add(name)
            entries.append(_entry("Event", name, f"${{event://{_quote_path(name)}}}"))
    for name in CONTACT_FIELDS:
        entries.append(_entry("Contact", name, f"${{m://{name}}}"))
    seen_embedded: set[str] = set()
    for name in embedded_data_names:
        if name and name not in seen_embedded:
            seen_embedded.add(name)
            placeholder = f"${{e://{_FIELD_PREFIX}{_quote_path(name)}}}"
            entries.append(_entry("Embedded data", name, placeholder))
    entries.extend(
        [
            _entry("Links", "Survey URL", "${l://SurveyURL}"),
            _entry("Links", "Survey link", "${l://SurveyLink?d=Take%20the%20survey}"),
            _entry("Links", "Opt-out URL", "${l://OptOutURL}"),
            _entry("Links", "Opt-out link", "${l://OptOutLink?d=Unsubscribe}"),
        ]
    )
    return entries


def _entry(group: str, label: str, placeholder: str) -> dict[str, str]:
    return {"group": group, "label": label, "placeholder": placeholder}


def _quote_path(name: str) -> str:
    # Only the characters that would end or split a placeholder are encoded, so
    # ordinary names (spaces included) stay readable in the editor; the parser
    # URL-decodes paths.
    return (
        name.replace("%", "%25")
        .replace("?", "%3F")
        .replace("}", "%7D")
        .replace("{", "%7B")
        .replace("\n", "%0A")
    )


# Templates are few and reused for every recipient, so parsing once per
# distinct template keeps a render to a dictionary walk.
@functools.lru_cache(maxsize=2048)
def _tokenize(template: str) -> tuple[_Token, ...]:
    tokens: list[_Token] = []
    literal_start = 0
    position = template.find(_OPEN)
    while position != -1:
        close = template.find("}", position + 2)
        # A placeholder never spans lines or holds another "${": otherwise one
        # stray "${" would swallow text up to some distant "}" (CSS in an HTML
        # body, say) instead of being reported where it is.
        next_open = template.find(_OPEN, position + 2)
        newline = template.find("\n", position + 2)
        if (
            close == -1
            or (next_open != -1 and next_open < close)
            or (newline != -1 and newline < close)
        ):
            if position > literal_start:
                tokens.append(template[literal_start:position])
            stop = min((i for i in (next_open, newline) if i != -1), default=len(template))
            text = template[position:stop]
            tokens.append(_Malformed(text=text, warning=_unclosed_warning(text)))
            literal_start = stop
            position = next_open
            continue
        if position > literal_start:
            tokens.append(template[literal_start:position])
        tokens.append(_parse_placeholder(template[position : close + 1]))
        literal_start = close + 1
        position = template.find(_OPEN, literal_start)
    if literal_start < len(template):
        tokens.append(template[literal_start:])
    return tuple(tokens)


def _unclosed_warning(text: str) -> str:
    excerpt = text.rstrip()
    if len(excerpt) > _EXCERPT_LIMIT:
        excerpt = excerpt[:_EXCERPT_LIMIT] + "…"
    return f"'{excerpt}' is not closed; copied as text"


def _parse_placeholder(raw: str) -> Placeholder:
    inner = raw[2:-1]
    kind, separator, rest = inner.partition("://")
    if not separator:
        # "${FirstName}": no kind at all; reported as an unknown (empty) kind.
        kind, rest = "", inner
    path, _, query = rest.partition("?")
    params = _parse_query(query) if query else {}
    return Placeholder(
        raw=raw,
        kind=kind,
        path=unquote(path),
        default=params.get("default"),
        params=params,
    )


def _parse_query(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    last_key: str | None = None
    for segment in query.split("&"):
        key, equals, value = segment.partition("=")
        if equals:
            last_key = unquote(key)
            params[last_key] = unquote(value)
        elif last_key is not None:
            # Admins write "?d=Q&A session" or "?default=Tom & Jerry" unencoded;
            # a piece without "=" belongs to the value before it.
            params[last_key] += "&" + unquote(segment)
    # unquote, not unquote_plus: "+" is kept literally ("C++ survey"); spaces
    # may be written as-is or as %20.
    return params


def _resolve(
    placeholder: Placeholder, context: RenderContext, html: bool
) -> tuple[str, str | None]:
    """Return (rendered text, warning or None) for one placeholder."""
    kind = placeholder.kind
    if kind == "l":
        return _resolve_link(placeholder, context, html)
    if kind == "event":
        name = placeholder.path
        if name in context.event_facts:
            found, value = True, context.event_facts[name]
        elif name in context.event_fields:
            found, value = True, context.event_fields[name]
        else:
            found, value = False, None
        empty_reason = "is empty"
    elif kind == "m":
        name = placeholder.path
        if name not in CONTACT_FIELDS:
            return _problem(placeholder, "names an unknown field", html)
        found, value = True, context.contact.get(name)
        empty_reason = "is empty" if context.contact else "is empty: no contact is known yet"
    elif kind in ("e", "tx"):
        if not placeholder.path.startswith(_FIELD_PREFIX):
            return _problem(
                placeholder,
                f"names an unknown field (expected ${{{kind}://Field/Name}})",
                html,
            )
        name = placeholder.path[len(_FIELD_PREFIX) :]
        values = context.embedded_data if kind == "e" else context.transaction
        found = name in values
        value = values.get(name)
        empty_reason = "is empty"
    elif kind == "":
        return _problem(placeholder, "is not of the form ${kind://path}", html)
    else:
        return _problem(placeholder, f"has an unknown kind '{kind}'", html)

    if not found:
        return _problem(placeholder, "names an unknown field", html)
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    # Whitespace-only would still give "Hello  ,": treated as empty so the
    # fallback applies and the run says why.
    if not text.strip():
        return _problem(placeholder, empty_reason, html)
    return (html_module.escape(text) if html else text), None


def _resolve_link(
    placeholder: Placeholder, context: RenderContext, html: bool
) -> tuple[str, str | None]:
    name = placeholder.path
    url_key = _LINK_URL_KEY.get(name)
    if url_key is None:
        return _problem(placeholder, "names an unknown field", html)
    url = context.links.get(url_key) or ""
    if not url:
        # A dry run or a task with no recipient has no personal link yet.
        return _problem(placeholder, f"is empty: no {_LINK_PURPOSE[url_key]} at this point", html)
    if name not in _LINK_DEFAULT_TEXT or not html:
        # Plain-text channels (SMS, subjects) cannot carry an anchor: the URL is
        # the link.
        return (html_module.escape(url) if html else url), None
    label = placeholder.params.get("d") or _LINK_DEFAULT_TEXT[name]
    anchor = f'<a href="{html_module.escape(url)}">{html_module.escape(label)}</a>'
    return anchor, None


def _problem(placeholder: Placeholder, problem: str, html: bool) -> tuple[str, str | None]:
    # The spec asks for a warning whenever a placeholder could not give its own
    # value, fallback or not: a fallback hides the gap from the recipient, but
    # the admin still learns that the data was missing.
    fallback = placeholder.default
    if fallback is None:
        return "", f"{placeholder.raw} {problem}"
    warning = f"{placeholder.raw} {problem}; used the fallback '{fallback}'"
    return (html_module.escape(fallback) if html else fallback), warning
