"""Errors the survey services raise, carrying messages meant for the respondent or the admin."""


class AnswerError(Exception):
    """Answers that cannot be recorded.

    `errors` maps a question id (str) to the message shown next to that question;
    "__all__" holds a message about the whole submission. `code` lets a caller that
    must tell the cases apart (a page choosing its status code, an SMS conversation
    choosing its reply) do so without parsing messages: "invalid", "completed",
    "expired" or "closed".
    """

    def __init__(self, errors: dict[str, str], *, code: str = "invalid") -> None:
        self.errors = errors
        self.code = code
        super().__init__(
            "; ".join(
                message if key == "__all__" else f"question {key}: {message}"
                for key, message in errors.items()
            )
        )


class SurveyError(ValueError):
    """A change to a survey that its current state does not allow.

    `field` names the input the message is about ("status", "questions"), so the
    API can report it per field.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)
