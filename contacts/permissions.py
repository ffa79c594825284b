"""API permissions of the contact directory."""

from rest_framework.permissions import SAFE_METHODS, BasePermission


class StaffEditsOthersRead(BasePermission):
    """Any signed-in user reads the directory; only staff change it (contacts hold
    personal data, and workflows depend on directories and mailing lists)."""

    message = "only staff members can change the contact directory"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or bool(user.is_staff)
