"""SMS text rules: segment counting, opt-out keywords, question prompts, reply parsing;
no Django imports.

Segments are counted the way carriers and Twilio split a message: GSM-7 when every
character is in the GSM 03.38 alphabet (160 septets in one segment, 153 per segment
once split, an extension character taking two septets and never split across two
segments), else UCS-2 (70 UTF-16 code units, 67 per segment once split, a surrogate
pair never split).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HELP_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "QuestionSpec",
    "ReplyError",
    "Segments",
    "hint",
    "keyword",
    "parse_reply",
    "prompt",
    "reask",
    "segments",
]

# GSM 03.38 default alphabet (one septet each) and its extension table (two septets:
# an escape and the character).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    count: int
    characters: int


def _pack(units: Sequence[int], single: int, part: int) -> int:
    """How many segments `units` (the size of each character) fill; a character is
    never split between two segments."""
    total = sum(units)
    if total <= single:
        return 1 if total else 0
    count, used = 1, 0
    for size in units:
        if used + size > part:
            count += 1
            used = 0
        used += size
    return count


def segments(text: str) -> Segments:
    """The encoding and number of segments the provider will send `text` as."""
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text):
        units = [2 if char in _GSM_EXTENSION else 1 for char in text]
        return Segments("GSM-7", _pack(units, GSM_SINGLE, GSM_PART), len(text))
    units = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return Segments("UCS-2", _pack(units, UCS2_SINGLE, UCS2_PART), len(text))


# --- Keywords (CONTRACT.md §5: the contact's `opted_out.sms`) ---------------------------

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
# INFO is the carriers' synonym of HELP (Twilio answers both by default).
HELP_KEYWORDS = frozenset({"HELP", "INFO"})


def keyword(text: str) -> str | None:
    """ "stop", "start" or "help" when the whole message is such a keyword (trimmed,
    any case), else None. "Stop calling me" is a reply, not a keyword, as for Twilio."""
    word = (text or "").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "stop"
    if word in OPT_IN_KEYWORDS:
        return "start"
    if word in HELP_KEYWORDS:
        return "help"
    return None


# --- Questions and replies -----------------------------------------------------------

SKIP_WORD = "SKIP"
NPS_LOW, NPS_HIGH = 0, 10


@dataclass(frozen=True)
class QuestionSpec:
    """What an SMS conversation needs to know about one question (already rendered)."""

    type: str  # nps | rating | single_choice | multiple_choice | text
    text: str
    choices: tuple[str, ...] = ()
    scale_max: int = 5
    required: bool = True


class ReplyError(ValueError):
    """A reply that is not an answer; `hint` is the short text sent back before the
    question is asked again."""

    def __init__(self, hint: str):
        super().__init__(hint)
        self.hint = hint


def _instructions(spec: QuestionSpec) -> str:
    if spec.type == "nps":
        text = f"Reply with a number from {NPS_LOW} to {NPS_HIGH}."
    elif spec.type == "rating":
        text = f"Reply with a number from 1 to {spec.scale_max}."
    elif spec.type == "single_choice":
        text = "Reply with the number of one option."
    elif spec.type == "multiple_choice":
        text = "Reply with one or more numbers, e.g. 1,3."
    else:
        text = ""
    if not spec.required:
        text = f"{text} Reply {SKIP_WORD} to skip.".strip()
    return text


def prompt(spec: QuestionSpec, *, instructions: bool = True) -> str:
    """The SMS asking the question: its text, the numbered options, how to answer."""
    lines = [spec.text.strip()]
    if spec.type in ("single_choice", "multiple_choice"):
        lines.extend(f"{number}. {choice}" for number, choice in enumerate(spec.choices, 1))
    how = _instructions(spec) if instructions else ""
    if how:
        lines.append(how)
    return "\n".join(line for line in lines if line)


def reask(spec: QuestionSpec, hint_text: str) -> str:
    """The answer to an invalid reply: the short hint, then the question again (the
    hint already says how to answer)."""
    return f"{hint_text}\n{prompt(spec, instructions=False)}"


def hint(spec: QuestionSpec) -> str:
    """Why the last reply was not taken, in one short line."""
    if spec.type == "nps":
        text = f"Sorry, please reply with a number from {NPS_LOW} to {NPS_HIGH}."
    elif spec.type == "rating":
        text = f"Sorry, please reply with a number from 1 to {spec.scale_max}."
    elif spec.type == "single_choice":
        text = f"Sorry, please reply with one number from 1 to {len(spec.choices)}."
    elif spec.type == "multiple_choice":
        text = f"Sorry, please reply with numbers from 1 to {len(spec.choices)}, e.g. 1,3."
    else:
        text = "Sorry, please reply with your answer as text."
    if not spec.required:
        text = f"{text} Or reply {SKIP_WORD} to skip."
    return text


_NUMBER = re.compile(r"[+]?\d{1,3}")
# Separators between several choices: commas, semicolons, "and", or plain spaces
# between numbers ("1 3").
_SEPARATORS = re.compile(r"\s*(?:[,;/&]|\band\b)\s*", re.IGNORECASE)


def _strip_punctuation(text: str) -> str:
    return text.strip().rstrip(".!?").strip()


def _whole_number(text: str) -> int | None:
    candidate = _strip_punctuation(text)
    if _NUMBER.fullmatch(candidate):
        return int(candidate)
    return None


def _choice(token: str, choices: Sequence[str]) -> str | None:
    number = _whole_number(token)
    if number is not None:
        return choices[number - 1] if 1 <= number <= len(choices) else None
    wanted = _strip_punctuation(token).casefold()
    for choice in choices:
        if choice.strip().casefold() == wanted:
            return choice
    return None


def parse_reply(spec: QuestionSpec, reply: str):
    """The answer `reply` gives to the question: an int (NPS, rating), a choice's text,
    a list of choices' texts, or free text; None for SKIP on an optional question.

    Raises ReplyError with the hint to send back.
    """
    text = (reply or "").strip()
    if not spec.required and text.upper() == SKIP_WORD:
        return None
    if not text:
        raise ReplyError(hint(spec))
    if spec.type in ("nps", "rating"):
        low, high = (NPS_LOW, NPS_HIGH) if spec.type == "nps" else (1, spec.scale_max)
        number = _whole_number(text)
        if number is None or not low <= number <= high:
            raise ReplyError(hint(spec))
        return number
    if spec.type == "single_choice":
        choice = _choice(text, spec.choices)
        if choice is None:
            raise ReplyError(hint(spec))
        return choice
    if spec.type == "multiple_choice":
        whole = _choice(text, spec.choices) if _whole_number(text) is None else None
        if whole is not None:
            # A choice whose own text holds a comma ("Price, fees") is one choice.
            return [whole]
        tokens = [token for token in _SEPARATORS.split(text) if token.strip()]
        if len(tokens) == 1 and all(_NUMBER.fullmatch(part) for part in text.split()):
            tokens = text.split()
        selected: set[str] = set()
        for token in tokens:
            choice = _choice(token, spec.choices)
            if choice is None:
                raise ReplyError(hint(spec))
            selected.add(choice)
        # In the question's order, as the web survey stores them.
        return [choice for choice in spec.choices if choice in selected]
    return text
