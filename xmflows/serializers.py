"""DRF serializers for workflow definitions, runs and deliveries."""

import re

from rest_framework import serializers

from core.strict_serializer import StrictSerializer
from xmflows import task_types
from xmflows.conditions import validate_conditions
from xmflows.models import Delivery, EventType, OnFailure, Run, Workflow
from xmflows.services import (
    can_see_secrets,
    without_links,
    workflow_create,
    workflow_export,
    workflow_update,
)

OBJECT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")


def may_see_secrets(serializer: serializers.BaseSerializer, owner_id: int) -> bool:
    """services.can_see_secrets for the requesting user; without a request (internal
    use) the secrets show."""
    request = serializer.context.get("request")
    if request is None:
        return True
    return can_see_secrets(user=request.user, owner_id=owner_id)


ORGANIZATION_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


class EventDefinitionSerializer(StrictSerializer):
    type = serializers.ChoiceField(
        choices=EventType.choices, default=EventType.SALESFORCE_OUTBOUND_MESSAGE
    )
    object = serializers.CharField(max_length=100)
    organization_id = serializers.CharField(
        max_length=18, required=False, allow_null=True, allow_blank=True
    )
    fields = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=500
    )

    def validate_object(self, value: str) -> str:
        if not OBJECT_NAME.match(value):
            raise serializers.ValidationError(
                "must be a Salesforce object API name such as Case, Lead or Survey_Request__c"
            )
        return value

    def validate_organization_id(self, value: str | None) -> str | None:
        if value and not ORGANIZATION_ID.match(value):
            raise serializers.ValidationError(
                "must be a 15- or 18-character Salesforce organization id (letters and digits)"
            )
        return value or None


class WorkflowSerializer(StrictSerializer):
    """The workflow definition of CONTRACT.md §5, plus read-only facts."""

    id = serializers.IntegerField(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    event_url = serializers.CharField(
        source="event.url",
        read_only=True,
        allow_null=True,
        help_text="The URL Salesforce posts to; null for a user who is neither the "
        "workflow's owner nor staff (whoever holds it can send surveys).",
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    name = serializers.CharField(max_length=200)
    enabled = serializers.BooleanField(default=True)
    event = EventDefinitionSerializer()
    conditions = serializers.JSONField(required=False, allow_null=True)
    on_failure = serializers.ChoiceField(choices=OnFailure.choices, default=OnFailure.STOP)
    notify_owner_on_failure = serializers.BooleanField(default=False)
    tasks = serializers.ListField(child=serializers.JSONField(), required=False, max_length=50)

    def validate_conditions(self, value):
        if value in (None, ""):
            return {}
        problems = validate_conditions(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate_tasks(self, value: list) -> list[dict]:
        request = self.context.get("request")
        owner = self.instance.owner if self.instance else getattr(request, "user", None)
        errors: list[dict] = []
        cleaned: list[dict] = []
        for task in value:
            if not isinstance(task, dict):
                errors.append({"type": ["each task must be an object with a 'type'"]})
                continue
            key = task.get("type")
            task_type = task_types.get(key) if isinstance(key, str) else None
            if task_type is None:
                known = ", ".join(sorted(task_types.all_types())) or "none"
                errors.append({"type": [f"unknown task type {key!r}; known types: {known}"]})
                continue
            config = {k: v for k, v in task.items() if k != "type"}
            try:
                cleaned.append({"type": key, **task_type.validate_config(config, owner=owner)})
                errors.append({})
            except serializers.ValidationError as error:
                errors.append(error.detail)
        if any(errors):
            raise serializers.ValidationError(errors)
        return cleaned

    def to_representation(self, instance: Workflow) -> dict:
        return {
            "id": instance.pk,
            "owner": instance.owner.username,
            "event_url": instance.event.url if may_see_secrets(self, instance.owner_id) else None,
            "created_at": serializers.DateTimeField().to_representation(instance.created_at),
            "updated_at": serializers.DateTimeField().to_representation(instance.updated_at),
            **workflow_export(workflow=instance),
        }

    def create(self, validated_data: dict) -> Workflow:
        return workflow_create(owner=self.context["request"].user, definition=validated_data)

    def update(self, instance: Workflow, validated_data: dict) -> Workflow:
        if not self.partial:
            # PUT replaces the whole definition: what it leaves out is empty, as in a
            # POST, not kept from before (its defaulted keys, `enabled` among them,
            # were already reset; conditions and tasks were kept, which no one expects).
            validated_data.setdefault("conditions", {})
            validated_data.setdefault("tasks", [])
            event = validated_data.get("event")
            if isinstance(event, dict):
                event.setdefault("organization_id", None)
        return workflow_update(
            workflow=instance, user=self.context["request"].user, definition=validated_data
        )


class TaskRunSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    type = serializers.CharField()
    status = serializers.CharField()
    output = serializers.JSONField()
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RunSerializer(serializers.ModelSerializer):
    input = serializers.JSONField(source="notification.payload", read_only=True)
    tasks = TaskRunSerializer(source="task_runs", many=True, read_only=True)
    delivery = serializers.IntegerField(source="notification.delivery_id", read_only=True)
    duration_seconds = serializers.FloatField(
        read_only=True, allow_null=True, help_text="null until the run has started and finished."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "workflow",
            "status",
            "trigger",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "reason",
            "record_id",
            "email",
            "attempts",
            "next_attempt_at",
            "delivery",
            "input",
            "tasks",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Run) -> dict:
        data = super().to_representation(instance)
        request = self.context.get("request")
        # Staff first: their runs list needs no workflow lookup per run.
        hidden = (
            request is not None
            and not request.user.is_staff
            and not may_see_secrets(self, instance.workflow.owner_id)
        )
        for task in data["tasks"] if hidden else ():
            task["output"] = without_links(task.get("output"))
        return data


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "received_at",
            "outcome",
            "reason",
            "fault_code",
            "http_status",
            "notification_count",
            "duplicate_count",
            "remote_addr",
            "user_agent",
            "body_bytes",
            "organization_id",
            "object_type",
            "workflow",
        ]
        read_only_fields = fields
