"""Salesforce Outbound Message SOAP 1.1 parsing, Ack and Fault building; lxml, no Django imports."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lxml import etree

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOAPENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100

_SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
_XSI_TYPE = f"{{{XSI_NS}}}type"
_XSI_NIL = f"{{{XSI_NS}}}nil"
# Reasons end up in Faults, logs and the rejected-delivery table; lxml can echo
# attacker-chosen names of up to 50,000 characters, so keep them readable.
_MAX_REASON_CHARS = 300

# "<!doctype" as it would appear in the encodings a parser auto-detects without
# a declaration. Exotic declared encodings (UTF-7, EBCDIC) can hide it from this
# scan, which is why the parsed tree's docinfo is checked as well.
_DOCTYPE_MARKERS = tuple(
    "<!doctype".encode(codec)
    for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)

# Characters XML 1.0 cannot carry at all; lxml refuses them when serializing.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_local = threading.local()


class SoapError(Exception):
    """The parser's only exception; ``reason`` is a sentence a person understands."""

    def __init__(self, reason: str) -> None:
        if len(reason) > _MAX_REASON_CHARS:
            reason = reason[: _MAX_REASON_CHARS - 1] + "…"
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Notification:
    notification_id: str
    object_type: str
    record_id: str | None
    fields: dict[str, str | None]


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    # Only whether a session id was sent: the value is a live API credential
    # and must not outlive the request in any object, log or table.
    has_session_id: bool
    enterprise_url: str
    partner_url: str
    notifications: tuple[Notification, ...]


class _RefuseExternalResources(etree.Resolver):
    """Answers every external load (DTD subset, entity, parameter entity) with a refusal."""

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> None:
        # libxml2 only asks for external resources because of a DOCTYPE. lxml
        # consults parser resolvers before its default loader, so raising here
        # means no file or socket is ever opened, whatever the encoding trick
        # that got a DOCTYPE past the byte scan; lxml re-raises this error
        # from the parse call.
        raise SoapError("DOCTYPE is not allowed in a SOAP message")


def _parser() -> etree.XMLParser:
    # lxml serializes concurrent use of one parser object behind a lock, so
    # each thread gets its own instance of the single hardened configuration.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        # collect_ids=False is deliberately absent: with libxml2 < 2.15 lxml
        # implements it through ctxt->loadsubset, which makes libxml2 load
        # external DTD subsets and parameter entities despite load_dtd=False.
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        parser.resolvers.add(_RefuseExternalResources())
        _local.parser = parser
    return parser


def _refuse_doctype_marker(body: bytes) -> None:
    # Refused before libxml2 sees a byte, so a DTD is never even tokenized in
    # the usual encodings. A literal "<!DOCTYPE" cannot occur in escaped text,
    # only as markup or inside a comment/CDATA; refusing those too is harmless.
    # Every marker holds "<!" (UTF-8) or NUL bytes (UTF-16, UTF-32): a body with
    # neither, as a SOAP message is, needs no lower-cased copy to search.
    if b"<!" not in body and b"\x00" not in body:
        return
    lowered = body.lower()
    if any(marker in lowered for marker in _DOCTYPE_MARKERS):
        raise SoapError("DOCTYPE is not allowed in a SOAP message")


