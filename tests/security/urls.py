"""Every URL of config/urls.py, walked from the resolver, with real arguments to request it.

A URL the walk cannot fill in (a new kind of argument) fails the authorization test
with a message saying where to teach it, so no URL escapes the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.regex_helper import normalize

from distributions.models import (
    Conversation,
    Distribution,
    FrequencyRule,
    OutboxMessage,
    VerifiedSender,
)
from surveys.models import Response
from xmflows.models import Delivery, Run


@dataclass(frozen=True)
class UrlCase:
    route: str  # as written in the URLconf, e.g. "api/v1/^runs/(?P<pk>[^/.]+)/$"
    name: str  # namespaced, e.g. "admin:xmflows_run_change"
    params: tuple[str, ...]
    regex: str  # the whole pattern, as Django's reverse() joins it

    @property
    def unnamed(self) -> bool:
        return self.name.split(":")[-1].startswith("(unnamed)")


def _walk(patterns, prefix: str, namespace: str, regex: str):
    for pattern in patterns:
        piece = pattern.pattern.regex.pattern.removeprefix("^")
        if isinstance(pattern, URLResolver):
            inner = namespace
            # The REST API's names are listed without their namespace ("api"):
            # PAGE_ROUTES tells a page from the API route of the same name.
            if pattern.namespace and pattern.namespace != "api":
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from _walk(
                pattern.url_patterns, prefix + str(pattern.pattern), inner, regex + piece
            )
        elif isinstance(pattern, URLPattern):
            name = pattern.name or f"(unnamed) {prefix}{pattern.pattern}".replace(":", "=")
            params = tuple(sorted(pattern.pattern.regex.groupindex))
            yield UrlCase(
                route=prefix + str(pattern.pattern),
                name=f"{namespace}:{name}" if namespace else name,
                params=params,
                regex=regex + piece,
            )


def all_url_cases() -> list[UrlCase]:
    """One case per URL pattern (names are not unique: a page and an API route may
    share one, which is why paths are built from the pattern, not reverse())."""
    return list(
        {case.route: case for case in _walk(get_resolver().url_patterns, "", "", "")}.values()
    )


def _path(case: UrlCase, kwargs: dict[str, object]) -> str:
    # What reverse() does for one pattern: Django's own regex normalization.
    for template, params in normalize(case.regex):
        if set(params) == set(kwargs):
            return "/" + template % {key: str(value) for key, value in kwargs.items()}
    raise UnknownUrl(f"{case.route} ({case.name}): cannot build a path from {kwargs}")


# The model behind the `pk` of each API basename and page argument.
API_MODELS = {
    "workflow": lambda world: world.workflow.pk,
    "run": lambda world: world.run.pk,
    "delivery": lambda world: Delivery.objects.first().pk,
    "survey": lambda world: world.survey.pk,
    "response": lambda world: Response.objects.first().pk,
    "directory": lambda world: world.line.contact.directory_id,
    "mailing-list": lambda world: world.line.contact.mailing_lists.first().pk,
    "contact": lambda world: world.line.contact_id,
    "distribution": lambda world: world.line.distribution_id,
    "outbox": lambda world: OutboxMessage.objects.first().pk,
    "verified-sender": lambda world: VerifiedSender.objects.first().pk,
    "frequency-rule": lambda world: FrequencyRule.objects.first().pk,
    "sms-conversation": lambda world: _first_pk(Conversation),
}


def _first_pk(model) -> int:
    first = model.objects.order_by("pk").first()
    return first.pk if first else 999_999


PAGE_ARGUMENTS = {
    "workflow_id": lambda world: world.workflow.pk,
    "run_id": lambda world: world.run.pk,
    "survey_id": lambda world: world.survey.pk,
    "distribution_id": lambda world: Distribution.objects.first().pk,
}


class UnknownUrl(LookupError):
    pass


def _admin_object(case: UrlCase) -> str:
    """The first object of the admin URL's model, or an id that is not there."""
    if case.unnamed:
        # admin/<app>/<model>/<path:object_id>/ (the old-style redirect to the change page)
        model = apps.get_model(*case.route.split("/")[1:3])
    else:  # admin:<app_label>_<model_name>_<view>; app labels may hold "_" (django_q)
        name = case.name.removeprefix("admin:")
        (model,) = [
            model
            for model in admin.site._registry
            if name.startswith(f"{model._meta.app_label}_{model._meta.model_name}_")
        ]
    first = model._default_manager.order_by("pk").first()
    return str(first.pk if first else 999_999)


def url_for(case: UrlCase, world) -> str:
    """The path to request for `case`, with the world's objects as arguments."""
    kwargs: dict[str, object] = {}
    for param in case.params:
        if param == "format":
            # DRF's route converter for the API root matches the dot too.
            kwargs[param] = ".json" if "<drf_format_suffix:" in case.route else "json"
        elif param == "token" and case.name.startswith("salesforce-outbound-message"):
            kwargs[param] = world.workflow.event.token
        elif param == "token" and case.name in {"survey-page", "survey-opt-out"}:
            kwargs[param] = world.link.token
        elif param == "pk" and case.name.rsplit("-", 1)[0] in API_MODELS:
            kwargs[param] = API_MODELS[case.name.rsplit("-", 1)[0]](world)
        elif param in PAGE_ARGUMENTS:
            kwargs[param] = PAGE_ARGUMENTS[param](world)
        elif param == "action" and case.name == "workflow-action":
            kwargs[param] = "copy"
        elif case.name == "admin:view_on_site":
            kwargs["content_type_id"] = ContentType.objects.get_for_model(Run).pk
            kwargs["object_id"] = str(world.run.pk)
        elif param == "object_id" and case.name.startswith("admin:"):  # incl. unnamed ones
            kwargs[param] = _admin_object(case)
        elif param == "app_label" and case.name == "admin:app_list":
            kwargs[param] = "xmflows"
        elif param == "id" and case.name == "admin:auth_user_password_change":
            kwargs[param] = world.users["other"].pk
        elif param == "url" and case.unnamed and case.route.startswith("admin/"):
            kwargs[param] = "no/such/page/"  # the admin's catch-all
        elif param == "rest" and case.name == "api-not-found":
            kwargs[param] = "v1/no-such-endpoint/"  # the API's catch-all
        else:
            raise UnknownUrl(
                f"{case.route} ({case.name}): no value for <{param}>; "
                "teach tests/security/urls.py:url_for"
            )
    return _path(case, kwargs)
