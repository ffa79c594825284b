"""URLs of django-anymail's tracking webhooks (/hooks/email/…), refused unless secured.

anymail only warns when ANYMAIL["WEBHOOK_SECRET"] is missing and then accepts events
from anyone, who could mark lines delivered or suppress any address. Here every
webhook answers 403 until the secret is set (PITFALLS.md 7); with it, anymail checks
the HTTP basic auth itself (a wrong or missing one gets its 400 answer).

anymail mounts the views of every ESP it supports, and many fail with a 500 on a
request they cannot use: before checking anything when their ESP's own settings (a
signing key) are missing, or while parsing a body that is not what their ESP sends.
Bad input must get a 4xx, so:
- when EMAIL_BACKEND is an anymail ESP backend, only that ESP's webhooks are served
  (404 for the others): no genuine event can come from an ESP we do not send through;
- whatever the view then cannot use gets a 403 (its ESP is not configured here) or a
  400 (unreadable request) with a sentence saying so, instead of a 500.
Each refusal is logged at WARNING and kept as a "rejected" delivery event (admin:
Delivery events), as the Twilio webhooks do. A database error still answers 500, so
that the ESP retries the event once the database is back.
"""

from __future__ import annotations

import functools
import logging

from anymail import urls as anymail_urls
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt

from distributions.sms_services import webhook_rejection_record

logger = logging.getLogger(__name__)

app_name = anymail_urls.app_name

ANYMAIL_BACKENDS = "anymail.backends."
# anymail renamed SendinBlue to Brevo and keeps both modules: either backend takes
# events on either URL (an ESP account set up before the rename keeps its old URL).
ESP_ALIASES = {"sendinblue": "brevo"}


def webhook_secret_configured() -> bool:
    secret = (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET")
    return bool(secret)


def _esp_key(module_name: str) -> str:
    """The ESP a module is for: "mailgun" for anymail.backends.mailgun (or .webhooks)."""
    key = module_name.split(".")[2] if module_name.count(".") >= 2 else module_name
    return ESP_ALIASES.get(key, key)


ESP_KEYS_WITH_WEBHOOKS = frozenset(
    _esp_key(pattern.callback.view_class.__module__) for pattern in anymail_urls.urlpatterns
)


def configured_esp() -> str | None:
    """The ESP whose webhooks are served, from EMAIL_BACKEND; None when that is not
    one of anymail's ESP backends (the outbox in development, a custom backend): no
    ESP can then be singled out, and all stay mounted behind the secret."""
    backend = settings.EMAIL_BACKEND
    if not backend.startswith(ANYMAIL_BACKENDS):
        return None
    key = _esp_key(backend)
    return key if key in ESP_KEYS_WITH_WEBHOOKS else None


def _refuse(request: HttpRequest, *, esp_name: str, kind: str, status: int, reason: str):
    webhook_rejection_record(
        webhook=kind,
        reason=reason,
        # The path only: whatever a caller put in the query string is not kept.
        url=request.path,
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        params={},
        provider=esp_name,
        status=status,
    )
    logger.warning("%s %s webhook refused (HTTP %d): %s", esp_name, kind, status, reason)
    return HttpResponse(reason, status=status, content_type="text/plain; charset=utf-8")


def guard_webhook(view, *, kind: str):
    """The secret, then the ESP, then anymail's view with its failures made answers."""
    view_class = view.view_class
    esp_name = view_class.esp_name
    esp_key = _esp_key(view_class.__module__)

    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        refuse = functools.partial(_refuse, request, esp_name=esp_name, kind=kind)
        if not webhook_secret_configured():
            return refuse(
                status=403,
                reason="email webhooks are disabled: set ANYMAIL_WEBHOOK_SECRET (user:password) "
                "and give the ESP the webhook URL with those credentials",
            )
        configured = configured_esp()
        if configured is not None and configured != esp_key:
            return refuse(
                status=404,
                reason=f"email webhooks of {esp_name} are not enabled: "
                f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}",
            )
        try:
            return view(request, *args, **kwargs)
        except (DatabaseError, SuspiciousOperation, PermissionDenied, Http404):
            # Our failure (the ESP should retry), or answers Django already gives as
            # 4xx: anymail's failed basic auth or signature check is a 400.
            raise
        except ImproperlyConfigured as error:  # anymail's AnymailConfigurationError
            # Its message names the missing setting (never a value): say which.
            missing = (str(error).strip().splitlines() or [type(error).__name__])[0]
            return refuse(
                status=403,
                reason=f"email webhooks of {esp_name} are not configured here: {missing}",
            )
        except Exception as error:
            # The body passed the checks but is not what this ESP sends (anymail's
            # parsers index into it and fail with KeyError, ValueError, TypeError …).
            return refuse(
                status=400,
                reason=f"the {esp_name} {kind} webhook could not read this request "
                f"({type(error).__name__}: {' '.join(str(error).split())[:200]})",
            )

    return csrf_exempt(guarded)


def _kind(pattern: URLPattern) -> str:
    # mandrill_webhook is Mandrill's combined tracking and inbound webhook.
    name = (pattern.name or "").removesuffix("_webhook")
    return name.rsplit("_", 1)[-1] if "_" in name else "combined"


urlpatterns = [
    URLPattern(
        pattern.pattern,
        guard_webhook(pattern.callback, kind=_kind(pattern)),
        pattern.default_args,
        pattern.name,
    )
    for pattern in anymail_urls.urlpatterns
]
