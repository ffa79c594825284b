"""REST API of the contact directory: `/api/v1/directories/`, `/mailing-lists/`, `/contacts/`."""

from django.db.models import ProtectedError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from contacts.deletion import users_of_mailing_lists
from contacts.models import Directory
from contacts.normalize import normalize_phone
from contacts.permissions import StaffEditsOthersRead
from contacts.selectors import contact_list, directory_list, mailing_list_list
from contacts.serializers import ContactSerializer, DirectorySerializer, MailingListSerializer
from core.params import api_id_param


class _ProtectedDeleteMixin:
    protected_message = "it is still in use"
    error_statuses = {"destroy": {409}}  # core/api_schema.py

    def destroy(self, request, *args, **kwargs):
        try:
            return super().destroy(request, *args, **kwargs)
        except ProtectedError:
            return Response(
                {"detail": f"cannot delete: {self.protected_message}"},
                status=status.HTTP_409_CONFLICT,
            )


class DirectoryViewSet(_ProtectedDeleteMixin, viewsets.ModelViewSet):
    serializer_class = DirectorySerializer
    permission_classes = [StaffEditsOthersRead]
    protected_message = "the directory still has contacts or mailing lists"

    def get_queryset(self):
        return directory_list().order_by("name", "id")


class MailingListViewSet(viewsets.ModelViewSet):
    serializer_class = MailingListSerializer
    permission_classes = [StaffEditsOthersRead]
    # core/api_schema.py: the filter is checked; a mailing list in use is not deleted.
    error_statuses = {"list": {400}, "destroy": {409}}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "directory", int, description="Only the mailing lists of this directory (id)."
            )
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        queryset = mailing_list_list()
        directory = api_id_param(self.request.query_params, "directory")
        if directory is not None:
            queryset = queryset.filter(directory_id=directory)
        return queryset.order_by("name", "id")

    def destroy(self, request, *args, **kwargs):
        users = users_of_mailing_lists([self.get_object().pk])
        if users:
            return Response(
                {"detail": f"cannot delete: {'; '.join(users)}"}, status=status.HTTP_409_CONFLICT
            )
        return super().destroy(request, *args, **kwargs)


class ContactViewSet(viewsets.ModelViewSet):
    serializer_class = ContactSerializer
    permission_classes = [StaffEditsOthersRead]
    error_statuses = {"list": {400}}  # core/api_schema.py: the id filters are checked

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "email", str, description="Only the contacts with this exact address, any case."
            ),
            OpenApiParameter(
                "mailing_list", int, description="Only the contacts on this mailing list (id)."
            ),
            OpenApiParameter(
                "directory", int, description="Only the contacts of this directory (id)."
            ),
            OpenApiParameter(
                "external_data_reference",
                str,
                description="Only the contacts with this external data reference, any case.",
            ),
            OpenApiParameter(
                "phone",
                str,
                description="Only the contacts with this phone number, in E.164 "
                "(e.g. +14155550100); other spellings are read as the directory reads them.",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        directory = api_id_param(params, "directory")
        filters = {
            "email": params.get("email", ""),
            "external_data_reference": params.get("external_data_reference", ""),
            "phone": _phone_filter(params.get("phone", ""), directory_id=directory),
            "mailing_list": api_id_param(params, "mailing_list"),
            "directory": directory,
        }
        return contact_list(params=filters)


def _phone_filter(raw: str, *, directory_id: int | None) -> str:
    """The `phone` filter as contacts store it (E.164), so that "+1 415 555 0100", an
    unencoded "+14155550100" (whose "+" a query string turns into a space) and, with
    `directory`, a national "(415) 555-0100" find the contact instead of nothing."""
    text = raw.strip()
    if not text:
        return ""
    if raw[0].isspace() and text[0].isdigit():
        text = f"+{text}"
    # An international number says its country; a national one is read in the
    # directory's, and without a directory it is compared as typed.
    country = "US"
    if not text.startswith("+"):
        directories = Directory.objects.filter(pk=directory_id)
        country = directories.values_list("default_country", flat=True).first()
        if country is None:
            return text
    try:
        return normalize_phone(text, country)
    except ValueError as error:
        raise ValidationError(
            {"phone": [f"{error}; give it in E.164, e.g. +14155550100"]}
        ) from error
