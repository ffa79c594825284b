"""Root URL configuration."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from contacts.api import ContactViewSet, DirectoryViewSet, MailingListViewSet
from core.api_not_found import api_not_found
from distributions.api import (
    ConversationViewSet,
    DistributionViewSet,
    FrequencyRuleViewSet,
    OutboxViewSet,
    VerifiedSenderViewSet,
)
from surveys.api import ResponseViewSet, SurveyViewSet
from xmflows.api import DeliveryViewSet, RunViewSet, WorkflowViewSet
from xmflows.sign_in import SignInForm, ThrottledPasswordChangeView, session_state
from xmflows.urls import endpoint_urlpatterns

_swagger = SpectacularSwaggerView.as_view(url_name="schema")


def api_docs(request, *args, **kwargs):
    """The API docs page: a browser that is not signed in goes to the sign-in page
    (the docs are for signed-in users; an API client still gets its 401)."""
    signed_out = not request.user.is_authenticated and "HTTP_AUTHORIZATION" not in request.META
    if signed_out and "text/html" in request.headers.get("Accept", ""):
        return redirect_to_login(request.get_full_path())
    return _swagger(request, *args, **kwargs)


router = DefaultRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("runs", RunViewSet, basename="run")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("surveys", SurveyViewSet, basename="survey")
router.register("responses", ResponseViewSet, basename="response")
router.register("directories", DirectoryViewSet, basename="directory")
router.register("mailing-lists", MailingListViewSet, basename="mailing-list")
router.register("contacts", ContactViewSet, basename="contact")
router.register("distributions", DistributionViewSet, basename="distribution")
router.register("outbox", OutboxViewSet, basename="outbox")
router.register("verified-senders", VerifiedSenderViewSet, basename="verified-sender")
router.register("frequency-rules", FrequencyRuleViewSet, basename="frequency-rule")
router.register("sms-conversations", ConversationViewSet, basename="sms-conversation")

urlpatterns = [
    # First: Salesforce posts here at volume (xmflows/urls.py).
    *endpoint_urlpatterns,
    # The admin's "Change password" uses the throttled form of /accounts/password/
    # (xmflows.sign_in.ThrottledPasswordChangeForm) instead of the admin's own.
    path(
        "admin/password_change/",
        RedirectView.as_view(pattern_name="password_change"),
        name="admin-password-change",
    ),
    path("admin/", admin.site.urls),
    # Sign-in for every user, staff or not (analysts read reports and download CSV);
    # the admin's own login page takes staff members only.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="accounts/login.html",
            authentication_form=SignInForm,
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/session/", session_state, name="session-state"),
    path(
        "accounts/password/",
        ThrottledPasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="accounts/password_change_done.html"
        ),
        name="password_change_done",
    ),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", api_docs, name="api-docs"),
    # Namespaced: the pages use the same names (workflow-list, run-list …), and the
    # API root must link to the API.
    path("api/v1/", include((router.urls, "api"))),
    # Any other path under /api/: a JSON 404, not the HTML page.
    re_path(r"^api/(?P<rest>.*)$", api_not_found, name="api-not-found"),
    # The admin's "View site" and a bare host name land on the workflows.
    path("", RedirectView.as_view(pattern_name="workflow-list"), name="home"),
    path("", include("xmflows.urls")),
    path("", include("surveys.urls")),
    path("", include("distributions.urls")),
    # django-anymail's tracking webhooks, refused until ANYMAIL_WEBHOOK_SECRET is set.
    path("hooks/email/", include("distributions.email_hooks")),
    # Twilio's status callbacks and inbound texts, signature-checked when Twilio is set up.
    path("hooks/twilio/", include("distributions.twilio_hooks")),
]
