"""Email and phone normalisation (pure, no database)."""

import pytest

from contacts.normalize import normalize_country, normalize_email, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jonas.berg@example.org", "jonas.berg@example.org"),
        ("  Jonas.Berg@Example.ORG \n", "Jonas.Berg@example.org"),
        ("tom.o'brien+cases@example.co.uk", "tom.o'brien+cases@example.co.uk"),
        ("sofia@exämple.org", "sofia@exämple.org"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_valid_emails_are_trimmed_and_domain_lowercased(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "x",
        "a@b",
        "a@b.c",
        "a..b@example.org",
        ".a@example.org",
        "a@@example.org",
        "a b@example.org",
        "a@-example.org",
        "a@example.123",
        "Ana <ana@example.org>",
        "a@" + "x" * 250 + ".org",
    ],
)
def test_invalid_emails_are_refused_with_the_value(raw):
    with pytest.raises(ValueError) as error:
        normalize_email(raw)
    assert str(error.value) == f"not a valid email address: {raw.strip()!r}"


def test_invalid_email_message_format():
    with pytest.raises(ValueError, match=r"^not a valid email address: 'x'$"):
        normalize_email("x")


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("(415) 555-0100", "US", "+14155550100"),
        ("415.555.0100", "US", "+14155550100"),
        ("1 415 555 0100", "US", "+14155550100"),
        ("+44 20 7946 0001", "US", "+442079460001"),
        ("+44 20 7946 0001", "GB", "+442079460001"),
        ("020 7946 0001", "GB", "+442079460001"),
        ("011 44 20 7946 0001", "US", "+442079460001"),
        ("+46 8 555 010 01", "US", "+46855501001"),
        ("", "US", ""),
    ],
)
def test_phones_become_e164(raw, country, expected):
    assert normalize_phone(raw, country) == expected


def test_national_number_is_read_in_the_default_country():
    # The same digits mean different numbers in different countries.
    assert normalize_phone("020 7946 0001", "GB") != normalize_phone("0207946001", "FR")


def test_unreadable_national_phone_names_value_and_country():
    with pytest.raises(ValueError) as error:
        normalize_phone("(415) 55", "US")
    assert str(error.value) == "cannot read phone number '(415) 55' for country US"


@pytest.mark.parametrize("raw", ["abc", "555-555-555", "12", "2-415-555-0100"])
def test_unreadable_phones_are_refused(raw):
    with pytest.raises(ValueError, match="cannot read phone number"):
        normalize_phone(raw, "US")


def test_invalid_international_phone_is_refused():
    with pytest.raises(ValueError, match=r"'\+44 20': not a valid international number"):
        normalize_phone("+44 20", "US")


def test_country_codes():
    assert normalize_country(" gb ") == "GB"
    with pytest.raises(ValueError, match="unknown country code 'XX'"):
        normalize_country("XX")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("555-555-5555", "+15555555555"), ("1 (212) 555-0199", "+12125550199")],
)
def test_us_national_numbers_follow_the_contract_rule(raw, expected):
    """CONTRACT §5: 10 digits, or 11 starting with 1, whatever the numbering plan says."""
    assert normalize_phone(raw, "US") == expected
