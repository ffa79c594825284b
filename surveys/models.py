"""Surveys with their questions and sharing; personal links and the responses given through them."""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from core.fields import OrderedJSONField

DEFAULT_THANK_YOU_TEXT = "Thank you for your feedback."


def new_link_token() -> str:
    # 192 random bits, URL-safe: whoever holds the token answers as the contact,
    # so it must not be guessable from another link or from the link's id.
    return secrets.token_urlsafe(24)


class SurveyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive (closed)"


def validate_field_names(value) -> None:
    """A list of distinct, non-empty names (what the admin may type; the API's own
    serializer checks the same)."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValidationError('a JSON list of field names, e.g. ["CaseNumber", "Priority"]')
    names = [name.strip() for name in value]
    if not all(names):
        raise ValidationError("field names must not be empty")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationError(f"field names appear more than once: {', '.join(duplicates)}")


class Survey(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="surveys"
    )
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=SurveyStatus.choices, default=SurveyStatus.DRAFT
    )
    # The survey flow's embedded data elements: only these names are recorded on a
    # response, filled by exact name from the recipient's snapshot.
    embedded_data_fields = models.JSONField(
        default=list, blank=True, validators=[validate_field_names]
    )
    thank_you_text = models.TextField(default=DEFAULT_THANK_YOU_TEXT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == SurveyStatus.ACTIVE


class QuestionType(models.TextChoices):
    NPS = "nps", "Net Promoter Score (0–10)"  # noqa: RUF001 (typographic dash in a label)
    RATING = "rating", "Rating (1 to scale maximum)"
    SINGLE_CHOICE = "single_choice", "Single choice"
    MULTIPLE_CHOICE = "multiple_choice", "Multiple choice"
    TEXT = "text", "Text entry"


CHOICE_TYPES = frozenset({QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE})


class Question(models.Model):
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="questions")
    position = models.PositiveIntegerField()
    type = models.CharField(max_length=20, choices=QuestionType.choices)
    # May hold piped text (${m://FirstName}, ${e://Field/CaseNumber}), rendered per
    # respondent from the link's frozen snapshot.
    text = models.TextField()
    choices = models.JSONField(default=list, blank=True)
    required = models.BooleanField(default=True)
    scale_max = models.PositiveSmallIntegerField(
        default=5, help_text="Highest value of a rating question (its scale starts at 1)."
    )

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "position"], name="surveys_question_unique_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.text[:60]}"


class SurveyCollaborator(models.Model):
    """A user the owner shared the survey with, and what they may do with it."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="survey_collaborations"
    )
    can_view = models.BooleanField(default=True)
    can_edit = models.BooleanField(default=False)
    can_distribute = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "user"], name="surveys_collaborator_unique_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.survey}"


class SurveyLink(models.Model):
    """A personal link, one per distribution recipient line, answerable once.

    `snapshot` is frozen when the invitation is sent (SPEC F4), so a later contact
    update changes neither the question texts the respondent reads nor the embedded
    data their response records. Its keys: "contact" (FirstName, LastName, Email,
    PhoneNumber, ExternalDataReference, Language), "embedded_data", "transaction",
    "event_fields".
    """

    token = models.CharField(max_length=64, unique=True, default=new_link_token, editable=False)
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="links")
    contact = models.ForeignKey(
        "contacts.Contact",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_links",
    )
    snapshot = OrderedJSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    opted_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"link {self.pk} to {self.survey}"


class Response(models.Model):
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="responses")
    link = models.OneToOneField(
        SurveyLink,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="response",
    )
    contact = models.ForeignKey(
        "contacts.Contact",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_responses",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {question_id (str): value}: NPS and ratings as integers, a choice as its text,
    # several choices as a list of their texts.
    answers = OrderedJSONField(default=dict, blank=True)
    embedded_data = OrderedJSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["survey", "-id"], name="surveys_response_survey_id")]

    def __str__(self) -> str:
        return f"response {self.pk} to {self.survey}"
