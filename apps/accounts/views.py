"""Account pages: the trader's accounts and opening another paper account."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from apps.accounts.forms import TradingAccountCreateForm
from apps.accounts.selectors import account_overviews_for_user
from apps.accounts.services import trading_account_create
from apps.core.errors import DomainError
from apps.core.forms import FORM_INVALID, apply_domain_error
from apps.core.views import render_page, toast, wants_partial


@login_required
@require_http_methods(["GET", "POST"])
def account_list(request: HttpRequest) -> HttpResponse:
    form = TradingAccountCreateForm(request.POST if request.method == "POST" else None)
    status = 200
    created = None
    if form.is_bound:
        if form.is_valid():
            try:
                created = trading_account_create(
                    owner=request.user,
                    name=form.cleaned_data["name"],
                    cash=form.cleaned_data["cash"],
                )
            except DomainError as exc:
                status = apply_domain_error(form, exc)
        else:
            status = FORM_INVALID
    if created is not None:
        if not wants_partial(request):
            messages.success(request, f"Opened {created.name}.")
            return redirect("accounts:list")
        form = TradingAccountCreateForm()
    context = {"overviews": account_overviews_for_user(user=request.user), "form": form}
    response = render_page(
        request,
        "accounts/account_list.html",
        "accounts/partials/_accounts_panel.html",
        context,
        status=status,
    )
    if created is not None:
        toast(response, f"Opened {created.name}.")
    return response
