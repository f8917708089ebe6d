"""The tokens page: a user lists, makes and revokes their own API tokens (same services as the API)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import services


@login_required
def tokens_page(request):
    """GET: the user's tokens. POST: make one, and show its key on this answer only."""
    created, errors = None, {}
    if request.method == "POST":
        try:
            created = services.token_create(
                user=request.user, name=request.POST.get("name", ""), days=request.POST.get("days", "")
            )
        except ValidationError as error:
            errors = error.message_dict
    context = {
        "tokens": services.token_list(user=request.user),
        "now": timezone.now(),
        "max_days": settings.GPUQ_TOKEN_MAX_DAYS,
        "created": created[0] if created else None,
        "key": created[1] if created else "",
        "errors": errors,
        "values": request.POST if errors else {},
    }
    return render(request, "accounts/tokens.html", context, status=400 if errors else 200)


@login_required
@require_POST
def token_revoke_page(request, token_id: int):
    if services.token_revoke(user=request.user, token_id=token_id):
        messages.success(request, "Token revoked: it no longer works.")
    else:
        messages.error(request, "No token of yours has this id.")
    return redirect("tokens")
