"""URLs of the workflows app outside the API: the endpoint, health, pages and reports."""

from django.urls import path

from xmflows import pages, views

urlpatterns = [
    path(
        "events/salesforce/<str:token>/",
        views.salesforce_outbound_message,
        name="salesforce-outbound-message",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("workflows/", pages.workflow_list_page, name="workflow-list"),
    path("workflows/new/", pages.workflow_create_page, name="workflow-create"),
    path("workflows/<int:workflow_id>/", pages.workflow_detail_page, name="workflow-detail"),
    path("workflows/<int:workflow_id>/edit/", pages.workflow_edit_page, name="workflow-edit"),
    path(
        "workflows/<int:workflow_id>/<str:action>/",
        pages.workflow_action_page,
        name="workflow-action",
    ),
    path("reports/workflows/", pages.run_list_page, name="run-list"),
    path("reports/workflows/runs/<int:run_id>/", pages.run_detail_page, name="run-detail"),
    path("reports/workflows/runs/<int:run_id>/retry/", pages.run_retry_page, name="run-retry"),
    path("reports/workflows/deliveries/", pages.delivery_list_page, name="delivery-list"),
]
