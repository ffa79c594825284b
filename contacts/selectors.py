"""Reads of the contact directory: matching by deduplication rules, filtered lists."""

from collections.abc import Mapping

from django.db import connection
from django.db.models import Count, Prefetch, QuerySet, Value
from django.db.models.functions import Lower

from contacts.models import Contact, Directory, MailingList, Transaction
from contacts.normalize import MATCH_KEYS


def match_keys(directory: Directory) -> list[str]:
    """The directory's rules in order, then any other unique key.

    The database never holds two contacts of a directory with the same email or the
    same external data reference (whatever the rules say), so a key left out of the
    rules is still consulted last: creating a contact it identifies would fail anyway.
    """
    rules = [rule for rule in (directory.match_rules or []) if rule in MATCH_KEYS]
    return rules + [key for key in MATCH_KEYS if key not in rules]


def contacts_with_key(directory: Directory, key: str, value: str) -> QuerySet[Contact]:
    # Lower() on both sides, so matching folds case exactly as the unique index does
    # (SQLite's lower() folds ASCII only; PostgreSQL's folds more) and can use it.
    return (
        Contact.objects.filter(directory=directory)
        .exclude(**{key: ""})
        .alias(match_value=Lower(key))
        .filter(match_value=Lower(Value(value)))
    )


def contact_match(
    *, directory: Directory, values: Mapping[str, str], lock: bool = False
) -> Contact | None:
    """The contact `values` identify in `directory` by its ordered, case-insensitive
    rules; by phone only when no email and no external data reference is given."""
    keys = [key for key in match_keys(directory) if values.get(key)]
    if keys:
        candidates = _candidates(directory, keys, values, lock=lock)
        for key in keys:
            for contact in candidates:
                if getattr(contact, f"matches_{key}"):
                    return contact
    phone = values.get("phone") or ""
    if phone and not any(values.get(key) for key in MATCH_KEYS):
        # An SMS-only contact has nothing else to be recognised by. Phone numbers are
        # not unique (families share one), so this is a best effort: the oldest wins.
        queryset = Contact.objects.filter(directory=directory, phone=phone).order_by("pk")
        if not lock:
            return queryset.first()
        found = queryset.select_for_update().first()
        if found is None:
            # Nothing to lock yet, and no unique index on phones to make a second
            # insert fail: two runs for one new number would each create a contact.
            # The directory's row makes them take turns (on PostgreSQL; SQLite's
            # IMMEDIATE transaction already does), and the second then finds the
            # first's. NO KEY UPDATE: inserting other contacts is not held up.
            list(
                Directory.objects.select_for_update(no_key=True)
                .filter(pk=directory.pk)
                .values_list("pk", flat=True)
            )
            found = queryset.select_for_update().first()
        return found
    return None


def _candidates(
    directory: Directory, keys: list[str], values: Mapping[str, str], *, lock: bool
) -> list[Contact]:
    """The contacts any of `keys` identifies, oldest first, each flagged with the keys
    it matches (`matches_email` …), in one query.

    Each key is unique in a directory, so at most one contact per key comes back. The
    database compares, folding case exactly as its unique indexes do. Plain SQL: every
    run that saves a contact pays for this look-up; an OR of the rules would scan the
    whole directory (neither database uses the partial indexes through it), and the
    ORM spelling of the union with flags cost several times the query itself.
    """
    meta = Contact._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    directory_column = quote(meta.get_field("directory").column)
    pk = quote(meta.pk.column)
    tests = {}
    for key in keys:
        column = quote(meta.get_field(key).column)
        # Written as the unique indexes are (partial on non-empty, on lower()), so each
        # branch of the union is one index search on either database.
        tests[key] = f"NOT ({column} = '') AND lower({column}) = lower(%s)"
    # Identifiers from the model's metadata; every value is a parameter.
    flags = ", ".join(f"({tests[key]}) AS matches_{key}" for key in keys)
    branches = " UNION ALL ".join(
        f"SELECT {pk} FROM {table} WHERE {directory_column} = %s AND {tests[key]}"  # noqa: S608
        for key in keys
    )
    sql = f"SELECT *, {flags} FROM {table} WHERE {pk} IN ({branches}) ORDER BY {pk}"  # noqa: S608
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    params = [values[key] for key in keys]
    for key in keys:
        params += [directory.pk, values[key]]
    return list(Contact.objects.raw(sql, params))


def contact_find(
    *, directory: Directory, email: str = "", external_data_reference: str = ""
) -> Contact | None:
    """The existing contact with this email / external data reference, or None."""
    return contact_match(
        directory=directory,
        values={"email": email or "", "external_data_reference": external_data_reference or ""},
    )


def contact_list(*, params: Mapping[str, str] | None = None) -> QuerySet[Contact]:
    """Contacts with what the API shows, filtered by `email`, `mailing_list`, `directory`,
    `external_data_reference` and `phone` (already validated by the caller)."""
    params = params or {}
    queryset = Contact.objects.select_related("directory").prefetch_related(
        Prefetch("transactions", queryset=Transaction.objects.order_by("-created_at", "-id")),
        Prefetch("mailing_lists", queryset=MailingList.objects.only("id")),
    )
    if params.get("email"):
        queryset = queryset.alias(email_lower=Lower("email")).filter(
            email_lower=Lower(Value(params["email"].strip()))
        )
    if params.get("mailing_list"):
        queryset = queryset.filter(mailing_lists=params["mailing_list"])
    if params.get("directory"):
        queryset = queryset.filter(directory_id=params["directory"])
    if params.get("external_data_reference"):
        queryset = queryset.alias(extref_lower=Lower("external_data_reference")).filter(
            extref_lower=Lower(Value(params["external_data_reference"].strip()))
        )
    if params.get("phone"):
        queryset = queryset.filter(phone=params["phone"])
    return queryset.order_by("-id")


def mailing_list_list() -> QuerySet[MailingList]:
    return MailingList.objects.select_related("directory").annotate(
        contact_count=Count("contacts", distinct=True)
    )


def directory_list() -> QuerySet[Directory]:
    return Directory.objects.annotate(contact_count=Count("contacts", distinct=True))


def embedded_data_names(*, directory_id: int | None = None, limit: int = 200) -> list[str]:
    """Embedded data field names seen on recent contacts (for the dynamic text menu)."""
    queryset = Contact.objects.exclude(embedded_data={})
    if directory_id is not None:
        queryset = queryset.filter(directory_id=directory_id)
    names: dict[str, None] = {}
    for data in queryset.order_by("-updated_at").values_list("embedded_data", flat=True)[:500]:
        if isinstance(data, dict):
            names.update(dict.fromkeys(data))
        if len(names) >= limit:
            break
    return sorted(names)[:limit]
