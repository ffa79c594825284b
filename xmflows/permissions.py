"""Who may do what with a workflow: everyone signed in reads and copies, the owner edits."""

from rest_framework import permissions

from xmflows.services import NotOwnerError


class OwnerEditsOthersRead(permissions.BasePermission):
    message = NotOwnerError.message

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS or getattr(view, "action", "") == "copy":
            return True
        owner_id = getattr(obj, "owner_id", None)
        return owner_id == request.user.pk
