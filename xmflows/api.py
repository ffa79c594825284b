"""REST API of workflows, runs and deliveries (`/api/v1/`)."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.params import api_id_param, parse_id
from core.strict_serializer import StrictSerializer
from xmflows.models import Delivery, DeliveryOutcome, Run, RunStatus, TaskRun, Workflow
from xmflows.permissions import OwnerEditsOthersRead
from xmflows.selectors import runs_matching
from xmflows.serializers import DeliverySerializer, RunSerializer, WorkflowSerializer
from xmflows.services import (
    NotOwnerError,
    RetryRefused,
    run_retry,
    workflow_copy,
    workflow_delete,
    workflow_export,
)
from xmflows.soap import record_id_forms


def _date_filter(queryset, field: str, params, name: str, *, upper: bool = False):
    raw = params.get(name)
    if not raw:
        return queryset
    try:
        value = parse_datetime(raw) or parse_date(raw)
    except ValueError as error:  # well formed but impossible: 2020-13-45, 25:00
        raise ValidationError(
            {name: [f"not a valid date or date-time: {raw!r} ({error})"]}
        ) from error
    if value is None:
        raise ValidationError({name: [f"not a date or date-time: {raw!r}"]})
    lookup = "lte" if upper else "gte"
    if not hasattr(value, "hour"):
        lookup = "date__lte" if upper else "date__gte"
    return queryset.filter(**{f"{field}__{lookup}": value})


class WorkflowCopySerializer(StrictSerializer):
    """The body of a copy: an optional name (else "Copy of <name>")."""

    name = serializers.CharField(
        max_length=Workflow._meta.get_field("name").max_length,
        required=False,
        allow_blank=True,
    )


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "mine",
                bool,
                description="true (or 1): only the workflows you own. Without it, or with "
                "any other value, every workflow.",
            )
        ]
    )
)
class WorkflowViewSet(viewsets.ModelViewSet):
    serializer_class = WorkflowSerializer
    permission_classes = [IsAuthenticated, OwnerEditsOthersRead]

    def get_queryset(self):
        queryset = Workflow.objects.select_related("owner", "event").prefetch_related("tasks")
        if self.request.query_params.get("mine") in {"1", "true"}:
            queryset = queryset.filter(owner=self.request.user)
        return queryset.order_by("-id")

    def perform_destroy(self, instance: Workflow) -> None:
        try:
            workflow_delete(workflow=instance, user=self.request.user)
        except NotOwnerError as error:
            raise PermissionDenied(str(error)) from error

    @extend_schema(request=WorkflowCopySerializer, responses={201: WorkflowSerializer})
    @action(detail=True, methods=["post"])
    def copy(self, request, pk=None, format=None):  # format: DRF's .json routes
        workflow = self.get_object()
        body = WorkflowCopySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name = body.validated_data.get("name") or None
        copied = workflow_copy(workflow=workflow, user=request.user, name=name)
        return Response(WorkflowSerializer(copied).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description="The definition alone (no id, owner or event URL), importable as the "
        "body of POST /api/v1/workflows/.",
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None, format=None):  # format: DRF's .json routes
        return Response(workflow_export(workflow=self.get_object()))


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RunSerializer
    # core/api_schema.py: the filters are checked (400); only a failed run is retried.
    error_statuses = {"list": {400}, "retry": {409}}

    @extend_schema(
        parameters=[
            OpenApiParameter("workflow", int, description="Only the runs of this workflow (id)."),
            OpenApiParameter(
                "status", str, enum=RunStatus.values, description="Only the runs in this status."
            ),
            OpenApiParameter(
                "record_id",
                str,
                description="Only the runs of this Salesforce record id, 15 or 18 characters "
                "(either form finds both).",
            ),
            OpenApiParameter(
                "email",
                str,
                description="Only the runs for this email address (any case). A value "
                "without @ matches no run.",
            ),
            OpenApiParameter(
                "since",
                str,
                description="Only the runs created at or after this date (YYYY-MM-DD: from "
                "its start) or ISO 8601 date-time.",
            ),
            OpenApiParameter(
                "until",
                str,
                description="Only the runs created at or before this date (YYYY-MM-DD: "
                "until its end) or ISO 8601 date-time.",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        queryset = Run.objects.select_related("notification").prefetch_related(
            Prefetch("task_runs", queryset=TaskRun.objects.order_by("position"))
        )
        workflow_id = api_id_param(params, "workflow")
        if workflow_id is not None:
            queryset = queryset.filter(workflow_id=workflow_id)
        if params.get("status"):
            if params["status"] not in RunStatus.values:
                raise ValidationError({"status": [f"must be one of {', '.join(RunStatus.values)}"]})
            queryset = queryset.filter(status=params["status"])
        if params.get("record_id"):
            # Either form of a Salesforce id: 15 characters (as copied) or 18 (as sent).
            queryset = queryset.filter(record_id__in=record_id_forms(params["record_id"]))
        if params.get("email"):
            email = params["email"].strip()
            # An address always holds "@"; anything else is no run's email.
            queryset = runs_matching(queryset, email) if "@" in email else queryset.none()
        queryset = _date_filter(queryset, "created_at", params, "since")
        queryset = _date_filter(queryset, "created_at", params, "until", upper=True)
        return queryset.order_by("-id")

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None, format=None):  # format: DRF's .json routes
        try:
            run_id = parse_id(pk)
        except ValueError:
            run_id = None
        run = get_object_or_404(Run.objects.select_related("workflow"), pk=run_id or 0)
        if not (request.user.is_staff or run.workflow.owner_id == request.user.pk):
            raise PermissionDenied("only the workflow's owner or a staff member can retry a run")
        try:
            run = run_retry(run=run)
        except RetryRefused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(self.get_queryset().get(pk=run.pk)).data, status=202)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "outcome",
                str,
                enum=DeliveryOutcome.values,
                description="Only the deliveries the endpoint accepted, or only those it rejected.",
            ),
            OpenApiParameter(
                "workflow", int, description="Only the deliveries to this workflow's event URL."
            ),
        ]
    )
)
class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DeliverySerializer
    error_statuses = {"list": {400}}  # core/api_schema.py: the filters are checked

    def get_queryset(self):
        params = self.request.query_params
        queryset = Delivery.objects.all()
        outcome = params.get("outcome")
        if outcome:
            if outcome not in DeliveryOutcome.values:
                raise ValidationError({"outcome": ["must be accepted or rejected"]})
            queryset = queryset.filter(outcome=outcome)
        workflow_id = api_id_param(params, "workflow")
        if workflow_id is not None:
            queryset = queryset.filter(workflow_id=workflow_id)
        return queryset.order_by("-id")
