"""Notification pages: the centre (filters, read marks, open the related object), the header
dropdown, and the preferences page (contact details, quiet hours, daily summary, the channel
matrix, test sends, web push on this browser).

Each view validates its input with a form, calls one service or selector and renders the page,
or only the partial when HTMX asks for it. Another user's notification id answers 404.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.apikeys.fields import reveal
from apps.core.errors import DomainError
from apps.core.forms import FORM_INVALID, apply_domain_error
from apps.core.views import render_page, toast, trigger, wants_partial
from apps.notifications import selectors, services
from apps.notifications.forms import (
    NotificationFilterForm,
    NotificationSettingsForm,
    TestChannelForm,
    enabled_pairs,
)
from apps.notifications.models import Channel

PER_PAGE = 25
CHANGED = "notifications-changed"


def _with_query(url: str, request: HttpRequest) -> str:
    query = request.GET.urlencode()
    return f"{url}?{query}" if query else url


def _centre_context(request: HttpRequest) -> dict:
    form = NotificationFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound else {}
    notifications = selectors.notifications_search(user=request.user, **filters)
    page_obj = Paginator(notifications, PER_PAGE).get_page(request.GET.get("page"))
    return {
        "filter_form": form,
        "page_obj": page_obj,
        "notifications": page_obj.object_list,
        "filtered": any(value is not None for value in filters.values()),
        "unread_count": selectors.unread_count(user=request.user),
        "refresh_url": _with_query(reverse("notifications:centre"), request),
        "base_url": reverse("notifications:centre"),
    }


@login_required
@require_GET
def centre(request: HttpRequest) -> HttpResponse:
    return render_page(
        request,
        "notifications/centre.html",
        "notifications/partials/_list.html",
        _centre_context(request),
    )


@login_required
@require_GET
def dropdown(request: HttpRequest) -> HttpResponse:
    """The header dropdown's content: the latest few and the unread count."""
    context = {
        "latest": selectors.latest_for_dropdown(user=request.user),
        "unread_count": selectors.unread_count(user=request.user),
    }
    return render_page(request, "notifications/partials/_dropdown.html", None, context)


