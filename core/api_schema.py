"""The REST API's OpenAPI schema: drf-spectacular's AutoSchema, plus the error answers.

drf-spectacular documents only the success of an operation. Integrators generate
clients from the schema, and a client that does not know an answer's shape cannot
read it, so every operation also lists the errors it can give, in the two shapes DRF
answers with: `{"detail": "..."}` and, for invalid input, messages per field.

Most errors follow from what an operation is, so they are worked out here, once:
401 wherever credentials are checked; 400 where there is a body to validate; 403 for
writes (a permission refusal, or with the browser session no CSRF token) and for
staff-only viewsets; 404 for a path with an id, and for a list (a page past the last).
What only the view's code knows a viewset declares, per action, in `error_statuses`:
`{"list": {400}, "destroy": {409}}` (a filter that can be refused, an object in use).
"""

from collections.abc import Iterable

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework.permissions import SAFE_METHODS, IsAdminUser

ERROR_DETAIL = "ErrorDetail"
VALIDATION_ERROR = "ValidationError"

_SCHEMAS = {
    ERROR_DETAIL: {
        "type": "object",
        "description": "An error as a sentence.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    VALIDATION_ERROR: {
        "type": "object",
        "description": (
            "The messages of each invalid field (or query parameter) under its name; "
            "`non_field_errors` holds those about the object as a whole. A nested "
            "object's errors are an object of the same shape; a list's are a list "
            "with one such object per item (a workflow's `tasks`), or an object keyed "
            "by the positions of the invalid items."
        ),
        "additionalProperties": {
            "anyOf": [
                {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "object", "additionalProperties": True},
                        ]
                    },
                },
                {"type": "object", "additionalProperties": True},
            ]
        },
        "example": {"name": ["This field is required."]},
    },
}

_DESCRIPTIONS = {
    400: "Invalid input: the messages of each invalid field under its name.",
    401: "Not signed in: no credentials, or a token that is not valid.",
    403: "Signed in, but not allowed: the message says why.",
    409: "The object's current state does not allow this: the message says why.",
}


class _ErrorSchema:
    """The identity drf-spectacular's registry keeps for each error component."""

    def __init__(self, name: str):
        self.name = name


_IDENTITIES = {name: _ErrorSchema(name) for name in _SCHEMAS}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, with each operation's error answers."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for status in sorted(self._error_statuses(operation)):
            # What a view documents itself with @extend_schema(responses=...) wins.
            responses.setdefault(str(status), self._error_response(status, operation))
        return operation

    def _error_statuses(self, operation: dict) -> set[int]:
        view = self.view
        permissions = list(getattr(view, "permission_classes", ()))
        statuses: set[int] = set()
        if getattr(view, "authentication_classes", ()):
            # A token that is not valid is refused even where no permission is needed.
            statuses.add(401)
        if "requestBody" in operation:
            statuses.add(400)
        if self.method not in SAFE_METHODS or _any_subclass(permissions, IsAdminUser):
            statuses.add(403)
        if _has_path_id(self.path) or _reads_pages(operation):
            statuses.add(404)
        action = getattr(view, "action", None)
        statuses.update(getattr(view, "error_statuses", {}).get(action, ()))
        return statuses

    def _error_response(self, status: int, operation: dict) -> dict:
        description = _DESCRIPTIONS.get(status, "An error: the message says why.")
        schema = self._error_ref(ERROR_DETAIL)
        if status == 400:
            schema = self._error_ref(VALIDATION_ERROR)
            if "requestBody" in operation:
                description += (
                    ' A body that is not valid JSON answers {"detail": "JSON parse error - ..."}.'
                )
                schema = {"oneOf": [schema, self._error_ref(ERROR_DETAIL)]}
            elif self.method == "GET":
                description = (
                    "A query parameter is not valid: its messages under its name, "
                    'e.g. {"status": ["must be one of ..."]}.'
                )
        elif status == 404:
            reasons = []
            if _has_path_id(self.path):
                reasons.append("no object with this id that you may see")
            if _reads_pages(operation):
                reasons.append('a page past the last ({"detail": "Invalid page."})')
            description = "Not found: " + ", or ".join(reasons or ["no such object"]) + "."
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def _error_ref(self, name: str) -> dict:
        component = ResolvedComponent(
            name=name,
            type=ResolvedComponent.SCHEMA,
            schema=_SCHEMAS[name],
            object=_IDENTITIES[name],
        )
        self.registry.register_on_missing(component)
        return component.ref


def _has_path_id(path: str) -> bool:
    return "{" in path


def _reads_pages(operation: dict) -> bool:
    """Whether the operation is paginated: DRF answers 404 for a page that is not one."""
    return any(
        parameter.get("in") == "query" and parameter.get("name") == "page"
        for parameter in operation.get("parameters", ())
    )


def _any_subclass(classes: Iterable[type], base: type) -> bool:
    # Composed permissions (IsA | IsB) are instances, not classes: not counted.
    return any(isinstance(cls, type) and issubclass(cls, base) for cls in classes)
