"""Tests for xmflows.soap: pure parsing/building, no database and no Django settings needed."""

from __future__ import annotations

import dataclasses
import pickle
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.conftest import SHARED_SAMPLES, shared_samples
from tests.soap_builders import DEFAULT_ORG_ID, build_outbound_message
from xmflows import soap
from xmflows.soap import (
    MAX_NOTIFICATIONS,
    OUTBOUND_NS,
    SOAPENV_NS,
    Notification,
    OutboundMessage,
    SoapError,
    build_ack,
    build_fault,
    parse_outbound_message,
    record_id_forms,
    same_organization,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
SESSION_TOKEN = "00D8a000000XyZa!AQ0AQFakeSessionTokenNotRealZq9Xw3Lm7Pv2Rt5Ys8Uj1Kd4Gh6Bn0Ce3Fi"
ATTACK_FILES = [
    "xxe_file.xml",
    "xxe_url.xml",
    "external_dtd.xml",
    "parameter_entity.xml",
    "billion_laughs.xml",
    "quadratic_blowup.xml",
]
GOOD_FILES = sorted(p.name for p in FIXTURES.glob("*.xml") if p.name not in ATTACK_FILES)
# Strings that would show up in a reason if /etc/passwd had been read.
PASSWD_MARKERS = ("root:", "/bin/", "nologin", "daemon:")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_fixture(name: str) -> OutboundMessage:
    return parse_outbound_message(fixture(name))


def refused(body: bytes) -> str:
    with pytest.raises(SoapError) as info:
        parse_outbound_message(body)
    reason = info.value.reason
    assert isinstance(reason, str) and reason
    assert str(info.value) == reason
    return reason


def case(number: int, **fields: str | None) -> dict[str, object]:
    return {
        "id": f"04l8a00000T{number:06d}AAR",
        "fields": {"Id": f"5008a{number:010d}AAB", **fields},
    }


# Optional: the shared samples beside the project (tests.conftest); skipped when absent.
SAMPLE_FILES = shared_samples()


# --- the fixtures -----------------------------------------------------------


@pytest.mark.parametrize("name", GOOD_FILES)
def test_every_good_fixture_parses(name: str) -> None:
    message = parse_fixture(name)
    assert same_organization(message.organization_id, DEFAULT_ORG_ID)
    assert message.notifications


def test_fixture_directory_is_documented() -> None:
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    for path in FIXTURES.glob("*.xml"):
        assert f"`{path.name}`" in readme, path.name


def test_case_closed() -> None:
    message = parse_fixture("case_closed.xml")
    assert message.organization_id == "00D8a000000XyZaEAK"
    assert message.action_id == "04k8a000000Qr7tAAC"
    assert message.has_session_id is False
    assert message.enterprise_url.endswith("/services/Soap/c/62.0/00D8a000000XyZa")
    assert message.partner_url.endswith("/services/Soap/u/62.0/00D8a000000XyZa")
    (note,) = message.notifications
    assert note.notification_id == "04l8a00000C1a1DAAR"
    assert note.object_type == "Case"
    assert note.record_id == "5008a00002Ab01aAAB"
    assert list(note.fields) == [
        "Id",
        "CaseNumber",
        "ClosedDate",
        "ContactEmail",
        "ContactId",
        "ContactPhone",
        "First_Name__c",
        "Last_Name__c",
        "IsClosed",
        "Priority",
        "Status",
        "Subject",
    ]
    assert note.fields["Id"] == "5008a00002Ab01aAAB"
    assert note.fields["ClosedDate"] == "2026-11-04T09:15:30.000Z"
    assert note.fields["First_Name__c"] == "Jonas"
    assert note.fields["IsClosed"] == "true"
    assert note.fields["Subject"] == "Parcel arrived damaged"


def test_lead_created() -> None:
    (note,) = parse_fixture("lead_created.xml").notifications
    assert note.object_type == "Lead"
    assert note.record_id == "00Q8a00000Rs4tUEAR"
    assert note.fields["Email"] == "ana.silva@example.net"
    assert note.fields["Status"] == "Open - Not Contacted"
    assert note.fields["AnnualRevenue"] == "45000.0"


def test_case_batch_3_keeps_order_accents_and_escapes() -> None:
    notes = parse_fixture("case_batch_3.xml").notifications
    assert [n.notification_id for n in notes] == [
        "04l8a00000C1b1DAAR",
        "04l8a00000C1b2DAAR",
        "04l8a00000C1b3DAAR",
    ]
    assert [n.fields["Last_Name__c"] for n in notes] == ["Lefèvre", "O'Donnell", "Müller & Söhne"]
    assert notes[0].fields["First_Name__c"] == "Zoé"
    assert all(n.object_type == "Case" for n in notes)


def test_nil_omitted_and_empty_are_distinct() -> None:
    (note,) = parse_fixture("case_nil_fields.xml").notifications
    assert "ContactPhone" in note.fields and note.fields["ContactPhone"] is None
    assert "Subject" in note.fields and note.fields["Subject"] is None
    assert "ClosedDate" not in note.fields  # omitted: absent, not None
    assert note.fields["Description"] == ""  # sent empty: a value, not null


def test_other_prefixes_and_default_namespaces() -> None:
    message = parse_fixture("other_prefixes.xml")
    assert message.organization_id == "00D8a000000XyZaEAK"
    assert message.action_id == "04k8a000000Qr7tAAC"
    assert [n.notification_id for n in message.notifications] == [
        "04l8a00000C1d1DAAR",
        "04l8a00000C1d2DAAR",
        "04l8a00000C1d3DAAR",
    ]
    first, second, third = message.notifications
    assert first.object_type == second.object_type == third.object_type == "Case"
    assert first.fields == {
        "Id": "5008a00002Ab31aAAB",
        "CaseNumber": "00003131",
        "Status": "Closed",
        "ContactPhone": None,  # nil through the i: prefix
    }
    assert second.fields == {"Id": "5008a00002Ab32aAAB", "CaseNumber": "00003132", "Status": "New"}
    assert third.record_id == "5008a00002Ab33aAAB"
    assert third.fields["Status"] == "Escalated"


def test_comments_and_processing_instructions_are_skipped() -> None:
    message = parse_fixture("with_comments.xml")
    (note,) = message.notifications
    assert message.organization_id == "00D8a000000XyZaEAK"
    assert note.notification_id == "04l8a00000C1e1DAAR"
    assert list(note.fields) == ["Id", "Subject", "Status"]
    assert note.fields["Subject"] == "Hello world!"


def test_custom_object_type_bound_through_another_prefix() -> None:
    (note,) = parse_fixture("custom_object.xml").notifications
    assert note.object_type == "Survey_Request__c"
    assert note.record_id == "a0B8a00000Cd01aEAB"
    assert note.fields["Channel__c"] == "SMS"
    assert note.fields["Due_Date__c"] == "2026-11-30"


def test_unicode_values_are_kept_exactly() -> None:
    (note,) = parse_fixture("unicode.xml").notifications
    assert note.object_type == "Contact"
    assert note.fields["LastName"] == "Dvořák-Ångström"
    assert note.fields["Title"] == "東京 営業部"
    assert note.fields["Department"] == "قسم المبيعات"
    assert note.fields["Description"] == "  keeps   inner and outer spaces  "
    assert note.fields["Nickname"] == "\U0001f600 été <b> & \"q\" 'a'"
    assert note.fields["MailingStreet"] == "1 Rue de l'Église\nBâtiment B"
    assert note.fields["Emoji__c"] == "🎉👩\u200d💻"
    assert note.fields["Combining__c"] == "e\u0301"  # not normalized to é


def test_deleted_record_has_no_field_data() -> None:
    deleted, present = parse_fixture("deleted_record.xml").notifications
    assert deleted.notification_id == "04l8a00000C1h1DAAR"
    assert deleted.object_type == "Case"
    assert deleted.record_id is None
    assert deleted.fields == {}
    assert present.record_id == "5008a00002Ab52aAAB"


def test_session_id_is_detected_but_never_kept() -> None:
    body = fixture("session_id.xml")
    assert SESSION_TOKEN.encode() in body
    message = parse_outbound_message(body)
    assert message.has_session_id is True
    assert message.organization_id == "00D8a000000XyZa"
    secret_parts = (SESSION_TOKEN, SESSION_TOKEN.split("!", 1)[1])
    dumps = [
        repr(message),
        str(message),
        repr(vars(message)),
        repr(dataclasses.asdict(message)),
        repr([vars(n) for n in message.notifications]),
    ]
    for dump in dumps:
        for part in secret_parts:
            assert part not in dump
    assert SESSION_TOKEN.encode() not in pickle.dumps(message)
    assert not any("session" in f.name and f.type != "bool" for f in dataclasses.fields(message))


@pytest.mark.parametrize(
    "session_xml",
    [
        '<SessionId xsi:nil="true"/>',
        "<SessionId/>",
        "<SessionId>   </SessionId>",
        "",
    ],
)
def test_absent_or_empty_session_id(session_xml: str) -> None:
    body = fixture("case_closed.xml").replace(b'<SessionId xsi:nil="true"/>', session_xml.encode())
    assert parse_outbound_message(body).has_session_id is False


def test_truncations_of_a_message_with_session_id_never_echo_it() -> None:
    body = fixture("session_id.xml")
    start = body.index(b"<SessionId>")
    for end in range(start, body.index(b"</notifications>")):
        with pytest.raises(SoapError) as info:
            parse_outbound_message(body[:end])
        assert "FakeSessionToken" not in info.value.reason


def test_builder_session_id_is_not_kept() -> None:
    body = build_outbound_message([case(1)], session_id="SECRET<&>session")
    message = parse_outbound_message(body)
    assert message.has_session_id is True
    assert "SECRET" not in repr(message)


# --- attacks -----------------------------------------------------------------


@pytest.mark.parametrize("name", ATTACK_FILES)
def test_attack_files_are_refused_as_doctype(name: str) -> None:
    reason = refused(fixture(name))
    assert reason == "DOCTYPE is not allowed in a SOAP message"
    for marker in PASSWD_MARKERS:
        assert marker not in reason


@pytest.fixture
def requested(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every external resource libxml2 asks the hardened parser for (each refused)."""
    urls: list[str | None] = []
    refuse = soap._RefuseExternalResources.resolve

    def recording(
        self: soap._RefuseExternalResources, url: str | None, public_id: str | None, context: object
    ) -> None:
        urls.append(url)
        refuse(self, url, public_id, context)

    monkeypatch.setattr(soap._RefuseExternalResources, "resolve", recording)
    return urls


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A local TCP port that records any connection, to catch network fetches."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    hits: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    hits.append(conn.recv(1024) or b"<connected>")
                except OSError:
                    hits.append(b"<connected>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], hits
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def _with_doctype(doctype: str, subject: str) -> bytes:
    body = fixture("case_closed.xml").decode()
    body = body.replace("?>\n", f"?>\n{doctype}\n", 1)
    return body.replace(
        "<sf:Subject>Parcel arrived damaged</sf:Subject>", f"<sf:Subject>{subject}</sf:Subject>"
    ).encode()


def _attack_documents(secret_file: Path, port: int) -> list[bytes]:
    url = f"http://127.0.0.1:{port}"
    return [
        _with_doctype(f'<!DOCTYPE e [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]>', "&x;"),
        _with_doctype(f'<!DOCTYPE e [<!ENTITY x SYSTEM "{url}/entity">]>', "&x;"),
        _with_doctype(f'<!DOCTYPE e SYSTEM "{url}/external.dtd">', "&y;"),
        _with_doctype(f'<!DOCTYPE e PUBLIC "-//X//DTD X//EN" "{url}/public.dtd">', "plain"),
        _with_doctype(
            f'<!DOCTYPE e [<!ENTITY % p SYSTEM "{url}/param.dtd"> %p;'
            f' <!ENTITY % f SYSTEM "{secret_file.as_uri()}">]>',
            "&z;",
        ),
        _with_doctype(f'<!DOCTYPE e [<!ENTITY % f SYSTEM "{secret_file.as_uri()}"> %f;]>', "x"),
    ]


def test_hardened_parser_alone_never_loads_files_or_network(
    tmp_path: Path, requested: list[str | None], listener: tuple[int, list[bytes]]
) -> None:
    # Skip the byte scan and feed the DOCTYPE straight to the parser: the
    # second line of defence must still resolve nothing and refuse the message.
    port, hits = listener
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("root:x:0:0:CANARY-7f3a:/root:/bin/bash\n", encoding="utf-8")
    for document in _attack_documents(secret_file, port):
        with pytest.raises(SoapError) as info:
            soap._parse_document(document)
        # Had the secret file been read as DTD text, libxml2 would fail with a
        # "Content error ... (secret.txt" instead of this refusal.
        assert info.value.reason == "DOCTYPE is not allowed in a SOAP message"
        with pytest.raises(SoapError) as info:
            parse_outbound_message(document)
        assert info.value.reason == "DOCTYPE is not allowed in a SOAP message"
    assert hits == []
    # With these options libxml2 does not even ask for an external resource;
    # a change that makes it ask (e.g. collect_ids=False) should be noticed.
    assert requested == []


def test_refusing_resolver_stops_external_loads_even_if_the_parser_would_load_them(
    tmp_path: Path,
) -> None:
    # collect_ids=False makes lxml (with libxml2 < 2.15) load external DTDs and
    # parameter entities despite load_dtd=False; the resolver is the backstop
    # for that kind of surprise.
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("root:x:0:0:CANARY-7f3a:/root:/bin/bash\n", encoding="utf-8")
    leaky = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, collect_ids=False
    )
    leaky.resolvers.add(soap._RefuseExternalResources())
    for document in (
        f'<!DOCTYPE e [<!ENTITY % f SYSTEM "{secret_file.as_uri()}"> %f;]><e/>'.encode(),
        f'<!DOCTYPE e SYSTEM "{secret_file.as_uri()}"><e/>'.encode(),
    ):
        with pytest.raises(SoapError) as info:
            etree.fromstring(document, leaky)
        assert info.value.reason == "DOCTYPE is not allowed in a SOAP message"


def test_hardened_parser_alone_survives_billion_laughs() -> None:
    with pytest.raises(SoapError):
        soap._parse_document(fixture("billion_laughs.xml"))


def test_large_quadratic_blowup_is_refused_quickly() -> None:
    entity = "a" * 50_000
    body = _with_doctype(f'<!DOCTYPE e [<!ENTITY a "{entity}">]>', "&a;" * 50_000)
    assert refused(body) == "DOCTYPE is not allowed in a SOAP message"
    with pytest.raises(SoapError):
        soap._parse_document(body)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_doctype_in_utf16_and_utf32_is_refused(codec: str) -> None:
    text = fixture("xxe_file.xml").decode("utf-8")
    label = "UTF-32" if codec.startswith("utf-32") else "UTF-16"
    body = text.replace('encoding="UTF-8"', f'encoding="{label}"').encode(codec)
    reason = refused(body)
    assert "DOCTYPE" in reason or "not XML" in reason
    assert "root:" not in reason


def test_doctype_hidden_by_utf7_is_refused_after_parsing(requested: list[str | None]) -> None:
    # UTF-7 spells "<" as "+ADw-", so no byte scan can see the DOCTYPE; the
    # post-parse docinfo check has to catch it.
    payload = (
        '<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<e:Envelope xmlns:e="{SOAPENV_NS}"><e:Body/></e:Envelope>'
    )
    body = b'<?xml version="1.0" encoding="UTF-7"?>' + payload.replace("<", "+ADw-").encode()
    assert b"<!DOCTYPE" not in body
    reason = refused(body)
    # Depending on libxml2's iconv, UTF-7 is either decoded (and the DOCTYPE
    # found) or unsupported; either way nothing is resolved.
    assert reason == "DOCTYPE is not allowed in a SOAP message" or reason.startswith(
        "body is not XML"
    )
    assert "root:" not in reason
    assert requested == []


@pytest.mark.parametrize(
    "doctype",
    ["<!DOCTYPE soapenv:Envelope>", "<!doctype html>", "<!DocType x [ ]>"],
)
def test_any_doctype_spelling_is_refused(doctype: str) -> None:
    assert refused(_with_doctype(doctype, "x")) == "DOCTYPE is not allowed in a SOAP message"


def test_excessive_depth_is_refused() -> None:
    reason = refused(_with_doctype("", "<a>" * 5000 + "</a>" * 5000))
    assert reason.startswith("body is not XML")
    assert "depth" in reason.lower()


def test_huge_text_node_is_refused() -> None:
    reason = refused(_with_doctype("", "x" * 10_000_001))
    assert reason.startswith("body is not XML")


# --- malformed input -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \r\n\t ",
        b"not xml at all",
        b'{"notifications": [{"Id": "04l"}]}',
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"<html><body><p>unclosed</body></html>",
        b"\x00\x01\x02\xff\xfe",
        b"<",
        b"<?xml version='1.0'?>",
        b'<?xml version="1.0" encoding="bogus-encoding"?><a/>',
    ],
    ids=[
        "empty",
        "whitespace",
        "text",
        "json",
        "html",
        "broken-html",
        "binary",
        "lt",
        "declaration-only",
        "unknown-encoding",
    ],
)
def test_non_soap_bodies_are_refused(body: bytes) -> None:
    refused(body)


def test_empty_body_reason() -> None:
    assert refused(b"") == "body is empty"


def test_non_xml_reason_is_readable() -> None:
    reason = refused(b'{"a": 1}')
    assert reason.startswith("body is not XML: ")
    assert "line 1" in reason
    assert "<string>" not in reason


def test_truncated_message_is_refused() -> None:
    body = fixture("case_batch_3.xml")
    for end in (1, 10, len(body) // 3, len(body) // 2, len(body) - 30, len(body) - 2):
        reason = refused(body[:end])
        assert reason.startswith("body is not XML")


def test_encoding_declaration_that_lies_is_refused() -> None:
    body = fixture("case_batch_3.xml")
    refused(body.replace(b'encoding="UTF-8"', b'encoding="UTF-16"'))
    latin1 = body.decode("utf-8").encode("latin-1")  # é etc. become invalid UTF-8
    assert refused(latin1).startswith("body is not XML")


def test_honest_non_utf8_encodings_are_accepted() -> None:
    text = fixture("case_batch_3.xml").decode("utf-8")
    for codec, label in (("latin-1", "ISO-8859-1"), ("utf-16", "UTF-16")):
        body = text.replace('encoding="UTF-8"', f'encoding="{label}"').encode(codec)
        notes = parse_outbound_message(body).notifications
        assert notes[0].fields["Last_Name__c"] == "Lefèvre"


def test_utf8_bom_is_accepted() -> None:
    assert parse_outbound_message(b"\xef\xbb\xbf" + fixture("case_closed.xml")).notifications


def test_wrong_root_element() -> None:
    assert "no notifications element" in refused(build_ack())
    inner = etree.fromstring(fixture("case_closed.xml"))[0][0]
    reason = refused(etree.tostring(inner))
    assert "not a SOAP 1.1 Envelope" in reason and "notifications" in reason


def test_soap_12_envelope_is_refused() -> None:
    body = fixture("case_closed.xml").replace(
        SOAPENV_NS.encode(), b"http://www.w3.org/2003/05/soap-envelope"
    )
    assert "SOAP 1.2" in refused(body)


def test_envelope_without_namespace_is_refused() -> None:
    body = (
        fixture("other_prefixes.xml").replace(b"env:", b"").replace(b"xmlns:env=", b"xmlns:unused=")
    )
    assert "not a SOAP 1.1 Envelope" in refused(body)


def test_missing_body() -> None:
    body = f'<e:Envelope xmlns:e="{SOAPENV_NS}"><e:Header/></e:Envelope>'.encode()
    assert refused(body) == "SOAP Envelope has no Body"


def test_two_bodies() -> None:
    body = f'<e:Envelope xmlns:e="{SOAPENV_NS}"><e:Body/><e:Body/></e:Envelope>'.encode()
    assert "more than one Body" in refused(body)


def test_notifications_in_the_wrong_namespace() -> None:
    body = fixture("case_closed.xml").replace(OUTBOUND_NS.encode(), b"urn:not-salesforce")
    assert refused(body) == "no notifications element in the SOAP body"
    body = fixture("case_closed.xml").replace(f' xmlns="{OUTBOUND_NS}"'.encode(), b"")
    assert refused(body) == "no notifications element in the SOAP body"


def test_two_notifications_elements() -> None:
    text = fixture("case_closed.xml").decode()
    start, end = (
        text.index("<notifications"),
        text.index("</notifications>") + len("</notifications>"),
    )
    doubled = text[:end] + text[start:end] + text[end:]
    assert "more than one notifications element" in refused(doubled.encode())


def test_missing_organization_id() -> None:
    body = fixture("case_closed.xml").replace(
        b"<OrganizationId>00D8a000000XyZaEAK</OrganizationId>", b""
    )
    assert refused(body) == "message has no OrganizationId"


def test_duplicate_organization_id() -> None:
    body = fixture("case_closed.xml").replace(
        b"<ActionId>", b"<OrganizationId>00D000000000001AAA</OrganizationId><ActionId>"
    )
    assert "more than one OrganizationId" in refused(body)


def test_missing_optional_header_fields_default_to_empty() -> None:
    text = fixture("case_closed.xml").decode()
    for tag in ("ActionId", "EnterpriseUrl", "PartnerUrl"):
        start = text.index(f"<{tag}>")
        end = text.index(f"</{tag}>") + len(tag) + 3
        text = text[:start] + text[end:]
    message = parse_outbound_message(text.encode())
    assert (message.action_id, message.enterprise_url, message.partner_url) == ("", "", "")


def test_notification_without_id_names_its_position() -> None:
    body = build_outbound_message([case(1), case(2)]).replace(b"<Id>04l8a00000T000002AAR</Id>", b"")
    assert refused(body) == "notification 2 has no Id"
    body = build_outbound_message([case(1), case(2)]).replace(
        b"<Id>04l8a00000T000002AAR</Id>", b"<Id> \n </Id>"
    )
    assert refused(body) == "notification 2 has no Id"


def test_notification_ids_are_stripped() -> None:
    body = build_outbound_message([case(1)]).replace(
        b"<Id>04l8a00000T000001AAR</Id>", b"<Id>\n  04l8a00000T000001AAR  </Id>"
    )
    assert parse_outbound_message(body).notifications[0].notification_id == "04l8a00000T000001AAR"


def test_record_id_is_stripped_but_field_is_kept_as_sent() -> None:
    (note,) = parse_outbound_message(
        build_outbound_message([{"id": "N1", "fields": {"Id": " 500X "}}])
    ).notifications
    assert note.record_id == "500X"
    assert note.fields["Id"] == " 500X "


def test_duplicate_field_is_refused() -> None:
    body = build_outbound_message([case(1, Status="Closed")]).replace(
        b"<sf:Status>Closed</sf:Status>", b"<sf:Status>Closed</sf:Status><sf:Status>New</sf:Status>"
    )
    assert refused(body) == "notification 1 has field Status more than once"


def test_nested_children_in_a_field_give_text_content() -> None:
    body = build_outbound_message([case(1, Subject="@@")]).replace(
        b"@@", b"Hi <b>there <i>you</i></b> all"
    )
    (note,) = parse_outbound_message(body).notifications
    assert note.fields["Subject"] == "Hi there you all"


def test_xsi_nil_spellings() -> None:
    body = build_outbound_message([case(1, A="x", B="y", C="z")])
    body = body.replace(b"<sf:A>x</sf:A>", b'<sf:A xsi:nil="1"/>')
    body = body.replace(b"<sf:B>y</sf:B>", b'<sf:B xsi:nil=" true ">ignored</sf:B>')
    body = body.replace(b"<sf:C>z</sf:C>", b'<sf:C xsi:nil="false">z</sf:C>')
    fields = parse_outbound_message(body).notifications[0].fields
    assert fields["A"] is None and fields["B"] is None and fields["C"] == "z"


def _fields_asking_every_field(body: bytes, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    # What the parser gives when it asks every field for xsi:nil (no shortcut).
    with monkeypatch.context() as patched:
        patched.setattr(soap, "_may_hold_nil", lambda *args: True)
        return [dict(n.fields) for n in parse_outbound_message(body).notifications]


@pytest.mark.parametrize(
    "codec", ["utf-8", "latin-1", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "cp1252"]
)
@pytest.mark.parametrize("session_nil", [True, False])
def test_nil_fields_are_found_whatever_the_encoding_and_headers(
    codec: str, session_nil: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parser skips the per-field xsi:nil lookup when the bytes show there is none
    # beyond the headers' (soap._may_hold_nil): every encoding, with and without a nil
    # SessionId, must still find the nil fields and keep "nil" inside values as text.
    body = build_outbound_message(
        [case(1, City="Manila", Note="vanilla nil"), case(2, City=None, Note="x")],
    ).decode("utf-8")
    if not session_nil:
        body = body.replace('<SessionId xsi:nil="true"/>', "")
    declared = {"latin-1": "ISO-8859-1", "cp1252": "windows-1252", "utf-16": "UTF-16"}
    declared["utf-32"] = "UTF-32"
    if codec in ("utf-16-le", "utf-16-be", "utf-8"):
        # No declaration at all (lxml then reports UTF-8 even for UTF-16).
        body = body.replace('<?xml version="1.0" encoding="UTF-8"?>', "")
    else:
        body = body.replace('encoding="UTF-8"', f'encoding="{declared.get(codec, codec)}"')
    raw = body.encode(codec)
    if codec in ("utf-16-le", "utf-16-be"):
        raw = "\ufeff".encode(codec) + raw
    first, second = (n.fields for n in parse_outbound_message(raw).notifications)
    assert first["City"] == "Manila" and first["Note"] == "vanilla nil"
    assert second["City"] is None and second["Note"] == "x"
    assert [first, second] == _fields_asking_every_field(raw, monkeypatch)


def test_only_nil_field_beside_a_nil_session_id_is_found() -> None:
    body = build_outbound_message([case(1, A="x")])
    assert b'<SessionId xsi:nil="true"/>' in body
    body = body.replace(b"<sf:A>x</sf:A>", b'<sf:A xsi:nil="true"/>')
    assert parse_outbound_message(body).notifications[0].fields["A"] is None


def test_doctype_after_a_comment_is_still_refused() -> None:
    # A body with "<!" is searched for a DOCTYPE (soap._refuse_doctype_marker skips
    # the search only for bodies without "<!" and without NUL bytes).
    body = fixture("case_closed.xml").split(b"?>", 1)[1]
    assert refused(b'<!-- hi --><!DocType x [<!ENTITY y "z">]>' + body).startswith("DOCTYPE")
    assert parse_outbound_message(b"<!-- hi -->" + body).notifications


def test_nil_in_another_namespace_is_just_an_attribute() -> None:
    body = build_outbound_message([case(1, A="x")]).replace(
        b"<sf:A>x</sf:A>", b'<sf:A xmlns:q="urn:other" q:nil="true">x</sf:A>'
    )
    assert parse_outbound_message(body).notifications[0].fields["A"] == "x"


@pytest.mark.parametrize(
    ("type_attr", "expected"),
    [
        ('xsi:type="sf:Case"', "Case"),
        ('xsi:type="Case"', "Case"),
        ('xsi:type="  sf:Case "', "Case"),
        ('xsi:type=""', ""),
        ("", ""),
    ],
)
def test_object_type_resolution(type_attr: str, expected: str) -> None:
    body = build_outbound_message([case(1)]).replace(b'xsi:type="sf:Case"', type_attr.encode())
    assert parse_outbound_message(body).notifications[0].object_type == expected


@pytest.mark.parametrize("type_value", ["nope:Case", "a:b:Case", "sf:", "sf:Ca se"])
def test_bad_object_type_is_refused(type_value: str) -> None:
    body = build_outbound_message([case(1)]).replace(b'"sf:Case"', f'"{type_value}"'.encode())
    reason = refused(body)
    assert reason.startswith("notification 1 has an sObject xsi:type")


def test_xsi_type_prefix_declared_on_an_ancestor() -> None:
    (note,) = parse_fixture("custom_object.xml").notifications
    assert note.object_type == "Survey_Request__c"


def test_notification_without_sobject() -> None:
    body = build_outbound_message([case(1)])
    start = body.index(b"<sObject")
    end = body.index(b"</sObject>") + len(b"</sObject>")
    (note,) = parse_outbound_message(body[:start] + body[end:]).notifications
    assert (note.object_type, note.record_id, note.fields) == ("", None, {})


def test_two_sobjects_are_refused() -> None:
    body = build_outbound_message([case(1)])
    start = body.index(b"<sObject")
    end = body.index(b"</sObject>") + len(b"</sObject>")
    doubled = body[:end] + body[start:end] + body[end:]
    assert refused(doubled) == "notification 1 has more than one sObject"


def test_unknown_elements_are_ignored() -> None:
    body = build_outbound_message([case(1)]).replace(
        b"<ActionId>", b'<Extra xmlns:z="urn:z"><z:Thing/></Extra><ActionId>'
    )
    body = body.replace(b"</Notification>", b"<Note>ignored</Note></Notification>")
    assert len(parse_outbound_message(body).notifications) == 1


def test_soap_header_is_allowed() -> None:
    body = fixture("case_closed.xml").replace(
        b"<soapenv:Body>",
        b"<soapenv:Header><x:Thing xmlns:x='urn:x'/></soapenv:Header><soapenv:Body>",
    )
    assert parse_outbound_message(body).notifications[0].notification_id == "04l8a00000C1a1DAAR"


def test_long_reasons_are_shortened() -> None:
    name = "x" * 5000
    reason = refused(f"<{name}></y>".encode())
    assert len(reason) <= 300


def test_bytes_like_input_and_wrong_type() -> None:
    assert parse_outbound_message(bytearray(fixture("case_closed.xml"))).notifications
    assert parse_outbound_message(memoryview(fixture("case_closed.xml"))).notifications
    with pytest.raises(TypeError):
        parse_outbound_message(fixture("case_closed.xml").decode())  # type: ignore[arg-type]


def test_results_are_frozen() -> None:
    message = parse_fixture("case_closed.xml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.organization_id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.notifications[0].record_id = "other"  # type: ignore[misc]
    assert isinstance(message.notifications, tuple)


# --- counts ------------------------------------------------------------------------


def test_100_notifications_are_accepted() -> None:
    body = build_outbound_message([case(i, Status="Closed") for i in range(1, 101)])
    message = parse_outbound_message(body)
    assert len(message.notifications) == MAX_NOTIFICATIONS == 100
    assert message.notifications[-1].notification_id == "04l8a00000T000100AAR"
    assert len({n.notification_id for n in message.notifications}) == 100


def test_101_notifications_are_refused() -> None:
    body = build_outbound_message([case(i) for i in range(1, 102)])
    assert refused(body) == "message has 101 notifications; at most 100 are allowed"


def test_0_notifications_are_refused() -> None:
    assert refused(build_outbound_message([])) == "message has no Notification elements"


def test_duplicate_notification_ids_are_kept_for_the_caller_to_deduplicate() -> None:
    message = parse_outbound_message(build_outbound_message([case(1), case(1)]))
    assert [n.notification_id for n in message.notifications] == ["04l8a00000T000001AAR"] * 2


# --- builder helper --------------------------------------------------------------


def test_builder_escapes_values_and_defaults() -> None:
    tricky = "a<b>&c\"d'e]]>f\r\ng\t"
    body = build_outbound_message(
        [{"id": "N&1", "fields": {"Id": "001", "Name": tricky, "Gone": None}}],
        object_type="Survey_Request__c",
    )
    message = parse_outbound_message(body)
    (note,) = message.notifications
    assert message.organization_id == DEFAULT_ORG_ID
    assert note.notification_id == "N&1"
    assert note.object_type == "Survey_Request__c"
    assert note.fields == {"Id": "001", "Name": tricky, "Gone": None}


def test_builder_deleted_record() -> None:
    (note,) = parse_outbound_message(
        build_outbound_message([{"id": "N1", "fields": {}}])
    ).notifications
    assert (note.record_id, note.fields, note.object_type) == (None, {}, "Case")


# --- organization ids -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("00D8a000000XyZaEAK", "00D8a000000XyZaEAK", True),
        ("00D8a000000XyZa", "00D8a000000XyZaEAK", True),
        ("00D8a000000XyZaEAK", "00D8a000000XyZa", True),
        (" 00D8a000000XyZa\n", "00D8a000000XyZaEAK ", True),
        ("00D8a000000XyZaEAK", "00D8a000000XyZaXXX", True),  # suffix is derived, ignored
        ("00D8a000000XyZa", "00D8a000000XYZa", False),  # case-sensitive
        ("00D8a000000XyZa", "00D8a000000XyZb", False),
        ("00D8a000000XyZaEAK", "00D5e000001AbCdEAA", False),
        ("", "", False),
        ("00D8a", "00D8a", False),
        ("00D8a000000XyZaE", "00D8a000000XyZaE", False),  # 16 chars is no Salesforce id
    ],
)
def test_same_organization(a: str, b: str, same: bool) -> None:
    assert same_organization(a, b) is same
    assert same_organization(b, a) is same


def test_same_organization_with_parsed_message() -> None:
    message = parse_fixture("session_id.xml")
    assert same_organization(message.organization_id, "00D8a000000XyZaEAK")


# --- responses ---------------------------------------------------------------------


def _envelope_body(data: bytes) -> etree._Element:
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(data)
    assert root.tag == f"{{{SOAPENV_NS}}}Envelope"
    children = [c for c in root if isinstance(c.tag, str)]
    assert [c.tag for c in children] == [f"{{{SOAPENV_NS}}}Body"]
    return children[0]


@pytest.mark.parametrize(("ack", "text"), [(True, "true"), (False, "false")])
def test_build_ack(ack: bool, text: str) -> None:
    body = _envelope_body(build_ack(ack))
    (response,) = body
    assert response.tag == f"{{{OUTBOUND_NS}}}notificationsResponse"
    (ack_element,) = response
    assert ack_element.tag == f"{{{OUTBOUND_NS}}}Ack"
    assert ack_element.text == text


def test_build_ack_default_is_true() -> None:
    assert build_ack() == build_ack(True)


def _canonical(data: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(data, parser), method="c14n")


def test_build_ack_matches_the_sample_ack() -> None:
    sample = SHARED_SAMPLES / "ack_response.xml"
    if not sample.exists():
        pytest.skip("shared samples are not available")
    assert _canonical(build_ack()) == _canonical(sample.read_bytes())


@pytest.mark.parametrize("code", ["Client", "Server"])
def test_build_fault(code: str) -> None:
    message = "bad <input> & \"quotes\" 'here' ]]> é 🎉"
    body = _envelope_body(build_fault(code=code, message=message))
    (fault,) = body
    assert fault.tag == f"{{{SOAPENV_NS}}}Fault"
    assert [c.tag for c in fault] == ["faultcode", "faultstring"]  # unqualified
    faultcode, faultstring = fault
    prefix, _, local = faultcode.text.partition(":")
    assert faultcode.text == f"soapenv:{code}"
    assert faultcode.nsmap[prefix] == SOAPENV_NS and local == code
    assert faultstring.text == message


def test_build_fault_replaces_characters_xml_cannot_carry() -> None:
    body = _envelope_body(build_fault(code="Client", message="a\x00b\x1bc\ud800d\ufffee\tf\ng"))
    assert body[0][1].text == "a\ufffdb\ufffdc\ufffdd\ufffde\tf\ng"


def test_build_fault_rejects_unknown_codes() -> None:
    with pytest.raises(ValueError):
        build_fault(code="soapenv:Client", message="x")
    with pytest.raises(ValueError):
        build_fault(code="client", message="x")


def test_responses_are_not_outbound_messages() -> None:
    assert refused(build_ack()) == "no notifications element in the SOAP body"
    assert (
        refused(build_fault(code="Server", message="x"))
        == "no notifications element in the SOAP body"
    )


# --- the shared samples -------------------------------------------------------------


@pytest.mark.skipif(not SAMPLE_FILES, reason="shared samples are not available")
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_shared_sample(path: Path) -> None:
    body = path.read_bytes()
    if path.name == "ack_response.xml":
        assert refused(body) == "no notifications element in the SOAP body"
        return
    message = parse_outbound_message(body)
    assert same_organization(message.organization_id, "00D8a000000XyZaEAK")
    assert 1 <= len(message.notifications) <= MAX_NOTIFICATIONS
    for note in message.notifications:
        assert note.notification_id
        assert note.object_type in ("Case", "Lead")
        assert note.record_id == note.fields["Id"]
    if path.name == "case_batch_3.xml":
        assert len(message.notifications) == 3
    if path.name == "case_nil_fields.xml":
        assert message.notifications[0].fields["Subject"] is None


# --- properties ----------------------------------------------------------------------


ALL_FIXTURES = [fixture(p.name) for p in sorted(FIXTURES.glob("*.xml"))]
MARKUP_SNIPPETS = [
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b"&x;",
    b"&#0;",
    b"&#x1F600;",
    b"<!--",
    b"-->",
    b"<?pi x?>",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE x>",
    b'xsi:nil="true"',
    b'xsi:type="q:T"',
    b"<sf:X>",
    b"</sf:X>",
    b"<Notification><Id>1</Id></Notification>",
    b"<Id></Id>",
    b"\x00",
    b"\xff\xfe",
    "é🎉".encode(),
]


def _check_result(result: OutboundMessage) -> None:
    assert isinstance(result, OutboundMessage)
    assert result.organization_id
    assert 1 <= len(result.notifications) <= MAX_NOTIFICATIONS
    for note in result.notifications:
        assert isinstance(note, Notification)
        assert note.notification_id and note.notification_id == note.notification_id.strip()
        assert isinstance(note.object_type, str)
        assert all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in note.fields.items()
        )


def _parse_anything(body: bytes) -> None:
    try:
        result = parse_outbound_message(body)
    except SoapError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        assert len(exc.reason) <= 300
        return
    _check_result(result)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_soap_error(body: bytes) -> None:
    _parse_anything(body)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(ALL_FIXTURES)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "snippet", "delete"]))
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] = draw(st.integers(min_value=0, max_value=255))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "snippet":
            data[position:position] = draw(st.sampled_from(MARKUP_SNIPPETS))
        else:
            del data[position : position + draw(st.integers(min_value=1, max_value=64))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_mutated_fixtures_only_raise_soap_error(body: bytes) -> None:
    _parse_anything(body)


def _xml_char(c: str) -> bool:
    code = ord(c)
    return c in "\t\n\r" or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


XML_TEXT = st.text(st.characters(codec="utf-8").filter(_xml_char), max_size=40)
FIELD_NAMES = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,15}\Z")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            XML_TEXT.filter(lambda s: s.strip() != ""),
            st.dictionaries(FIELD_NAMES, st.none() | XML_TEXT, max_size=6),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_builder_round_trips_exactly(items: list[tuple[str, dict[str, str | None]]]) -> None:
    body = build_outbound_message([{"id": nid, "fields": fields} for nid, fields in items])
    message = parse_outbound_message(body)
    assert [n.notification_id for n in message.notifications] == [nid.strip() for nid, _ in items]
    assert [n.fields for n in message.notifications] == [fields for _, fields in items]
    for note, (_, fields) in zip(message.notifications, items, strict=True):
        assert list(note.fields) == list(fields)  # order preserved


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["Client", "Server"]))
def test_build_fault_always_produces_parseable_soap(message: str, code: str) -> None:
    body = _envelope_body(build_fault(code=code, message=message))
    faultstring = body[0][1].text or ""
    expected = "".join(c if _xml_char(c) else "\ufffd" for c in message)
    # XML parsers turn a literal CR into LF; lxml escapes it, so it survives.
    assert faultstring == expected


@pytest.mark.parametrize(
    ("given", "forms"),
    [
        ("0015000000Gv7qJ", ["0015000000Gv7qJAAR", "0015000000Gv7qJ"]),  # Salesforce's example
        ("0015000000Gv7qJAAR", ["0015000000Gv7qJAAR", "0015000000Gv7qJ"]),
        (" 5008a00002Ab01a ", ["5008a00002Ab01aAAB", "5008a00002Ab01a"]),
        # The 18-character form survives a change of case: its suffix says where the
        # capitals were.
        (
            "0015000000gv7qjaar",
            ["0015000000Gv7qJAAR", "0015000000Gv7qJ", "0015000000gv7qjaar", "0015000000gv7qj"],
        ),
        ("not-an-id", ["not-an-id"]),
    ],
)
def test_record_id_forms(given: str, forms: list[str]) -> None:
    assert record_id_forms(given) == forms
