"""Server-rendered pages. Each one authorizes, calls a selector and renders."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from scheduling import selectors


@login_required
def queue_page(request):
    view = selectors.queue()
    return render(
        request,
        "scheduling/queue.html",
        {
            "running": view.running,
            "pending": view.pending,
            "held": view.held,
            "stats": selectors.queue_stats(),
        },
    )
