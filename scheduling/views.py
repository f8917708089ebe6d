"""Server-rendered pages. Each one authorizes, calls a selector and renders."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from scheduling import selectors


@login_required
def queue_page(request):
    running, pending = selectors.queue()
    return render(request, "scheduling/queue.html", {"running": running, "pending": pending})
