"""Validation and normalisation of contact emails and phone numbers; no Django imports."""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["MATCH_KEYS", "normalize_country", "normalize_email", "normalize_phone"]

# The contact fields a directory may deduplicate on. Both are unique per directory in
# the database, which is what makes matching safe under concurrency.
MATCH_KEYS: tuple[str, ...] = ("email", "external_data_reference")

# RFC 5321 limits: what mail servers accept in practice.
_MAX_EMAIL = 254
_MAX_LOCAL = 64
# A dot-atom local part (RFC 5322 without quoted strings): quoted local parts and
# comments are legal but no email service we send through accepts them reliably.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_TOP_LEVEL = re.compile(r"^(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$")


def normalize_email(value: str) -> str:
    """Return the address trimmed, with its domain in lower case.

    The local part keeps its case: it is the recipient's own spelling (matching is
    case-insensitive anyway). Blank input gives "" (no address is not a bad address).
    Raises ValueError("not a valid email address: 'x'") otherwise.
    """
    text = (value or "").strip()
    if not text:
        return ""
    error = ValueError(f"not a valid email address: {text!r}")
    if len(text) > _MAX_EMAIL or text.count("@") != 1:
        raise error
    local, domain = text.split("@")
    if not local or len(local) > _MAX_LOCAL or not _LOCAL_PART.match(local):
        raise error
    domain = domain.lower()
    try:
        # Internationalised domains (exämple.org) are valid once IDNA-encoded.
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise error from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise error
    if not _TOP_LEVEL.match(labels[-1]):
        raise error
    return f"{local}@{domain}"


def normalize_country(value: str) -> str:
    """Return an ISO 3166 region code phonenumbers knows ("us" → "US"), or raise ValueError."""
    code = (value or "").strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown country code {value!r}: use a two-letter code such as US or GB")
    return code


# Countries of the North American Numbering Plan share +1 and the 10-digit format.
_NANP_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
_NANP_NATIONAL = re.compile(r"^1?[0-9]{10}$")
_NANP_INTERNATIONAL = re.compile(r"^1[0-9]{10}$")


def normalize_phone(value: str, default_country: str) -> str:
    """Return the number in E.164 ("+14155550100"); blank input gives "".

    A number starting with "+" (or the country's international dialling prefix: 00
    in most, 011 in North America) is international; any other is read as a national
    number of `default_country`. Numbers that cannot be dialled (wrong length,
    unassigned ranges) are refused: an SMS to them would only fail later, where
    nobody sees why. North American numbers (+1 and 10 digits, or a national 10 or 11
    starting with 1) are the exception: taken as written (CONTRACT §5), 555 test
    numbers included, in either form, so that a normalised number normalises again
    to itself.
    """
    text = (value or "").strip()
    if not text:
        return ""
    country = (default_country or "US").strip().upper()
    international = text.startswith("+")
    if international:
        error = ValueError(f"cannot read phone number {text!r}: not a valid international number")
    else:
        error = ValueError(f"cannot read phone number {text!r} for country {country}")
    # ASCII digits only: a number typed with other digits (Arabic-Indic, full-width)
    # is the same number, and E.164 (what Twilio dials, what opt-outs are kept under)
    # is ASCII.
    digits = phonenumbers.normalize_digits_only(text)
    if (not international and country in _NANP_REGIONS and _NANP_NATIONAL.match(digits)) or (
        international and _NANP_INTERNATIONAL.match(digits)
    ):
        # CONTRACT §5: in North America a national number is 10 digits, or 11 starting
        # with 1. Taken as written (555 test numbers included) rather than second-guessed
        # against the numbering plan, which changes faster than this library's releases.
        # Its E.164 form (+1 and 10 digits) is read the same way, so a number that was
        # normalised once normalises again to itself (a workflow normalises twice).
        return f"+1{digits[-10:]}"
    try:
        number = phonenumbers.parse(text, None if international else country)
    except phonenumbers.NumberParseException as exc:
        raise error from exc
    if not phonenumbers.is_valid_number(number):
        raise error
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
