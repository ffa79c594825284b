"""Admin pages for surveys (questions, sharing, activation), responses and personal links."""

import json
from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from core.forms import LinesField
from surveys.api import CANNOT_EDIT
from surveys.deletion import users_of_surveys
from surveys.exceptions import SurveyError
from surveys.models import Question, Response, Survey, SurveyCollaborator, SurveyLink
from surveys.selectors import survey_list_visible
from surveys.services import (
    question_choices_clean,
    question_delete_problem,
    question_positions_release,
    question_setup_problems,
    survey_activate,
    survey_can_edit,
    survey_can_share,
    survey_can_view,
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
            problems = question_setup_problems(
                type=cleaned.get("type"),
                text=cleaned.get("text", ""),
                choices=cleaned.get("choices") or [],
                scale_max=cleaned.get("scale_max"),
            )
            for field, problem in problems.items():
                self.add_error(field if field in self.fields else None, problem)
            if "choices" not in problems and "choices" in cleaned:
                # A pasted JSON list keeps its spaces; stored as the API stores them.
                cleaned["choices"] = question_choices_clean(cleaned["choices"] or [])
        return cleaned


class QuestionFormSet(BaseInlineFormSet):
    """A survey's questions, saved whole: positions may be swapped, answered questions
    are not deleted."""

    def clean(self):
        # Before the formset's own unique check, whose "Please correct the duplicate
        # data for position." says neither which position nor what to do.
        kept = [
            form
            for form in self.forms
            if form.cleaned_data
            and not self._should_delete_form(form)
            and (form.instance.pk or form.has_changed())
        ]
        positions = Counter(form.cleaned_data.get("position") for form in kept)
        shared = sorted(p for p, count in positions.items() if p is not None and count > 1)
        problems = [
            f"{positions[p]} questions have position {p}: give each question its own position"
            for p in shared
        ]
        for form in self.initial_forms:
            if form.instance.pk and self._should_delete_form(form):
                # As saved, not as edited in the form being deleted.
                question = Question.objects.get(pk=form.instance.pk)
                if problem := question_delete_problem(question=question):
                    problems.append(problem)
        if problems:
            raise forms.ValidationError(problems)
        super().clean()

    def save(self, commit=True):
        if commit and self.instance.pk:
            # Each row is written on its own: free the positions that change first
            # (inside the admin's transaction), or swapping 1 and 2 breaks the
            # unique position of a survey half-way.
            moving = [
                form.instance.pk
                for form in self.initial_forms
                if form.instance.pk
                and (self._should_delete_form(form) or "position" in form.changed_data)
            ]
            question_positions_release(
                survey=self.instance,
                question_ids=moving,
                wanted=[
                    form.cleaned_data.get("position") or 0
                    for form in self.forms
                    if form.cleaned_data
                ],
            )
        return super().save(commit)


class PermissionBeforeLookupMixin:
    """History asks the model permission first, as the change page does.

    Django's history looks the object up first; with the lists filtered by sharing,
    a user without any permission on these pages would get "does not exist" for
    another owner's survey but 403 for their own: refused alike, as on the change page.
    """

    def history_view(self, request, object_id, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)


class SharingRules:
    """Model permissions narrowed by the survey's sharing, as the API narrows them.

    `sharing_rules` names, per action, the surveys.services rule (survey_can_view,
    survey_can_edit, survey_can_share) that `obj`, the survey, must also pass; an
    action without one keeps the model permission alone.
    """

    sharing_rules: dict = {}

    def _shared(self, action: str, allowed: bool, request, obj) -> bool:
        rule = self.sharing_rules.get(action)
        return allowed and (obj is None or rule is None or rule(survey=obj, user=request.user))

    def has_view_permission(self, request, obj=None) -> bool:
        return self._shared("view", super().has_view_permission(request, obj), request, obj)

    def has_add_permission(self, request, *obj) -> bool:
        # ModelAdmin asks with the request alone, an inline with the parent too.
        allowed = super().has_add_permission(request, *obj)
        return self._shared("add", allowed, request, obj[0] if obj else None)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._shared("change", super().has_change_permission(request, obj), request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._shared("delete", super().has_delete_permission(request, obj), request, obj)


class QuestionInline(SharingRules, admin.StackedInline):
    model = Question
    form = QuestionForm
    formset = QuestionFormSet
    extra = 0
    fields = ["position", "type", "text", "choices", "required", "scale_max"]

    # Questions change with the survey: whoever may edit it (owner, edit collaborator).
    sharing_rules = {
        "view": survey_can_view,
        "add": survey_can_edit,
        "change": survey_can_edit,
        "delete": survey_can_edit,
    }


class CollaboratorInline(SharingRules, admin.TabularInline):
    model = SurveyCollaborator
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "can_view", "can_edit", "can_distribute"]

    # Sharing is the owner's call, not an editor's (survey_can_share), as in the API.
    sharing_rules = {
        "view": survey_can_view,
        "add": survey_can_share,
        "change": survey_can_share,
        "delete": survey_can_share,
    }


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
class SurveyAdmin(SharingRules, PermissionBeforeLookupMixin, admin.ModelAdmin):
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
        # The API's rule (survey_list_visible): model permissions alone do not show
        # another owner's survey; only a superuser sees every one.
        queryset = survey_list_visible(user=request.user)
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    sharing_rules = {
        "view": survey_can_view,
        "change": survey_can_edit,
        "delete": survey_can_share,
    }

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        # The API never changes an owner; here only a superuser may hand a survey
        # over. Anyone else creates surveys as their own (save_model).
        if not request.user.is_superuser:
            readonly.append("owner")
        return readonly

    def save_model(self, request, obj, form, change) -> None:
        if not change and not request.user.is_superuser:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

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
            if not survey_can_edit(survey=survey, user=request.user):
                self.message_user(request, f"{survey}: {CANNOT_EDIT}", messages.ERROR)
                continue
            try:
                change(survey=survey)
                done += 1
            except SurveyError as error:
                self.message_user(request, f"{survey}: {error.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} survey(s) {verb}.", messages.SUCCESS)


class ReadOnlyAdmin(PermissionBeforeLookupMixin, admin.ModelAdmin):
    """Records written by respondents: never edited by hand.

    Shown only for the surveys the user may see (as the API's responses list), and
    deleted only by who may delete the survey (its owner, or a superuser).
    """

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(survey__in=survey_list_visible(user=request.user).values("pk"))

    def has_view_permission(self, request, obj=None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or obj.survey_id in self._visible_ids(request))

    def has_delete_permission(self, request, obj=None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or obj.survey_id in self._owned_ids(request))

    # Asked once per object on a deletion's confirmation page (thousands of responses
    # when a survey is deleted): the ids are read once per request.
    @staticmethod
    def _visible_ids(request) -> set[int]:
        if not hasattr(request, "_surveys_visible_ids"):
            ids = survey_list_visible(user=request.user).values_list("pk", flat=True)
            request._surveys_visible_ids = set(ids)
        return request._surveys_visible_ids

    @staticmethod
    def _owned_ids(request) -> set[int]:
        if not hasattr(request, "_surveys_owned_ids"):
            surveys = Survey.objects.all()
            if not request.user.is_superuser:
                surveys = surveys.filter(owner=request.user)
            request._surveys_owned_ids = set(surveys.values_list("pk", flat=True))
        return request._surveys_owned_ids


@admin.register(Response)
class ResponseAdmin(ReadOnlyAdmin):
    list_display = ["id", "survey", "contact", "started_at", "finished_at"]
    # Only the surveys listed, not every survey's name.
    list_filter = [
        ("survey", admin.RelatedOnlyFieldListFilter),
        ("finished_at", admin.EmptyFieldListFilter),
    ]
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
    list_filter = [("survey", admin.RelatedOnlyFieldListFilter)]
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
