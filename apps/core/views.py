"""Health endpoint, and the small helpers every HTMX page view shares."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.http import trigger_client_event


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and the run command."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def wants_partial(request: HttpRequest) -> bool:
    """True for an HTMX request that swaps a fragment (not a boosted link or history restore)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page(
    request: HttpRequest,
    page: str,
    partial: str | None,
    context: dict,
    *,
    status: int = 200,
) -> HttpResponse:
    """The whole page, or only ``partial`` when HTMX asks for a fragment of it."""
    template = partial if partial and wants_partial(request) else page
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


def toast(response: HttpResponse, message: str, level: str = "success") -> HttpResponse:
    """Ask the page to show a short notice (see static/js/app.js)."""
    return trigger_client_event(response, "toast", {"message": message, "level": level})


def trigger(response: HttpResponse, *names: str) -> HttpResponse:
    """Fire events on the page so the partials listening to them refresh themselves."""
    for name in names:
        trigger_client_event(response, name, {})
    return response
