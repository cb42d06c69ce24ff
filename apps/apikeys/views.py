"""API key pages: the key list with the add form, one key with its edit, verify and rotate
forms (results inline over HTMX), its rotation history, usage and audit trail.

Each view validates a form, calls one service or selector and renders. Another user's key id
answers 404, and the attempt is audited. Refusals HTMX should show inline (rate limits, Alpaca
unavailable) answer 409 here so the fragment is swapped in; the API answers 429/503.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.apikeys.audit import Action, AuditContext, Channel, audit_context
from apps.apikeys.forms import ApiKeyCreateForm, ApiKeyRotateForm, ApiKeyUpdateForm
from apps.apikeys.models import ApiKey
from apps.apikeys.ratelimit import RateLimited
from apps.apikeys.selectors import (
    api_key_for_user,
    api_key_history,
    api_key_usage,
    api_keys_for_user,
    audit_entries_for_key,
)
from apps.apikeys.services import (
    api_key_access_refused,
    api_key_create,
    api_key_delete,
    api_key_list_viewed,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
    api_key_verify,
    api_key_viewed,
)
from apps.core.errors import DomainError
from apps.core.forms import FORM_INVALID, apply_domain_error
from apps.core.views import render_page, toast, trigger, wants_partial

AUDIT_PER_PAGE = 25
CHANGED = "apikeys-changed"
_SECRET_FIELDS = ("key_id", "secret_key")


def _context(request: HttpRequest) -> AuditContext:
    return audit_context(request, Channel.PAGE)


def _swap_status(status: int) -> int:
    # The page's HTMX swaps 409/422 fragments; other refusals (429, 503) are shown inline as 409.
    return status if status in (409, FORM_INVALID) else 409


def _refused(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    response = render(request, "apikeys/refused.html", {"message": exc.message}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


def _own_key(request: HttpRequest, pk: int, action: str) -> ApiKey:
    key = api_key_for_user(user=request.user, pk=pk)
    if key is None:
        api_key_access_refused(requested_id=pk, action=action, context=_context(request))
        raise Http404("No such API key.")
    return key


def _rate_limited_pages(view):
    """A lockout (too many failed attempts) answers a small 429 page on every key page."""

    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except RateLimited as exc:
            if exc.code != "too_many_failures":
                raise
            return _refused(request, exc)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


# --- list + add -----------------------------------------------------------------------------


@sensitive_variables()
@sensitive_post_parameters(*_SECRET_FIELDS)
@login_required
@require_http_methods(["GET", "POST"])
@_rate_limited_pages
def key_list(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None, user=request.user)
    status = 200
    created = None
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            try:
                created = api_key_create(
                    owner=request.user,
                    name=data["name"],
                    environment=data["environment"],
                    key_id=data["key_id"],
                    secret_key=data["secret_key"],
                    account=data["account"],
                    expires_at=form.expires_at,
                    verify=data["verify"],
                    context=_context(request),
                )
            except DomainError as exc:
                if exc.code == "too_many_failures":
                    raise
                status = _swap_status(apply_domain_error(form, exc))
        else:
            status = FORM_INVALID
    if created is not None:
        if not wants_partial(request):
            messages.success(request, f"Stored {created.name}.")
            return redirect("apikeys:detail", pk=created.pk)
        form = ApiKeyCreateForm(user=request.user)
    api_key_list_viewed(owner=request.user, context=_context(request))
    context = {"keys": api_keys_for_user(user=request.user), "form": form}
    response = render_page(
        request,
        "apikeys/key_list.html",
        "apikeys/partials/_keys_panel.html",
        context,
        status=status,
    )
    if created is not None:
        toast(response, f"Stored {created.name} ({created.key_id_masked}).")
    return response


# --- one key --------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, key: ApiKey, **extra) -> dict:
    page = Paginator(audit_entries_for_key(api_key=key), AUDIT_PER_PAGE).get_page(1)
    context = {
        "key": key,
        "history": api_key_history(api_key=key),
        "usage": api_key_usage(api_key=key),
        "audit_page": page,
        "edit_form": ApiKeyUpdateForm.for_key(key, user=request.user),
        "rotate_form": ApiKeyRotateForm(),
    }
    context.update(extra)
    return context


@login_required
@require_GET
@_rate_limited_pages
def key_detail(request: HttpRequest, pk: int) -> HttpResponse:
    key = _own_key(request, pk, Action.VIEW)
    api_key_viewed(api_key=key, context=_context(request))
    return render_page(
        request,
        "apikeys/key_detail.html",
        "apikeys/partials/_key_summary.html",
        _detail_context(request, key),
    )


@login_required
@require_POST
@_rate_limited_pages
def key_edit(request: HttpRequest, pk: int) -> HttpResponse:
    key = _own_key(request, pk, Action.UPDATE)
    form = ApiKeyUpdateForm.for_key(key, user=request.user, data=request.POST)
    status = 200
    updated = None
    if form.is_valid():
        try:
            updated = api_key_update(
                api_key=key,
                name=form.cleaned_data["name"],
                environment=form.cleaned_data["environment"],
                account=form.cleaned_data["account"],
                expires_at=form.expires_at,
                context=_context(request),
            )
        except DomainError as exc:
            if exc.code == "too_many_failures":
                raise
            status = _swap_status(apply_domain_error(form, exc))
    else:
        status = FORM_INVALID
    if updated is not None and not wants_partial(request):
        messages.success(request, f"Saved {updated.name}.")
        return redirect("apikeys:detail", pk=key.pk)
    shown = updated or key
    if updated is not None:
        form = ApiKeyUpdateForm.for_key(updated, user=request.user)
    response = render(
        request,
        "apikeys/partials/_edit_form.html",
        {"key": shown, "edit_form": form},
        status=status,
    )
    if updated is not None:
        toast(response, f"Saved {updated.name}.")
        trigger(response, CHANGED)
    return response


@login_required
@require_POST
@_rate_limited_pages
def key_verify(request: HttpRequest, pk: int) -> HttpResponse:
    key = _own_key(request, pk, Action.VERIFY)
    status = 200
    try:
        result = api_key_verify(api_key=key, context=_context(request))
        context = {"key": result.api_key, "result": result}
    except DomainError as exc:
        if exc.code == "too_many_failures":
            raise
        status = _swap_status(exc.status_code)
        context = {"key": key, "error": exc.message, "error_code": exc.code}
    if not wants_partial(request):
        if status == 200:
            messages.success(request, context["result"].message)
        else:
            messages.error(request, context["error"])
        return redirect("apikeys:detail", pk=key.pk)
    response = render(request, "apikeys/partials/_verify_result.html", context, status=status)
    if status == 200:
        trigger(response, CHANGED)
    return response


@sensitive_variables()
@sensitive_post_parameters(*_SECRET_FIELDS)
@login_required
@require_POST
@_rate_limited_pages
def key_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    key = _own_key(request, pk, Action.ROTATE)
    form = ApiKeyRotateForm(request.POST)
    status = 200
    new = None
    if form.is_valid():
        try:
            new = api_key_rotate(
                api_key=key,
                key_id=form.cleaned_data["key_id"],
                secret_key=form.cleaned_data["secret_key"],
                verify=form.cleaned_data["verify"],
                context=_context(request),
            )
        except DomainError as exc:
            if exc.code == "too_many_failures":
                raise
            status = _swap_status(apply_domain_error(form, exc))
    else:
        status = FORM_INVALID
    if new is not None and not wants_partial(request):
        messages.success(request, f"Rotated: {new.name} now uses {new.key_id_masked}.")
        return redirect("apikeys:detail", pk=new.pk)
    context = {"key": key, "rotate_form": ApiKeyRotateForm() if new else form, "new_key": new}
    response = render(request, "apikeys/partials/_rotate_form.html", context, status=status)
    if new is not None:
        toast(response, f"Rotated: {new.name} now uses {new.key_id_masked}.")
        trigger(response, CHANGED)
    return response


def _retire(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    key = _own_key(request, pk, action)
    service = api_key_revoke if action == Action.REVOKE else api_key_delete
    try:
        key = service(api_key=key, context=_context(request))
    except DomainError as exc:
        if exc.code == "too_many_failures":
            raise
        messages.error(request, exc.message)
        target = reverse("apikeys:detail", args=[key.pk])
    else:
        verb = "Revoked" if action == Action.REVOKE else "Deleted"
        messages.success(request, f"{verb} {key.name}.")
        target = (
            reverse("apikeys:list")
            if action == Action.DELETE
            else reverse("apikeys:detail", args=[key.pk])
        )
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(target)
    return redirect(target)


@login_required
@require_POST
@_rate_limited_pages
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    return _retire(request, pk, Action.REVOKE)


@login_required
@require_POST
@_rate_limited_pages
def key_delete(request: HttpRequest, pk: int) -> HttpResponse:
    return _retire(request, pk, Action.DELETE)


@login_required
@require_GET
@_rate_limited_pages
def key_audit(request: HttpRequest, pk: int) -> HttpResponse:
    key = _own_key(request, pk, Action.AUDIT)
    api_key_viewed(api_key=key, context=_context(request), action=Action.AUDIT)
    page = Paginator(audit_entries_for_key(api_key=key), AUDIT_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "apikeys/partials/_audit_table.html", {"key": key, "audit_page": page})
