"""The interface every task type implements, and what the engine passes to it."""

from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.contrib.auth import get_user_model
from rest_framework import serializers

from core.job_memo import memoized
from core.piped_text import RenderContext


class TaskError(Exception):
    """An expected task failure; its message becomes the task's error in the run.

    `temporary=True` means the same task may succeed later (provider down, database
    busy): the engine retries it with back-off instead of failing the run for good.
    """

    def __init__(self, message: str, *, temporary: bool = False, output: dict | None = None):
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.output = output or {}


@dataclass
class TaskContext:
    run_id: int
    workflow_id: int
    owner_id: int
    object_type: str
    notification_id: str
    record_id: str | None
    organization_id: str
    fields: dict[str, str | None]
    # What earlier tasks of the same run left for later ones (contact id, transaction id).
    state: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    # The 1-based number of the task being previewed (dry runs name it: "task 1").
    task_number: int = 0

    def event_facts(self) -> dict[str, str | None]:
        return {
            "ObjectType": self.object_type,
            "RecordId": self.record_id,
            "NotificationId": self.notification_id,
            "OrganizationId": self.organization_id,
        }

    def render_context(self, **overrides: Any) -> RenderContext:
        return RenderContext(event_fields=self.fields, event_facts=self.event_facts(), **overrides)

    def owner(self):
        """The workflow's owner (None if deleted), read once per job (core.job_memo)."""
        users = get_user_model().objects
        return memoized(("user", self.owner_id), users.filter(pk=self.owner_id).first)

    def check_owner_may_write_directory(self) -> None:
        """A task that saves contacts changes the directory on the workflow owner's
        behalf, and the directory is changed by staff only (contacts/permissions.py).
        Checked when the task runs (and in its preview): a copy made by someone who is
        not staff, or an owner no longer staff, fails here with the reason."""
        refusal = directory_write_refusal(self.owner(), self.owner_id)
        if refusal:
            raise TaskError(refusal)


def directory_write_refusal(owner, owner_id: int | None = None) -> str:
    """Why a workflow owned by `owner` may not run a task that saves contacts ("" when
    it may): the task's error, and the notice the workflow's pages show."""
    if owner is not None and owner.is_staff:
        return ""
    who = owner.get_username() if owner is not None else f"user {owner_id}"
    return (
        f"the workflow's owner {who} may not change the contact directory: only "
        "staff members can (a staff member can copy the workflow and own the copy)"
    )


@dataclass
class TaskOutcome:
    output: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # The email of the contact the task worked on, so reports can find the run by it.
    email: str = ""


class TaskType:
    """Subclass, set `key`, `label` and `config_serializer`, implement `run`, decorate
    with `@register`. `run` executes inside one database transaction together with the
    recording of its result, so it must do database work only; side effects outside
    the database (sending) are queued by it as jobs that run after commit."""

    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    # Saves contacts into the directory: runs only for a workflow owned by staff
    # (TaskContext.check_owner_may_write_directory, which `run` and `preview` call).
    writes_directory: ClassVar[bool] = False
    config_serializer: ClassVar[type[serializers.Serializer]] = serializers.Serializer

    def __init__(self, config: dict[str, Any]):
        self.config = config

    @classmethod
    def validate_config(cls, config: dict[str, Any], *, owner=None) -> dict[str, Any]:
        serializer = cls.config_serializer(data=config, context={"owner": owner})
        serializer.is_valid(raise_exception=True)
        # `.data` is the JSON-ready form of the validated config, as it is stored.
        return dict(serializer.data)

    def run(self, ctx: TaskContext) -> TaskOutcome:
        raise NotImplementedError

    def preview(self, ctx: TaskContext) -> dict[str, Any]:
        """What `run` would do, without writing or sending anything (dry run)."""
        return {"note": "this task type has no preview"}
