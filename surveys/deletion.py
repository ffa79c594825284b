"""What stops a survey from being deleted, beyond foreign keys.

A workflow task names the survey it distributes by id inside its JSON config, which
no foreign key protects: deleting the survey would fail every later run of the
workflow, and its export could no longer be imported. xmflows registers a guard
here (in its AppConfig.ready); the API and the admin refuse a deletion any guard
objects to, naming what still uses the survey.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# A guard gets survey ids and returns one sentence per thing that uses them.
Guard = Callable[[set[int]], list[str]]
_guards: list[Guard] = []


def register_guard(guard: Guard) -> None:
    if guard not in _guards:
        _guards.append(guard)


def users_of_surveys(ids: Iterable[int]) -> list[str]:
    wanted = {int(pk) for pk in ids}
    if not wanted:
        return []
    return [reason for guard in _guards for reason in guard(wanted)]
