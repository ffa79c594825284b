"""SMS text rules without a database: segments as carriers count them, keywords, replies."""

import pytest

from distributions.sms_text import (
    QuestionSpec,
    ReplyError,
    keyword,
    parse_reply,
    prompt,
    reask,
    segments,
)

# --- Segments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "count"),
    [
        ("", "GSM-7", 0),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        # An extension character takes two septets: 80 of them fill one segment.
        ("€" * 80, "GSM-7", 1),
        ("€" * 81, "GSM-7", 2),
        # Accented letters of the GSM alphabet stay GSM-7; others switch to UCS-2.
        ("Hola, ¿qué tal? Ñoño. " * 2, "GSM-7", 1),
        ("á" * 70, "UCS-2", 1),
        ("á" * 71, "UCS-2", 2),
        ("á" * 134, "UCS-2", 2),
        ("á" * 135, "UCS-2", 3),
        # An emoji is two UTF-16 units (a surrogate pair).
        ("😀" * 35, "UCS-2", 1),
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_segments_are_counted_as_the_provider_splits(text, encoding, count):
    counted = segments(text)
    assert (counted.encoding, counted.count) == (encoding, count)
    assert counted.characters == len(text)


def test_an_escape_pair_is_never_split_across_segments():
    # 152 plain septets, then "€" (2 septets) does not fit in the first 153: it opens
    # the second segment.
    assert segments("a" * 152 + "€" + "b" * 100).count == 2
    assert segments("a" * 152 + "€" + "b" * 152).count == 3


def test_one_non_gsm_character_makes_the_whole_text_ucs2():
    text = "Your survey: https://example.com/s/abc " + "x" * 40 + " ✓"
    counted = segments(text)
    assert counted.encoding == "UCS-2"
    assert counted.count == 2


# --- Keywords ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Stop ", "STOPALL", "unsubscribe", "CANCEL", "end", "QUIT"]
)
def test_opt_out_keywords(word):
    assert keyword(word) == "stop"


@pytest.mark.parametrize("word", ["START", "unstop", "Yes"])
def test_opt_in_keywords(word):
    assert keyword(word) == "start"


def test_help_and_non_keywords():
    assert keyword("help") == "help"
    assert keyword("Stop calling me") is None
    assert keyword("9") is None
    assert keyword("") is None


# --- Questions and replies ----------------------------------------------------------------

NPS = QuestionSpec(type="nps", text="Recommend us?")
RATING = QuestionSpec(type="rating", text="Rate us", scale_max=5)
SINGLE = QuestionSpec(type="single_choice", text="Channel?", choices=("Phone", "Email", "Chat"))
MULTIPLE = QuestionSpec(
    type="multiple_choice", text="What mattered?", choices=("Speed", "Price, fees", "Staff")
)
TEXT = QuestionSpec(type="text", text="Anything else?", required=False)


def test_prompts_number_the_choices_and_say_how_to_answer():
    assert prompt(NPS) == "Recommend us?\nReply with a number from 0 to 10."
    assert prompt(SINGLE) == (
        "Channel?\n1. Phone\n2. Email\n3. Chat\nReply with the number of one option."
    )
    assert "Reply SKIP to skip." in prompt(TEXT)
    assert reask(NPS, "Sorry, please reply with a number from 0 to 10.") == (
        "Sorry, please reply with a number from 0 to 10.\nRecommend us?"
    )


@pytest.mark.parametrize(("reply", "value"), [("0", 0), ("10", 10), (" 7 ", 7), ("9!", 9)])
def test_nps_replies(reply, value):
    assert parse_reply(NPS, reply) == value


@pytest.mark.parametrize("reply", ["11", "-1", "nine", "7.5", "", "10 stars"])
def test_invalid_nps_replies_give_the_hint(reply):
    with pytest.raises(ReplyError) as raised:
        parse_reply(NPS, reply)
    assert raised.value.hint == "Sorry, please reply with a number from 0 to 10."


def test_rating_is_bounded_by_its_scale():
    assert parse_reply(RATING, "5") == 5
    with pytest.raises(ReplyError, match="1 to 5"):
        parse_reply(RATING, "0")


def test_single_choice_by_number_or_by_text():
    assert parse_reply(SINGLE, "2") == "Email"
    assert parse_reply(SINGLE, "chat") == "Chat"
    with pytest.raises(ReplyError, match="from 1 to 3"):
        parse_reply(SINGLE, "4")
    with pytest.raises(ReplyError):
        parse_reply(SINGLE, "Fax")


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("1,3", ["Speed", "Staff"]),
        ("3, 1", ["Speed", "Staff"]),
        ("1 3", ["Speed", "Staff"]),
        ("speed and staff", ["Speed", "Staff"]),
        ("Price, fees", ["Price, fees"]),
        ("2", ["Price, fees"]),
    ],
)
def test_multiple_choice_by_numbers_or_texts(reply, value):
    assert parse_reply(MULTIPLE, reply) == value


def test_multiple_choice_refuses_an_unknown_option():
    with pytest.raises(ReplyError, match=r"e\.g\. 1,3"):
        parse_reply(MULTIPLE, "1,7")


def test_free_text_and_skip():
    assert parse_reply(TEXT, "  Faster please  ") == "Faster please"
    assert parse_reply(TEXT, "skip") is None
    with pytest.raises(ReplyError):
        parse_reply(NPS, "SKIP")  # required: SKIP is no answer
