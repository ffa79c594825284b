"""Errors the contact services raise; callers turn them into task errors or HTTP 400s."""


class ContactError(ValueError):
    """A contact cannot be saved as asked.

    `field` names the (first) offending field, if one; `errors` holds every problem
    found in one pass, by field ("" for the contact as a whole), so a caller can
    report them all at once instead of one per attempt. `message` says them all.
    """

    def __init__(self, message: str, *, field: str = "", errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = dict(errors) if errors else {field: message}

    @classmethod
    def from_errors(cls, errors: dict[str, str]) -> "ContactError":
        field = next(iter(errors))
        return cls("; ".join(errors.values()), field=field, errors=errors)


class DuplicateContactError(ContactError):
    """Another contact of the directory already has this email / external data reference."""