@login_required
@require_GET
def open_notification(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark read and go where the notification leads (the order, rule, backtest ...)."""
    notification = get_object_or_404(selectors.notifications_for_user(user=request.user), pk=pk)
    services.notification_mark_read(user=request.user, notification=notification)
    target = notification.link
    if not target or not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = f"{reverse('notifications:centre')}#notification-{notification.pk}"
    return redirect(target)


def _row_response(request: HttpRequest, notification, message: str) -> HttpResponse:
    if not wants_partial(request):
        return redirect(request.POST.get("next") or reverse("notifications:centre"))
    response = render_page(
        request,
        "notifications/centre.html",
        "notifications/partials/_row.html",
        {"n": notification},
    )
    return toast(trigger(response, CHANGED), message)


@login_required
@require_POST
def mark_read(request: HttpRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(selectors.notifications_for_user(user=request.user), pk=pk)
    notification = services.notification_mark_read(user=request.user, notification=notification)
    return _row_response(request, notification, "Marked read.")


@login_required
@require_POST
def mark_unread(request: HttpRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(selectors.notifications_for_user(user=request.user), pk=pk)
    notification = services.notification_mark_unread(user=request.user, notification=notification)
    return _row_response(request, notification, "Marked unread.")


@login_required
@require_POST
def read_all(request: HttpRequest) -> HttpResponse:
    count = services.notifications_mark_read(user=request.user)
    text = f"{count} notification{'s' if count != 1 else ''} marked read."
    if not wants_partial(request):
        messages.success(request, text)
        return redirect(reverse("notifications:centre"))
    response = HttpResponse(status=204)
    return toast(trigger(response, CHANGED), text)


# --- preferences ---------------------------------------------------------------------------


def _preferences_context(request: HttpRequest, form: NotificationSettingsForm | None = None):
    row = selectors.notification_settings_or_default(user=request.user)
    return {
        "form": form or NotificationSettingsForm(instance=row),
        "settings_row": row,
        "email_effective": selectors.email_address(user=request.user, settings_row=row),
        "webhook_secret": (reveal(row, "webhook_secret") if row.pk else None) or "",
        "matrix": selectors.preference_matrix(user=request.user),
        "channels": Channel.choices,
        "subscriptions": selectors.push_subscriptions_for_user(user=request.user),
        "push_available": selectors.push_available(),
        "vapid_public_key": settings.VAPID_PUBLIC_KEY,
        "time_zone": request.user.time_zone,
    }


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    status = 200
    form = None
    if request.method == "POST":
        row = selectors.notification_settings_or_default(user=request.user)
        form = NotificationSettingsForm(request.POST, instance=row)
        if form.is_valid():
            try:
                fields = NotificationSettingsForm.Meta.fields
                services.notification_settings_update(
                    user=request.user, **{name: form.cleaned_data[name] for name in fields}
                )
            except DomainError as exc:
                status = apply_domain_error(form, exc)
            else:
                if not wants_partial(request):
                    messages.success(request, "Notification settings saved.")
                    return redirect("notifications:preferences")
                form = None
                response = render_page(
                    request,
                    "notifications/preferences.html",
                    "notifications/partials/_settings_form.html",
                    _preferences_context(request),
                )
                return toast(response, "Notification settings saved.")
        else:
            status = FORM_INVALID
    return render_page(
        request,
        "notifications/preferences.html",
        "notifications/partials/_settings_form.html",
        _preferences_context(request, form),
        status=status,
    )


@login_required
@require_POST
def preferences_channels(request: HttpRequest) -> HttpResponse:
    services.notification_preferences_save(user=request.user, enabled=enabled_pairs(request.POST))
    if not wants_partial(request):
        messages.success(request, "Channels saved.")
        return redirect("notifications:preferences")
    response = render_page(
        request,
        "notifications/preferences.html",
        "notifications/partials/_matrix.html",
        _preferences_context(request),
    )
    return toast(response, "Channels saved.")


@login_required
@require_POST
def test_send(request: HttpRequest) -> HttpResponse:
    form = TestChannelForm(request.POST)
    if not form.is_valid():
        raise Http404("No such channel.")
    channel = form.cleaned_data["channel"]
    label = Channel(channel).label
    try:
        services.notification_test_send(user=request.user, channel=channel)
    except DomainError as exc:
        text, level = exc.message, "error"
    else:
        text, level = f"Test message sent to {label}.", "success"
    if not wants_partial(request):
        messages.add_message(
            request, messages.SUCCESS if level == "success" else messages.ERROR, text
        )
        return redirect("notifications:preferences")
    return toast(HttpResponse(status=204), text, level)


@login_required
@require_POST
def rotate_webhook_secret(request: HttpRequest) -> HttpResponse:
    services.notification_settings_rotate_webhook_secret(user=request.user)
    if not wants_partial(request):
        messages.success(request, "New webhook signing secret created.")
        return redirect("notifications:preferences")
    response = render_page(
        request,
        "notifications/preferences.html",
        "notifications/partials/_webhook_secret.html",
        _preferences_context(request),
    )
    return toast(response, "New webhook signing secret created. Update your receiver.")


@login_required
@require_POST
def push_delete(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = get_object_or_404(
        selectors.push_subscriptions_for_user(user=request.user), pk=pk
    )
    services.push_subscription_unregister(user=request.user, subscription=subscription)
    if not wants_partial(request):
        messages.success(request, "Browser removed from web push.")
        return redirect("notifications:preferences")
    response = render_page(
        request,
        "notifications/preferences.html",
        "notifications/partials/_push_devices.html",
        _preferences_context(request),
    )
    return toast(response, "Browser removed from web push.")


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """The push service worker, served under /notifications/ so it may show notifications
    for the whole site's pages that link there."""
    path = finders.find("notifications/sw.js")
    if not path:
        raise Http404("No service worker.")
    with open(path, encoding="utf-8") as handle:
        response = HttpResponse(handle.read(), content_type="text/javascript")
    response["Service-Worker-Allowed"] = "/"
    response["Cache-Control"] = "no-cache"
    return response
