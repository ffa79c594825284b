"""Signing in with a password, throttled: the sign-in page (/accounts/login/) and the
admin's refuse a key that failed too often, so a password cannot be guessed at
the speed of the server.

Two keys are counted per failed attempt: the username from that address (5
failures in 15 minutes block it for 15 minutes) and the address alone (20, for
attempts at many usernames). A username is never blocked outright, only from the
address that failed, so nobody can lock a colleague out by mistyping their name
on purpose. Counters live in the database (SignInThrottle), so every web process
on every machine sees them; the admin lists them and deleting one lifts its block,
as does `manage.py signin_unblock` (for the admin who blocked themselves). The
daily clean-up deletes counters idle for a day.
The address is the client's as xmflows.views.client_address reads it (behind
XMFLOWS_PROXY_COUNT proxies, the one the outermost proxy saw).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from xmflows.models import SignInThrottle
from xmflows.views import client_address


@dataclass(frozen=True)
class Limit:
    failures: int  # this many failures inside `window` block the key …
    window: timedelta
    block: timedelta  # … for this long


USER_FROM_ADDRESS = Limit(failures=5, window=timedelta(minutes=15), block=timedelta(minutes=15))
ADDRESS = Limit(failures=20, window=timedelta(minutes=15), block=timedelta(minutes=15))


def counted_address(address: str | None) -> str:
    """The address counted: an IPv6 client holds a whole /64 (its router hands out any
    address in it), so all of it counts as one."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def _keys(username: str, address: str | None) -> dict[str, Limit]:
    name = (username or "").strip().lower()[:150]
    where = counted_address(address)
    return {f"user:{name}|ip:{where}": USER_FROM_ADDRESS, f"ip:{where}": ADDRESS}


def sign_in_refusal(*, username: str, address: str | None, now: datetime | None = None) -> str:
    """Why this attempt is refused before the password is even checked, or ""."""
    now = now or timezone.now()
    keys = _keys(username, address)
    blocked = list(
        SignInThrottle.objects.filter(key__in=keys, locked_until__gt=now).values_list(
            "key", "locked_until"
        )
    )
    if not blocked:
        return ""
    until = max(locked_until for _, locked_until in blocked)
    whom = (
        "for this username from your address"
        if any(key.startswith("user:") for key, _ in blocked)
        else "from your address"
    )
    return (
        f"Too many failed sign-ins {whom}. Try again after {until:%H:%M} UTC, or ask an "
        "administrator to lift the block (Admin → Sign-in throttles)."
    )


def sign_in_failure_record(
    *, username: str, address: str | None, now: datetime | None = None
) -> None:
    """Count a failed attempt on both keys; block a key that reached its limit."""
    now = now or timezone.now()
    for key, limit in _keys(username, address).items():
        _count_failure(key, limit, now)


def _count_failure(key: str, limit: Limit, now: datetime) -> None:
    for _ in range(2):  # a concurrent first failure may create the row first
        try:
            with transaction.atomic():
                row = SignInThrottle.objects.select_for_update().filter(key=key).first()
                if row is None:
                    row = SignInThrottle(key=key, window_started_at=now)
                if row.window_started_at <= now - limit.window:
                    row.failures = 0  # the window is over: count afresh
                    row.window_started_at = now
                row.failures += 1
                row.last_failure_at = now
                if row.failures >= limit.failures:
                    row.locked_until = now + limit.block
                row.save()
            return
        except IntegrityError:
            continue


def sign_in_success_record(*, username: str, address: str | None) -> None:
    """A right password from this address: its earlier mistakes no longer count."""
    key = next(iter(_keys(username, address)))
    SignInThrottle.objects.filter(key=key).delete()


def _refuse_if_blocked(form: forms.Form, username: str) -> str | None:
    """Raise the form's "throttled" error when this username or address is blocked;
    else return the client's address (the key a failure will be counted under)."""
    request = getattr(form, "request", None)
    address = client_address(request) if request is not None else None
    reason = sign_in_refusal(username=username, address=address)
    if reason:
        raise forms.ValidationError(
            form.error_messages["throttled"], code="throttled", params={"reason": reason}
        )
    return address


class ThrottledSignIn:
    """Mixin for Django's authentication forms: refuse a blocked key before the
    password is checked, count a wrong password, forget the count on success."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "%(reason)s",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = _refuse_if_blocked(self, username)
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            # A wrong password, not a right one refused for another reason (an
            # inactive account; the admin's page, for a user who is not staff).
            if self.get_user() is None:
                sign_in_failure_record(username=username, address=address)
            raise
        if self.get_user() is not None:
            # A password was checked and right (a form with a field left empty
            # checks none, and must not clear the count).
            sign_in_success_record(username=username, address=address)
        return cleaned


class SignInForm(ThrottledSignIn, AuthenticationForm):
    """The sign-in page's form (every active user)."""


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    """The admin's login form (staff only), throttled the same way."""

    error_messages = {**AdminAuthenticationForm.error_messages, "throttled": "%(reason)s"}


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """The password change form, with the old password counted as a sign-in: a
    session left open (or stolen) must not let anyone guess the password behind it
    at the speed of the server, and change it once found. Same keys and limits as
    signing in: a block here also blocks signing in as this user from the address."""

    error_messages = {**PasswordChangeForm.error_messages, "throttled": "%(reason)s"}

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        username = self.user.get_username()
        address = _refuse_if_blocked(self, username)
        try:
            old_password = super().clean_old_password()
        except forms.ValidationError:
            sign_in_failure_record(username=username, address=address)
            raise
        sign_in_success_record(username=username, address=address)
        return old_password


class ThrottledPasswordChangeView(auth_views.PasswordChangeView):
    """/accounts/password/ (the admin's "Change password" leads here too)."""

    form_class = ThrottledPasswordChangeForm
    template_name = "accounts/password_change.html"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


@never_cache
@require_GET
def session_state(request: HttpRequest) -> JsonResponse:
    """Whether the browser is still signed in, for a page that holds unsaved work.

    The workflow builder asks before it posts: a session ended in another tab (or by
    a password change) would otherwise send the post to the sign-in page and lose
    what was typed. Signed in, the answer carries the current CSRF token, so a form
    rendered before signing in again (which rotates the token) still posts."""
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False, "sign_in_url": reverse("login")})
    return JsonResponse(
        {
            "signed_in": True,
            "username": request.user.get_username(),
            "csrf_token": get_token(request),
        }
    )
