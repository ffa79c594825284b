"""Guards against deleting what another app names by id inside JSON (a workflow task's
config names its mailing list and its survey), which no foreign key protects.

The owning app keeps one `DeletionGuards` per kind of object (contacts/deletion.py,
surveys/deletion.py); the app that refers to the objects registers a guard (xmflows
does, in its AppConfig.ready); the API and the admin refuse a deletion any guard
objects to, naming what still uses the objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# A guard gets object ids and returns one sentence per thing that uses them.
Guard = Callable[[set[int]], list[str]]


class DeletionGuards:
    def __init__(self) -> None:
        self._guards: list[Guard] = []

    def register(self, guard: Guard) -> None:
        if guard not in self._guards:
            self._guards.append(guard)

    def users(self, ids: Iterable[int]) -> list[str]:
        wanted = {int(pk) for pk in ids}
        if not wanted:
            return []
        return [reason for guard in self._guards for reason in guard(wanted)]
