"""Respondent URLs (CONTRACT.md §7): /s/{token}/ answers a survey, /o/{token}/ opts out."""

from django.urls import path

from surveys import views

urlpatterns = [
    path("s/<str:token>/", views.survey_page, name="survey-page"),
    path("o/<str:token>/", views.opt_out_page, name="survey-opt-out"),
]
