"""Errors the contact services raise; callers turn them into task errors or HTTP 400s."""


class ContactError(ValueError):
    """A contact cannot be saved as asked; `field` names the offending field, if one."""

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


class DuplicateContactError(ContactError):
    """Another contact of the directory already has this email / external data reference."""
