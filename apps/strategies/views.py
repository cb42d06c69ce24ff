"""Strategy pages: list, create and edit (parameter fields follow the chosen kind, sizing fields
the chosen sizing method; the edit page also shows the strategy's latest signals), delete, and
the quick off/paper/live switch. Validation is the strategy services' job."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import ProtectedError, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.core.errors import DomainError
from apps.core.forms import FORM_INVALID, apply_domain_error
from apps.core.views import render_page, toast, wants_partial
from apps.execution.selectors import signals_latest_for_strategy
from apps.strategies.domain.registry import strategy_kinds
from apps.strategies.forms import (
    KindForm,
    ModeForm,
    SizingMethodForm,
    StrategyForm,
    param_field_name,
)
from apps.strategies.models import Strategy
from apps.strategies.services import strategy_create, strategy_delete, strategy_update

LATEST_SIGNALS = 10


def _strategies(request: HttpRequest) -> QuerySet[Strategy]:
    return (
        Strategy.objects.filter(owner=request.user)
        .select_related("account")
        .prefetch_related("instruments")
        .order_by("name")
    )


def _kind_labels() -> dict[str, str]:
    return {kind.kind: kind.label for kind in strategy_kinds()}


def _saved(request: HttpRequest, message: str) -> HttpResponse:
    messages.success(request, message)
    if wants_partial(request):
        return HttpResponseClientRedirect(reverse("strategies:list"))
    return redirect("strategies:list")


def _form_page(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    return render_page(
        request,
        "strategies/strategy_form.html",
        "strategies/partials/_strategy_form.html",
        context,
        status=status,
    )


@login_required
@require_GET
def strategy_list(request: HttpRequest) -> HttpResponse:
    context = {
        "strategies": _strategies(request),
        "kind_labels": _kind_labels(),
        "modes": Strategy.Mode.choices,
    }
    return render_page(request, "strategies/strategy_list.html", None, context)


@login_required
@require_http_methods(["GET", "POST"])
def strategy_create_view(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "GET":
        form = StrategyForm(user=request.user, kind=request.GET.get("kind"))
    else:
        form = StrategyForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                strategy = strategy_create(owner=request.user, **form.service_arguments())
            except DomainError as exc:
                status = apply_domain_error(form, exc, field_map=param_field_name)
            else:
                return _saved(request, f"Created {strategy.name}.")
        else:
            status = FORM_INVALID
    context = {"form": form, "strategy": None, "form_action": reverse("strategies:create")}
    return _form_page(request, context, status)


@login_required
@require_http_methods(["GET", "POST"])
def strategy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(_strategies(request), pk=pk)
    status = 200
    if request.method == "GET":
        form = StrategyForm(user=request.user, strategy=strategy)
    else:
        form = StrategyForm(request.POST, user=request.user, strategy=strategy)
        if form.is_valid():
            try:
                strategy = strategy_update(strategy=strategy, **form.service_arguments())
            except DomainError as exc:
                status = apply_domain_error(form, exc, field_map=param_field_name)
                strategy.refresh_from_db()  # the service may have changed the instance
            else:
                return _saved(request, f"Saved {strategy.name}.")
        else:
            status = FORM_INVALID
    context = {
        "form": form,
        "strategy": strategy,
        "form_action": reverse("strategies:edit", args=[strategy.pk]),
        "signals": signals_latest_for_strategy(strategy=strategy, limit=LATEST_SIGNALS),
    }
    return _form_page(request, context, status)


@login_required
@require_GET
def param_fields(request: HttpRequest) -> HttpResponse:
    """The parameter fields of one kind (the kind select asks for them when it changes)."""
    query = KindForm(request.GET)
    query.is_valid()
    strategy = None
    strategy_id = query.cleaned_data.get("strategy")
    if strategy_id:
        strategy = get_object_or_404(_strategies(request), pk=strategy_id)
    form = StrategyForm(user=request.user, strategy=strategy, kind=query.cleaned_data.get("kind"))
    return render_page(
        request,
        "strategies/strategy_form.html",
        "strategies/partials/_param_fields.html",
        {"form": form, "strategy": strategy},
    )


@login_required
@require_GET
def sizing_fields(request: HttpRequest) -> HttpResponse:
    """The parameter fields of one sizing method (the method select asks when it changes)."""
    query = SizingMethodForm(request.GET)
    query.is_valid()
    strategy = None
    strategy_id = query.cleaned_data.get("strategy")
    if strategy_id:
        strategy = get_object_or_404(_strategies(request), pk=strategy_id)
    form = StrategyForm(
        user=request.user,
        strategy=strategy,
        sizing_method=query.cleaned_data.get("sizing_method"),
    )
    return render_page(
        request,
        "strategies/strategy_form.html",
        "strategies/partials/_sizing_fields.html",
        {"form": form, "strategy": strategy},
    )


@login_required
@require_http_methods(["GET", "POST"])
def strategy_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(_strategies(request), pk=pk)
    if request.method == "POST":
        name = strategy.name
        try:
            strategy_delete(strategy=strategy)
        except ProtectedError:
            messages.error(
                request,
                f"{name} is referenced by other records and cannot be deleted; "
                "switch it off instead.",
            )
            return redirect("strategies:list")
        return _saved(request, f"Deleted {name}.")
    return render_page(
        request, "strategies/strategy_confirm_delete.html", None, {"strategy": strategy}
    )


@login_required
@require_POST
def strategy_mode(request: HttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(_strategies(request), pk=pk)
    form = ModeForm(request.POST)
    error, status = None, 200
    if form.is_valid():
        try:
            strategy = strategy_update(strategy=strategy, mode=form.cleaned_data["mode"])
        except DomainError as exc:
            error, status = exc.message, exc.status_code
            strategy.refresh_from_db()
    else:
        error, status = "Choose off, paper or live.", FORM_INVALID
    if not wants_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(
                request, f"{strategy.name} is now {strategy.get_mode_display().lower()}."
            )
        return redirect("strategies:list")
    context = {
        "s": strategy,
        "kind_labels": _kind_labels(),
        "modes": Strategy.Mode.choices,
        "row_error": error,
    }
    response = render_page(
        request,
        "strategies/strategy_list.html",
        "strategies/partials/_strategy_row.html",
        context,
        status=status,
    )
    if error:
        return toast(response, error, "error")
    return toast(response, f"{strategy.name} is now {strategy.get_mode_display().lower()}.")
