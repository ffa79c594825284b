"""URLs of django-anymail's tracking webhooks (/hooks/email/…), refused unless secured.

anymail only warns when ANYMAIL["WEBHOOK_SECRET"] is missing and then accepts events
from anyone, who could mark lines delivered or suppress any address. Here every
webhook answers 403 until the secret is set (PITFALLS.md 7); with it, anymail checks
the HTTP basic auth itself (a wrong or missing one gets its 400 answer).
"""

import functools

from anymail import urls as anymail_urls
from django.conf import settings
from django.http import HttpResponse
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt

app_name = anymail_urls.app_name


def webhook_secret_configured() -> bool:
    secret = (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET")
    return bool(secret)


def require_webhook_secret(view):
    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        if not webhook_secret_configured():
            return HttpResponse(
                "email webhooks are disabled: set ANYMAIL_WEBHOOK_SECRET (user:password) "
                "and give the ESP the webhook URL with those credentials",
                status=403,
                content_type="text/plain; charset=utf-8",
            )
        return view(request, *args, **kwargs)

    return csrf_exempt(guarded)


urlpatterns = [
    URLPattern(
        pattern.pattern,
        require_webhook_secret(pattern.callback),
        pattern.default_args,
        pattern.name,
    )
    for pattern in anymail_urls.urlpatterns
]
