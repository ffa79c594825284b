"""URLs of the workflows app outside the API."""

from django.urls import path

from xmflows import views

urlpatterns = [
    path(
        "events/salesforce/<str:token>/",
        views.salesforce_outbound_message,
        name="salesforce-outbound-message",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]