def _parse_document(body: bytes) -> etree._Element:
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise SoapError(f"body is not XML: {exc.msg or 'unreadable document'}") from exc
    except (etree.LxmlError, ValueError, LookupError) as exc:
        raise SoapError(f"body is not XML: {exc}") from exc
    if root is None:
        raise SoapError("body is not XML: no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.system_url:
        raise SoapError("DOCTYPE is not allowed in a SOAP message")
    return root


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _describe(tag: str) -> str:
    namespace, local = _split(tag)
    return f"'{local}' in namespace {namespace}" if namespace else f"'{local}' in no namespace"


def _elements(parent: etree._Element) -> Iterator[etree._Element]:
    # Comments, processing instructions and entity references have a
    # non-string tag; the parser drops most of them, this skips the rest.
    for child in parent:
        if isinstance(child.tag, str):
            yield child


def _is(element: etree._Element, namespace: str, local: str) -> bool:
    return element.tag == f"{{{namespace}}}{local}"


def _is_nil(element: etree._Element) -> bool:
    return (element.get(_XSI_NIL) or "").strip() in ("true", "1")


def _text(element: etree._Element) -> str:
    # A field is a simple value; should one arrive with child elements anyway,
    # its whole text content is the most faithful string we can give.
    if len(element):
        return "".join(element.itertext())
    return element.text or ""


# A QName: an optional prefix, then a local name; neither holds a colon or a space.
_QNAME = re.compile(r"(?:([^\s:]*):)?([^\s:]+)")


def _object_type(sobject: etree._Element, number: int) -> str:
    raw = sobject.get(_XSI_TYPE)
    if raw is None or not raw.strip():
        return ""
    match = _QNAME.fullmatch(raw.strip())
    if match is None:
        raise SoapError(f"notification {number} has an sObject xsi:type that is not a QName")
    prefix, local = match.groups()
    # xsi:type is a QName: its prefix means whatever the element's in-scope
    # declarations say, so an undeclared prefix is an error, not a guess.
    if prefix is not None and prefix not in sobject.nsmap:
        raise SoapError(
            f"notification {number} has an sObject xsi:type whose prefix '{prefix}' is not declared"
        )
    return local


_ID = f"{{{OUTBOUND_NS}}}Id"
_NOTIFICATION = f"{{{OUTBOUND_NS}}}Notification"
_HEADERS = {
    f"{{{OUTBOUND_NS}}}{local}": local
    for local in ("OrganizationId", "ActionId", "SessionId", "EnterpriseUrl", "PartnerUrl")
}
_SOBJECT = f"{{{OUTBOUND_NS}}}sObject"
_NIL_TRUE = ("true", "1")


# Encodings that write every ASCII character as its ASCII byte (lxml's names, lower case).
_ASCII_COMPATIBLE = frozenset(
    ["utf-8", "utf8", "us-ascii", "ascii", "windows-1252", "cp1252"]
    + [f"iso-8859-{n}" for n in range(1, 16)]
)


def _may_hold_nil(body: bytes, root: etree._Element, headers: Iterable[etree._Element]) -> bool:
    """Whether a field of the document can carry an xsi:nil attribute.

    An attribute's name cannot be written with character references, so in an
    ASCII-compatible encoding every xsi:nil attribute spells "nil" in the bytes. When
    the headers' own (Salesforce sends `<SessionId xsi:nil="true"/>`) account for
    every "nil" of the body, no field has one, and the ~1,000 fields of a
    100-notification message need not each be asked (a fifth of the field loop's
    time). UTF-16 and UTF-32 write ASCII with NUL bytes, and lxml reports an
    undeclared one as UTF-8: any NUL byte means asking."""
    encoding = (root.getroottree().docinfo.encoding or "").lower()
    if encoding not in _ASCII_COMPATIBLE or b"\x00" in body:
        return True
    in_headers = sum(1 for element in headers if element.get(_XSI_NIL) is not None)
    return body.count(b"nil") > in_headers


def _notification(element: etree._Element, number: int, may_hold_nil: bool = True) -> Notification:
    # One pass over the children: a 100-notification message has ~1,000 fields, and
    # this loop is most of the endpoint's parsing time (bench/ingest.py (b)).
    id_element = sobject = None
    for child in element:
        tag = child.tag  # comments and PIs have a non-string tag: they match nothing
        if tag == _ID:
            if id_element is not None:
                raise SoapError(f"notification {number} has more than one Id")
            id_element = child
        elif tag == _SOBJECT:
            if sobject is not None:
                raise SoapError(f"notification {number} has more than one sObject")
            sobject = child
    notification_id = "" if id_element is None else _text(id_element).strip()
    if not notification_id:
        raise SoapError(f"notification {number} has no Id")

    fields: dict[str, str | None] = {}
    object_type = ""
    if sobject is not None:
        # A record deleted before delivery arrives with an empty sObject.
        object_type = _object_type(sobject, number)
        for field in sobject:
            tag = field.tag
            if not isinstance(tag, str):
                continue
            name = tag[tag.index("}") + 1 :] if tag[0] == "{" else tag
            if name in fields:
                raise SoapError(f"notification {number} has field {name} more than once")
            nil = field.get(_XSI_NIL) if may_hold_nil else None
            if nil is not None and nil.strip() in _NIL_TRUE:
                fields[name] = None
            elif len(field):
                fields[name] = "".join(field.itertext())
            else:
                fields[name] = field.text or ""

    record_id = (fields.get("Id") or "").strip() or None
    return Notification(
        notification_id=notification_id,
        object_type=object_type,
        record_id=record_id,
        fields=fields,
    )


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """Parse a Salesforce Outbound Message; raise SoapError for any bad input."""
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if not isinstance(body, bytes):
        raise TypeError("parse_outbound_message expects the raw request body as bytes")
    if not body.strip():
        raise SoapError("body is empty")
    _refuse_doctype_marker(body)
    root = _parse_document(body)

    if not isinstance(root.tag, str):
        raise SoapError("body is not XML: no root element")
    if root.tag == f"{{{_SOAP12_NS}}}Envelope":
        raise SoapError("message is SOAP 1.2; a SOAP 1.1 Envelope is expected")
    if not _is(root, SOAPENV_NS, "Envelope"):
        raise SoapError(f"root element is {_describe(root.tag)}, not a SOAP 1.1 Envelope")

    bodies = [child for child in _elements(root) if _is(child, SOAPENV_NS, "Body")]
    if not bodies:
        raise SoapError("SOAP Envelope has no Body")
    if len(bodies) > 1:
        raise SoapError("SOAP Envelope has more than one Body")

    wrappers = [child for child in _elements(bodies[0]) if _is(child, OUTBOUND_NS, "notifications")]
    if not wrappers:
        raise SoapError("no notifications element in the SOAP body")
    if len(wrappers) > 1:
        raise SoapError("SOAP body has more than one notifications element")
    wrapper = wrappers[0]

    # One pass over the wrapper's children: the headers, then up to 100 notifications.
    headers: dict[str, etree._Element] = {}
    elements = []
    for child in wrapper:
        tag = child.tag
        if tag == _NOTIFICATION:
            elements.append(child)
        elif tag in _HEADERS:
            if tag in headers:
                # Two values for the same header would let the org check read one and
                # the rest of the system another.
                raise SoapError(f"notifications element has more than one {_HEADERS[tag]}")
            headers[tag] = child

    def header(local: str) -> str:
        element = headers.get(f"{{{OUTBOUND_NS}}}{local}")
        if element is None or _is_nil(element):
            return ""
        return _text(element).strip()

    organization_id = header("OrganizationId")
    if not organization_id:
        raise SoapError("message has no OrganizationId")
    action_id = header("ActionId")
    has_session_id = bool(header("SessionId"))
    enterprise_url = header("EnterpriseUrl")
    partner_url = header("PartnerUrl")

    if not elements:
        raise SoapError("message has no Notification elements")
    if len(elements) > MAX_NOTIFICATIONS:
        raise SoapError(
            f"message has {len(elements)} notifications; at most {MAX_NOTIFICATIONS} are allowed"
        )

    may_hold_nil = _may_hold_nil(body, root, headers.values())
    return OutboundMessage(
        organization_id=organization_id,
        action_id=action_id,
        has_session_id=has_session_id,
        enterprise_url=enterprise_url,
        partner_url=partner_url,
        notifications=tuple(
            _notification(element, number, may_hold_nil)
            for number, element in enumerate(elements, start=1)
        ),
    )


def _envelope() -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{SOAPENV_NS}}}Envelope", nsmap={"soapenv": SOAPENV_NS})
    body = etree.SubElement(envelope, f"{{{SOAPENV_NS}}}Body")
    return envelope, body


