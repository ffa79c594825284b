"""Admin pages for surveys (questions, sharing, activation), responses and personal links."""

import json

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from core.forms import LinesField
from surveys.deletion import users_of_surveys
from surveys.exceptions import SurveyError
from surveys.models import Question, Response, Survey, SurveyCollaborator, SurveyLink
from surveys.services import (
    question_setup_problems,
    survey_activate,
    survey_deactivate,
    survey_link_url,
)


def _pretty_json(value) -> str:
    return format_html(
        '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
    )


class QuestionForm(forms.ModelForm):
    choices = LinesField(help_text="Single and multiple choice: one choice per line.")

    class Meta:
        model = Question
        fields = ["position", "type", "text", "choices", "required", "scale_max"]

    def clean(self):
        cleaned = super().clean()
        if "type" in cleaned:
            # The same rules as the API, so a question saved here can always be asked.
            for field, problem in question_setup_problems(
                type=cleaned.get("type"),
                text=cleaned.get("text", ""),
                choices=cleaned.get("choices") or [],
                scale_max=cleaned.get("scale_max"),
            ).items():
                self.add_error(field if field in self.fields else None, problem)
        return cleaned


class QuestionInline(admin.StackedInline):
    model = Question
    form = QuestionForm
    extra = 0
    fields = ["position", "type", "text", "choices", "required", "scale_max"]


class CollaboratorInline(admin.TabularInline):
    model = SurveyCollaborator
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "can_view", "can_edit", "can_distribute"]


class SurveyForm(forms.ModelForm):
    embedded_data_fields = LinesField(
        help_text=(
            "Embedded data fields the survey records, one name per line, exactly as "
            "the workflow maps them (case, spaces and punctuation count)."
        )
    )

    class Meta:
        model = Survey
        fields = ["name", "owner", "embedded_data_fields", "thank_you_text"]


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    form = SurveyForm

    def get_deleted_objects(self, objs, request):
        # A workflow that distributes the survey is listed as protected, and the admin
        # then refuses the deletion, as for a PROTECT key (surveys/deletion.py).
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        users = users_of_surveys(obj.pk for obj in objs)
        return deleted, counts, perms_needed, [*protected, *users]

    list_display = ["name", "owner", "status", "question_count", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    readonly_fields = ["status", "results", "created_at", "updated_at"]
    fields = [
        "name",
        "owner",
        "status",
        "results",
        "embedded_data_fields",
        "thank_you_text",
        "created_at",
        "updated_at",
    ]
    inlines = [QuestionInline, CollaboratorInline]
    actions = ["activate_surveys", "deactivate_surveys"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")

    @admin.display(description="Questions")
    def question_count(self, obj: Survey) -> int:
        return obj.questions.count()

    @admin.display(description="Results")
    def results(self, obj: Survey) -> str:
        """Where this survey's distributions and responses are read and downloaded."""
        if obj.pk is None:
            return "-"
        responses = obj.responses.count()
        return format_html(
            '<a href="{}">Distributions</a> · <a href="{}">Reports and charts</a> · '
            '<a href="{}">{} response{} in the admin</a> · <a href="{}">Responses CSV</a>',
            reverse("survey-distributions", args=[obj.pk]),
            f"{reverse('distribution-report')}?survey={obj.pk}",
            f"{reverse('admin:surveys_response_changelist')}?survey__id__exact={obj.pk}",
            responses,
            "" if responses == 1 else "s",
            reverse("survey-responses-csv", args=[obj.pk]),
        )

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("owner", request.user.pk)
        return initial

    @admin.action(description="Activate selected surveys")
    def activate_surveys(self, request, queryset) -> None:
        # Status changes go through the services (activation needs questions), so
        # status is read-only on the form and changed only here or by the API.
        self._change_status(request, queryset, survey_activate, "activated")

    @admin.action(description="Deactivate (close) selected surveys")
    def deactivate_surveys(self, request, queryset) -> None:
        self._change_status(request, queryset, survey_deactivate, "deactivated")

    def _change_status(self, request, queryset, change, verb: str) -> None:
        done = 0
        for survey in queryset:
            try:
                change(survey=survey)
                done += 1
            except SurveyError as error:
                self.message_user(request, f"{survey}: {error.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} survey(s) {verb}.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by respondents: never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Response)
class ResponseAdmin(ReadOnlyAdmin):
    list_display = ["id", "survey", "contact", "started_at", "finished_at"]
    list_filter = ["survey", ("finished_at", admin.EmptyFieldListFilter)]
    list_select_related = ["survey", "contact"]
    fields = [
        "survey",
        "contact",
        "link",
        "started_at",
        "finished_at",
        "answers_pretty",
        "embedded_data_pretty",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="Answers")
    def answers_pretty(self, obj: Response) -> str:
        # Keyed by question id in storage; shown with the question text beside it.
        texts = dict(obj.survey.questions.values_list("pk", "text"))
        labelled = {
            f"{key}. {texts.get(int(key), '(deleted question)')}" if key.isdecimal() else key: value
            for key, value in (obj.answers or {}).items()
        }
        return _pretty_json(labelled)

    @admin.display(description="Embedded data")
    def embedded_data_pretty(self, obj: Response) -> str:
        return _pretty_json(obj.embedded_data or {})


@admin.register(SurveyLink)
class SurveyLinkAdmin(ReadOnlyAdmin):
    list_display = ["id", "survey", "contact", "created_at", "opened_at", "finished_at"]
    list_filter = ["survey"]
    list_select_related = ["survey", "contact"]
    fields = [
        "survey",
        "contact",
        "url",
        "expires_at",
        "created_at",
        "opened_at",
        "started_at",
        "finished_at",
        "opted_out_at",
        "snapshot_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="Survey link")
    def url(self, obj: SurveyLink) -> str:
        return survey_link_url(obj)

    @admin.display(description="Snapshot (frozen at send time)")
    def snapshot_pretty(self, obj: SurveyLink) -> str:
        return _pretty_json(obj.snapshot or {})
