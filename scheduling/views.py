"""Server-rendered pages. Each one authorizes, calls a selector and renders."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from scheduling import selectors


@login_required
def queue_page(request):
    view = selectors.queue()
    fragment = request.GET.get("fragment") == "1"  # the live page refetches just its body
    return render(
        request,
        "scheduling/_queue_body.html" if fragment else "scheduling/queue.html",
        {
            "running": view.running,
            "pending": view.pending,
            "held": view.held,
            "stats": selectors.queue_stats(),
        },
    )
