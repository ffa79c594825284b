"""What stops a mailing list from being deleted, beyond foreign keys (core/deletion.py):
a workflow task names its list by id inside its config."""

from core.deletion import DeletionGuards

_mailing_lists = DeletionGuards()
register_guard = _mailing_lists.register
users_of_mailing_lists = _mailing_lists.users
