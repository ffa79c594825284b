"""URLs of the workflows app outside the API: the endpoint, health, pages and reports."""

from django.urls import path, re_path

from xmflows import builder_pages, pages, report_pages, views

# The Salesforce endpoint's two patterns, which config/urls.py puts first: every
# message pays for URL resolution, and each pattern tried before it costs time.
endpoint_urlpatterns = [
    path(
        "events/salesforce/<str:token>/",
        views.salesforce_outbound_message,
        name="salesforce-outbound-message",
    ),
    # Whatever else an admin may paste into Salesforce under this prefix (the URL
    # without its final slash, an empty or mangled token) reaches the endpoint too:
    # Salesforce follows no redirect, and a refusal must be a SOAP fault, recorded.
    re_path(
        r"^events/salesforce/(?P<token>.*?)/?$",
        views.salesforce_outbound_message,
        name="salesforce-outbound-message-other",
    ),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("workflows/", pages.workflow_list_page, name="workflow-list"),
    path("workflows/new/", builder_pages.workflow_create_page, name="workflow-create"),
    path(
        "workflows/new/json/", builder_pages.workflow_create_json_page, name="workflow-create-json"
    ),
    path(
        "workflows/dynamic-text-menu/",
        builder_pages.dynamic_text_menu,
        name="dynamic-text-menu",
    ),
    path(
        "workflows/piped-text-preview/",
        builder_pages.piped_text_preview,
        name="piped-text-preview",
    ),
    path("workflows/<int:workflow_id>/", pages.workflow_detail_page, name="workflow-detail"),
    path(
        "workflows/<int:workflow_id>/edit/", builder_pages.workflow_edit_page, name="workflow-edit"
    ),
    path(
        "workflows/<int:workflow_id>/edit/json/",
        builder_pages.workflow_edit_json_page,
        name="workflow-edit-json",
    ),
    path(
        "workflows/<int:workflow_id>/test-event/",
        builder_pages.workflow_event_test_page,
        name="workflow-test-event",
    ),
    path(
        "workflows/<int:workflow_id>/<str:action>/",
        pages.workflow_action_page,
        name="workflow-action",
    ),
    path("reports/workflows/", pages.run_list_page, name="run-list"),
    path("reports/workflows/why/", report_pages.why_not_sent_page, name="why-not-sent"),
    path("reports/workflows/runs/<int:run_id>/", pages.run_detail_page, name="run-detail"),
    path("reports/workflows/runs/<int:run_id>/retry/", pages.run_retry_page, name="run-retry"),
    path(
        "reports/workflows/runs/<int:run_id>/dry-run/",
        report_pages.run_dry_run_page,
        name="run-dry-run",
    ),
    path(
        "reports/workflows/runs/<int:run_id>/replay/",
        report_pages.run_replay_page,
        name="run-replay",
    ),
    path("reports/workflows/deliveries/", pages.delivery_list_page, name="delivery-list"),
    path("reports/queue/", pages.queue_page, name="queue"),
    path(
        "reports/distributions/",
        report_pages.distribution_report_page,
        name="distribution-report",
    ),
]
