"""What stops a survey from being deleted, beyond foreign keys (core/deletion.py): a
workflow task names the survey it distributes by id inside its config, so deleting
it would fail every later run and break the workflow's export."""

from core.deletion import DeletionGuards

_surveys = DeletionGuards()
register_guard = _surveys.register
users_of_surveys = _surveys.users
