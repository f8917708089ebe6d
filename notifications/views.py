"""The notifications page: a user chooses, per kind, e-mail and webhook, and sets their webhook (same
services as the API); a new signing secret is shown on the answer that made it, only."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import render

from notifications import services
from notifications.models import Format


@login_required
def notifications_page(request):
    """GET: the user's settings. POST: save the form's channels and webhook."""
    secret, errors, saved = None, {}, False
    if request.method == "POST":
        form = request.POST
        changes = {
            row["kind"]: {c: f"{c}_{row['kind']}" in form for c in ("email", "webhook")}
            for row in services.preferences_of(request.user)
        }
        try:
            with transaction.atomic():
                services.preferences_set(user=request.user, changes=changes)
                url = form.get("url", "").strip()
                if form.get("remove"):
                    services.webhook_remove(user=request.user)
                elif url:
                    _, secret = services.webhook_set(
                        user=request.user,
                        url=url,
                        format=form.get("format", Format.JSON),
                        enabled="enabled" in form,
                        rotate_secret="rotate" in form,
                    )
            saved = True
        except ValidationError as error:
            errors = error.message_dict
    context = {
        "kinds": services.preferences_of(request.user),
        "webhook": request.user.webhooks.first(),
        "formats": Format.choices,
        "secret": secret,
        "errors": errors,
        "saved": saved,
    }
    return render(request, "notifications/settings.html", context, status=400 if errors else 200)
