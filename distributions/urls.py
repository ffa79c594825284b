"""URLs of distributions outside the API: history CSV downloads and pages."""

from django.urls import path

from distributions import views

urlpatterns = [
    path(
        "surveys/<int:survey_id>/distribution-history.csv",
        views.survey_history_csv,
        name="survey-distribution-history-csv",
    ),
    path(
        "surveys/<int:survey_id>/responses.csv",
        views.survey_responses_csv,
        name="survey-responses-csv",
    ),
    path(
        "distributions/<int:distribution_id>/history.csv",
        views.distribution_history_csv,
        name="distribution-history-csv",
    ),
    path(
        "surveys/<int:survey_id>/distributions/",
        views.survey_distributions,
        name="survey-distributions",
    ),
    path("outbox/", views.outbox, name="outbox"),
]
