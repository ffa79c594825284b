"""REST API of distributions, their recipient lines, the outbox and verified senders."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response

from core.params import api_id_param
from distributions.models import (
    Channel,
    Conversation,
    ConversationStatus,
    DistributionChannel,
    FrequencyRule,
    FrequencyScope,
    MessageKind,
    VerifiedSender,
)
from distributions.selectors import (
    distributions_visible,
    outbox_messages,
    parse_status,
    senders_in_use,
    status_counts,
)
from distributions.serializers import (
    ConversationSerializer,
    DistributionSerializer,
    FrequencyRuleSerializer,
    OutboxMessageSerializer,
    RecipientSerializer,
    VerifiedSenderSerializer,
)


class DistributionViewSet(viewsets.ReadOnlyModelViewSet):
    """Distributions of the surveys you can see, newest first, with counts by status."""

    serializer_class = DistributionSerializer
    permission_classes = [IsAuthenticated]
    # core/api_schema.py: the filters are checked.
    error_statuses = {"list": {400}, "recipients": {400}}

    def get_queryset(self):
        params = self.request.query_params
        queryset = distributions_visible(user=self.request.user).select_related("created_by")
        survey = api_id_param(params, "survey")
        if survey is not None:
            queryset = queryset.filter(survey_id=survey)
        workflow = api_id_param(params, "workflow")
        if workflow is not None:
            queryset = queryset.filter(workflow_id=workflow)
        workflow_run = api_id_param(params, "workflow_run", "workflow run")
        if workflow_run is not None:
            queryset = queryset.filter(workflow_run_id=workflow_run)
        channel = params.get("channel")
        if channel:
            if channel not in DistributionChannel.values:
                raise ValidationError(
                    {"channel": [f"must be one of {', '.join(DistributionChannel.values)}"]}
                )
            queryset = queryset.filter(channel=channel)
        kind = params.get("kind")
        if kind:
            if kind not in MessageKind.values:
                raise ValidationError({"kind": [f"must be one of {', '.join(MessageKind.values)}"]})
            queryset = queryset.filter(kind=kind)
        return queryset.order_by("-id")

    def _serialize(self, distributions, *, many: bool):
        items = distributions if many else [distributions]
        counts = status_counts(item.pk for item in items)
        return DistributionSerializer(
            distributions, many=many, context={**self.get_serializer_context(), "counts": counts}
        ).data

    @extend_schema(
        parameters=[
            OpenApiParameter("survey", int, description="Only the distributions of this survey."),
            OpenApiParameter(
                "workflow", int, description="Only the distributions this workflow created."
            ),
            OpenApiParameter(
                "workflow_run", int, description="Only the distributions this run created."
            ),
            OpenApiParameter(
                "channel",
                str,
                enum=DistributionChannel.values,
                description="Only the distributions sent on this channel.",
            ),
            OpenApiParameter(
                "kind",
                str,
                enum=MessageKind.values,
                description="Only invitations, reminders or thank-yous.",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self._serialize(page, many=True))

    def retrieve(self, request, *args, **kwargs):
        return Response(self._serialize(self.get_object(), many=False))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                str,
                description="Only the lines in this status: a status code (finished) or "
                "label (Survey Finished), any case, or several separated by commas.",
            )
        ],
        responses={200: RecipientSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def recipients(self, request, pk=None, format=None):  # format: DRF's .json routes
        """One row per contact of the distribution, in the order they were added."""
        distribution = get_object_or_404(self.get_queryset(), pk=pk)
        queryset = (
            distribution.recipients.select_related("link")
            .prefetch_related("follow_ups")
            .order_by("id")
        )
        if request.query_params.get("status"):
            try:
                codes = parse_status(request.query_params["status"])
            except ValueError as error:
                raise ValidationError({"status": [str(error)]}) from error
            queryset = queryset.filter(status__in=codes)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(RecipientSerializer(page, many=True).data)


class OutboxViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What the development outbox "sent" (staff only: it holds personal links)."""

    serializer_class = OutboxMessageSerializer
    permission_classes = [IsAdminUser]
    error_statuses = {"list": {400}}  # core/api_schema.py: the channel is checked

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "to",
                str,
                description="Only the messages to this email address (any case) or E.164 number.",
            ),
            OpenApiParameter(
                "channel",
                str,
                enum=Channel.values,
                description="Only the emails, or only the text messages.",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        channel = params.get("channel") or ""
        if channel and channel not in Channel.values:
            raise ValidationError({"channel": [f"must be one of {', '.join(Channel.values)}"]})
        return outbox_messages(to=params.get("to") or "", channel=channel)


class VerifiedSenderViewSet(viewsets.ModelViewSet):
    """Addresses and domains tasks may send from (staff only)."""

    serializer_class = VerifiedSenderSerializer
    permission_classes = [IsAdminUser]
    queryset = VerifiedSender.objects.order_by("address")
    error_statuses = {"destroy": {409}}  # core/api_schema.py: a sender in use stays

    def destroy(self, request, *args, **kwargs):
        # The admin refuses the same deletion with the same sentences.
        in_use = senders_in_use([self.get_object().pk])
        if in_use:
            return Response({"detail": "; ".join(in_use)}, status=status.HTTP_409_CONFLICT)
        return super().destroy(request, *args, **kwargs)


class FrequencyRuleViewSet(viewsets.ModelViewSet):
    """Contact frequency rules (staff only): at most `max_sends` invitations to a contact
    per `period_days`, per directory, mailing list or survey (`scope` + `target` id)."""

    serializer_class = FrequencyRuleSerializer
    permission_classes = [IsAdminUser]
    error_statuses = {"list": {400}}  # core/api_schema.py: the scope is checked

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "scope",
                str,
                enum=FrequencyScope.values,
                description="Only the rules of this scope.",
            )
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        queryset = FrequencyRule.objects.select_related("directory", "mailing_list", "survey")
        scope = self.request.query_params.get("scope")
        if scope:
            if scope not in FrequencyScope.values:
                raise ValidationError(
                    {"scope": [f"must be one of {', '.join(FrequencyScope.values)}"]}
                )
            queryset = queryset.filter(scope=scope)
        return queryset.order_by("id")


class ConversationViewSet(viewsets.ReadOnlyModelViewSet):
    """Two-way SMS survey conversations with every text in and out (staff only: they
    hold respondents' answers and phone numbers)."""

    serializer_class = ConversationSerializer
    permission_classes = [IsAdminUser]
    error_statuses = {"list": {400}}  # core/api_schema.py: the distribution id is checked

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "phone", str, description="Only the conversations with this E.164 number."
            ),
            OpenApiParameter(
                "status",
                str,
                enum=ConversationStatus.values,
                description="Only the conversations in this status (any other value matches none).",
            ),
            OpenApiParameter(
                "distribution",
                int,
                description="Only the conversations of this distribution's lines.",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        queryset = Conversation.objects.select_related("recipient").prefetch_related("messages")
        if params.get("phone"):
            queryset = queryset.filter(phone=params["phone"].strip())
        if params.get("status"):
            queryset = queryset.filter(status=params["status"])
        distribution = api_id_param(params, "distribution")
        if distribution:
            queryset = queryset.filter(recipient__distribution_id=distribution)
        return queryset.order_by("-id")
