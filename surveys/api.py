"""REST API of surveys and responses (`/api/v1/surveys/`, `/api/v1/responses/`)."""

from collections.abc import Iterable
from typing import Any

from django.db.models import ProtectedError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response as ApiResponse

from core.params import api_id_param
from surveys.deletion import users_of_surveys
from surveys.exceptions import SurveyError
from surveys.models import Survey
from surveys.selectors import response_list, survey_list_visible
from surveys.serializers import ResponseSerializer, SurveySerializer
from surveys.services import (
    survey_activate,
    survey_can_edit,
    survey_can_share,
    survey_can_view,
    survey_create,
    survey_deactivate,
    survey_update,
)

CANNOT_VIEW = "you do not have access to this survey"
CANNOT_EDIT = "only the survey's owner or a collaborator with edit permission can change it"
CANNOT_SHARE = "only the survey's owner can change its collaborators or delete it"


def _validation_error(error: SurveyError) -> ValidationError:
    return ValidationError({error.field or "non_field_errors": [error.message]})


def _collaborator_set(items: Iterable[Any]) -> set[tuple]:
    return {
        (item["user"].pk, item["can_view"], item["can_edit"], item["can_distribute"])
        for item in items
    }


class SurveyViewSet(viewsets.ModelViewSet):
    """Surveys the user can see; editing needs the owner or an edit collaborator.

    A survey the user cannot see answers 403, not 404, on every detail URL, so a
    client sees the same refusal whether it reads or writes.
    """

    serializer_class = SurveySerializer
    # core/api_schema.py: reading a survey you may not see is a 403 (writes have one
    # anyway); a survey in use is not deleted; one without questions is not activated.
    error_statuses = {"retrieve": {403}, "destroy": {409}, "activate": {400}}

    def get_queryset(self):
        if self.action == "list":
            queryset = survey_list_visible(user=self.request.user)
        else:
            queryset = Survey.objects.select_related("owner")
        return queryset.prefetch_related("questions", "collaborators__user").order_by("-id")

    def get_object(self) -> Survey:
        survey = super().get_object()
        user = self.request.user
        if not survey_can_view(survey=survey, user=user):
            raise PermissionDenied(CANNOT_VIEW)
        if self.action in {"update", "partial_update", "activate", "deactivate"}:
            if not survey_can_edit(survey=survey, user=user):
                raise PermissionDenied(CANNOT_EDIT)
        elif self.action == "destroy" and not survey_can_share(survey=survey, user=user):
            raise PermissionDenied(CANNOT_SHARE)
        return survey

    def perform_create(self, serializer) -> None:
        try:
            serializer.instance = survey_create(
                owner=self.request.user, **serializer.validated_data
            )
        except SurveyError as error:
            raise _validation_error(error) from error

    def perform_update(self, serializer) -> None:
        survey: Survey = serializer.instance
        data = serializer.validated_data
        # Sending back unchanged collaborators (a GET, edited, PUT back) is not an
        # attempt to share, so only a real change needs the owner.
        if "collaborators" in data and not survey_can_share(survey=survey, user=self.request.user):
            current = [
                {
                    "user": collaborator.user,
                    "can_view": collaborator.can_view,
                    "can_edit": collaborator.can_edit,
                    "can_distribute": collaborator.can_distribute,
                }
                for collaborator in survey.collaborators.all()
            ]
            if _collaborator_set(data["collaborators"]) != _collaborator_set(current):
                raise PermissionDenied(CANNOT_SHARE)
        try:
            serializer.instance = survey_update(survey=survey, data=data)
        except SurveyError as error:
            raise _validation_error(error) from error

    def destroy(self, request, *args, **kwargs):
        survey = self.get_object()
        # In use: 409 naming what uses it, as for a mailing list (contacts/api.py).
        users = users_of_surveys([survey.pk])
        try:
            if not users:
                survey.delete()
                return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        except ProtectedError:
            users = ["the survey has distributions; deactivate it instead"]
        return ApiResponse(
            {"detail": f"cannot delete: {'; '.join(users)}"}, status=status.HTTP_409_CONFLICT
        )

    def _status_change(self, change) -> ApiResponse:
        survey = self.get_object()
        try:
            change(survey=survey)
        except SurveyError as error:
            raise _validation_error(error) from error
        return ApiResponse(self.get_serializer(survey).data, status=status.HTTP_200_OK)

    @extend_schema(request=None, responses={200: SurveySerializer})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None, format=None):  # format: DRF's .json routes
        return self._status_change(survey_activate)

    @extend_schema(request=None, responses={200: SurveySerializer})
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None, format=None):  # format: DRF's .json routes
        return self._status_change(survey_deactivate)


class ResponseViewSet(viewsets.ReadOnlyModelViewSet):
    """Responses to the surveys the user can see, newest first."""

    serializer_class = ResponseSerializer
    error_statuses = {"list": {400}}  # core/api_schema.py: the filter is checked

    @extend_schema(
        parameters=[
            OpenApiParameter("survey", int, description="Only the responses to this survey (id).")
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        survey_id = api_id_param(self.request.query_params, "survey")
        return response_list(user=self.request.user, survey_id=survey_id)