def _serialize(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def build_ack(ack: bool = True) -> bytes:
    """The notificationsResponse Salesforce needs to mark a whole message delivered."""
    envelope, body = _envelope()
    response = etree.SubElement(
        body, f"{{{OUTBOUND_NS}}}notificationsResponse", nsmap={None: OUTBOUND_NS}
    )
    etree.SubElement(response, f"{{{OUTBOUND_NS}}}Ack").text = "true" if ack else "false"
    return _serialize(envelope)


def build_fault(*, code: str, message: str) -> bytes:
    """A SOAP 1.1 Fault; code is "Client" (bad input) or "Server" (our failure)."""
    if code not in ("Client", "Server"):
        raise ValueError(f"fault code must be 'Client' or 'Server', not {code!r}")
    envelope, body = _envelope()
    fault = etree.SubElement(body, f"{{{SOAPENV_NS}}}Fault")
    # SOAP 1.1 Fault children are unqualified; faultcode is a QName whose
    # prefix is declared on the Envelope.
    etree.SubElement(fault, "faultcode").text = f"soapenv:{code}"
    # Reasons may quote input; characters XML cannot carry would make lxml
    # refuse to build the very Fault that reports them.
    etree.SubElement(fault, "faultstring").text = _NOT_XML_CHAR.sub("\ufffd", message)
    return _serialize(envelope)


def same_organization(a: str, b: str) -> bool:
    """Compare Salesforce organization ids on their case-sensitive 15-character prefix."""
    a, b = a.strip(), b.strip()
    # Ids are 15 or 18 characters; anything else (notably "") must never match,
    # or an unset configured id would accept every organization.
    if len(a) not in (15, 18) or len(b) not in (15, 18):
        return False
    return a[:15] == b[:15]


_ID_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def record_id_forms(value: str) -> list[str]:
    """A Salesforce id in both its forms: the case-sensitive 15 characters an admin
    copies from a page, and the 18 the API sends (the same plus a checksum of where
    the capitals are); anything else as it is."""
    text = value.strip()
    if len(text) == 18 and text.isalnum():
        suffix = text[15:].upper()
        if all(char in _ID_SUFFIX_ALPHABET for char in suffix):
            # The suffix says where the capitals are: an id whose case was lost (typed
            # in lower case, through a case-insensitive tool) is found all the same.
            restored = "".join(
                char.upper()
                if _ID_SUFFIX_ALPHABET.index(suffix[position // 5]) >> (position % 5) & 1
                else char.lower()
                for position, char in enumerate(text[:15])
            )
            return list(dict.fromkeys([restored + suffix, restored, text, text[:15]]))
        return [text, text[:15]]
    if len(text) == 15 and text.isalnum():
        suffix = "".join(
            _ID_SUFFIX_ALPHABET[
                sum(1 << bit for bit, char in enumerate(text[start : start + 5]) if char.isupper())
            ]
            for start in (0, 5, 10)
        )
        return [text + suffix, text]
    return [text]
