"""What stops a directory or a mailing list from being deleted, beyond foreign keys.

Other apps refer to mailing lists by id inside JSON (a workflow task's config names
its list), which no foreign key protects. They register a guard here (xmflows does,
in its AppConfig.ready); the admin and the API refuse a deletion any guard objects to,
naming what still uses the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# A guard gets mailing list ids and returns one sentence per thing that uses them.
Guard = Callable[[set[int]], list[str]]
_guards: list[Guard] = []


def register_guard(guard: Guard) -> None:
    if guard not in _guards:
        _guards.append(guard)


def users_of_mailing_lists(ids: Iterable[int]) -> list[str]:
    wanted = {int(pk) for pk in ids}
    if not wanted:
        return []
    return [reason for guard in _guards for reason in guard(wanted)]
