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
