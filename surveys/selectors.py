"""Reads on surveys and responses, filtered by what the user may see."""

from django.db.models import Exists, OuterRef, Q, QuerySet

from surveys.models import Response, Survey, SurveyCollaborator, SurveyLink


def survey_list_visible(*, user) -> QuerySet[Survey]:
    """Surveys the user owns or collaborates on; a superuser sees all.

    Staff status alone is not enough: every admin of xmflows is staff, and
    sharing (SPEC F6) would mean nothing if staff saw every survey.
    """
    queryset = Survey.objects.select_related("owner")
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    if user.is_superuser:
        return queryset
    shared = SurveyCollaborator.objects.filter(survey=OuterRef("pk"), user=user).filter(
        Q(can_view=True) | Q(can_edit=True) | Q(can_distribute=True)
    )
    return queryset.filter(Q(owner=user) | Exists(shared))


def response_list(*, user, survey_id: int | None = None) -> QuerySet[Response]:
    visible = survey_list_visible(user=user).values("pk")
    queryset = Response.objects.filter(survey__in=visible)
    if survey_id is not None:
        queryset = queryset.filter(survey_id=survey_id)
    return queryset.order_by("-id")


def response_for_link(link: SurveyLink) -> Response | None:
    return Response.objects.filter(link=link).first()


def survey_link_by_token(token: str) -> SurveyLink | None:
    return SurveyLink.objects.select_related("survey").filter(token=token).first()


def response_export(*, survey: Survey):
    """(header, rows) of the survey's responses CSV, rows streamed from the database
    in id order (surveys.response_export lays them out)."""
    from surveys.response_export import ExportQuestion, ResponseRow, cells, columns

    questions = [
        ExportQuestion(id=pk, text=text)
        for pk, text in survey.questions.order_by("position").values_list("pk", "text")
    ]
    embedded_names = [str(name) for name in survey.embedded_data_fields or []]
    queryset = (
        Response.objects.filter(survey=survey)
        .select_related("contact", "link__recipient")
        .order_by("id")
    )

    def rows():
        for response in queryset.iterator(chunk_size=1000):
            line = getattr(response.link, "recipient", None) if response.link else None
            contact = response.contact
            # Who it was sent to, as sent (the line is frozen); else the contact now.
            person = line or contact
            yield cells(
                ResponseRow(
                    id=response.pk,
                    started_at=response.started_at,
                    finished_at=response.finished_at,
                    contact_id=response.contact_id,
                    first_name=getattr(person, "first_name", "") or "",
                    last_name=getattr(person, "last_name", "") or "",
                    email=getattr(person, "email", "") or "",
                    phone=getattr(person, "phone", "") or "",
                    external_data_reference=getattr(person, "external_data_reference", "") or "",
                    record_id=line.record_id if line else "",
                    workflow_run_id=line.workflow_run_id if line else None,
                    distribution_id=line.distribution_id if line else None,
                    answers=response.answers or {},
                    embedded_data=response.embedded_data or {},
                ),
                questions,
                embedded_names,
            )

    return columns(questions, embedded_names), rows()
