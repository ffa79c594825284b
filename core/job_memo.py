"""Memory for the length of one background job: settings-like rows read once per job.

A run job executes up to XMFLOWS_RUNS_PER_JOB runs of usually one workflow, and each
run used to read the same mailing list, survey, owner, verified sender and frequency
rules again, through the ORM, twice (task time and send time): most of a run's CPU
(bench/pipeline.py). Inside `job_memo()`, `memoized(key, load)` calls `load` once per
key and hands the same value to the rest of the job; outside it, it just calls `load`
(web requests, the shell, previews always read fresh).

Only configuration belongs here: objects an admin edits (a list, a rule, a survey),
for which a job that started before the edit may finish with what it read at its
start, as a request would. Never per-person state (a contact, opt-outs, counts of
sends): those are read fresh at the moment they decide something.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_memo: ContextVar[dict[Hashable, object] | None] = ContextVar("xmflows_job_memo", default=None)


@contextmanager
def job_memo() -> Iterator[None]:
    """Remember memoized values until the block ends; nested blocks share the outer one."""
    if _memo.get() is not None:
        yield
        return
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def memoized(key: Hashable, load: Callable[[], T]) -> T:
    memo = _memo.get()
    if memo is None:
        return load()
    if key not in memo:
        memo[key] = load()
    return memo[key]  # type: ignore[return-value]


def remember(key: Hashable, value: object) -> None:
    """Store `value` under `key` for the rest of the job (nothing outside a job)."""
    memo = _memo.get()
    if memo is not None:
        memo[key] = value


def recall(key: Hashable) -> object | None:
    memo = _memo.get()
    return None if memo is None else memo.get(key)
