"""API representations of surveys (with questions and collaborators) and responses."""

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from core.strict_serializer import StrictKeysMixin
from surveys.models import Question, QuestionType, Response, Survey, SurveyCollaborator
from surveys.services import question_setup_problems


class QuestionSerializer(StrictKeysMixin, serializers.ModelSerializer):
    # Writable, so a client that sends back what it read updates questions in place
    # (answers recorded under their ids stay attached); without an id, a new one.
    id = serializers.IntegerField(required=False)
    position = serializers.IntegerField(required=False, min_value=0)
    type = serializers.ChoiceField(choices=QuestionType.choices)
    choices = serializers.ListField(
        child=serializers.CharField(max_length=500, trim_whitespace=False),
        required=False,
        default=list,
    )
    # A rating's scale is checked below (2 to 10); any other question keeps a value the
    # column holds.
    scale_max = serializers.IntegerField(required=False, default=5, min_value=0, max_value=32767)

    class Meta:
        model = Question
        fields = ["id", "position", "type", "text", "choices", "required", "scale_max"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "type" not in attrs:
            # A PATCH of the survey makes nested fields optional; questions are still
            # replaced whole, so each one needs its type.
            raise serializers.ValidationError({"type": ["This field is required."]})
        problems = question_setup_problems(
            type=attrs["type"],
            text=attrs.get("text", ""),
            choices=attrs.get("choices") or [],
            scale_max=attrs.get("scale_max", 5),
        )
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class CollaboratorSerializer(StrictKeysMixin, serializers.ModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field=get_user_model().USERNAME_FIELD, queryset=get_user_model().objects.all()
    )

    class Meta:
        model = SurveyCollaborator
        fields = ["user", "can_view", "can_edit", "can_distribute"]


class SurveySerializer(StrictKeysMixin, serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field=get_user_model().USERNAME_FIELD, read_only=True)
    questions = QuestionSerializer(many=True, required=False)
    collaborators = CollaboratorSerializer(many=True, required=False)
    embedded_data_fields = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False
    )

    class Meta:
        model = Survey
        fields = [
            "id",
            "name",
            "status",
            "questions",
            "embedded_data_fields",
            "thank_you_text",
            "owner",
            "collaborators",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_questions(self, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [item["id"] for item in questions if item.get("id") is not None]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("each question id may appear only once")
        if self.instance is not None:
            own = set(self.instance.questions.values_list("pk", flat=True))
            foreign = [question_id for question_id in ids if question_id not in own]
            if foreign:
                raise serializers.ValidationError(
                    f"question {foreign[0]} is not a question of this survey; "
                    "leave the id out to add a new question"
                )
        elif ids:
            raise serializers.ValidationError("a new survey's questions cannot have ids")
        return questions

    def validate_collaborators(self, collaborators: list[dict[str, Any]]) -> list[dict[str, Any]]:
        users = [item["user"].pk for item in collaborators]
        if len(users) != len(set(users)):
            raise serializers.ValidationError("each user may be listed only once")
        return collaborators


class ResponseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Response
        fields = [
            "id",
            "survey",
            "contact",
            "started_at",
            "finished_at",
            "answers",
            "embedded_data",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
