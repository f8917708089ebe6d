"""Login lockout for /accounts/login/ and /admin/login/: after GPUQ_LOGIN_MAX_FAILURES failed logins for
one username, or from one address, within GPUQ_LOGIN_LOCKOUT_SECONDS, further attempts are answered 429
(with Retry-After), even with the right password, until enough failures have left the window.

Failures are counted from Django's `user_login_failed` signal (both login forms call `authenticate`); a
successful login clears its username's count, never its address's.
"""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.shortcuts import render
from django.urls import reverse

from accounts.throttling import FailureWindow, client_address


def _windows() -> tuple[FailureWindow, FailureWindow]:
    limit, seconds = settings.GPUQ_LOGIN_MAX_FAILURES, settings.GPUQ_LOGIN_LOCKOUT_SECONDS
    return FailureWindow("login-user", limit, seconds), FailureWindow("login-address", limit, seconds)


def _username_key(username: str) -> str:
    return username.strip().lower()


def login_wait(request, username: str) -> int | None:
    """Seconds until a login for `username` from this request's address may be tried, or None: now."""
    by_user, by_address = _windows()
    waits = [by_user.wait(_username_key(username)), by_address.wait(client_address(request))]
    waits = [w for w in waits if w is not None]
    return max(waits) if waits else None


@receiver(user_login_failed, dispatch_uid="gpuq-login-failed")
def _record_failure(sender, credentials, request=None, **kwargs):
    by_user, by_address = _windows()
    by_user.record(_username_key(str(credentials.get("username", ""))))
    if request is not None:
        by_address.record(client_address(request))


@receiver(user_logged_in, dispatch_uid="gpuq-logged-in")
def _clear_user(sender, request, user, **kwargs):
    _windows()[0].clear(_username_key(user.get_username()))


class LoginLockoutMiddleware:
    """Refuses a login POST during a lockout, before the form checks the password."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path in (settings.LOGIN_URL, reverse("admin:login")):
            wait = login_wait(request, request.POST.get("username", ""))
            if wait is not None:
                response = render(request, "registration/locked.html", {"wait": wait}, status=429)
                response["Retry-After"] = str(wait)
                return response
        return self.get_response(request)
