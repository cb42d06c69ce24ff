"""Trading pages: the order ticket and blotter, order details (cancel, modify), positions, the
journal (with performance attribution and a CSV export) and the strategies' signals.

Each view validates its input with a form, calls one service or selector and renders a page,
or only the partial when HTMX asks for it. Writes go through ``apps.execution.services``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from apps.accounts.selectors import position_rows_for_user, position_totals
from apps.core.errors import DomainError
from apps.core.forms import FORM_INVALID, apply_domain_error
from apps.core.templatetags.trading import user_tz
from apps.core.views import render_page, toast, trigger, wants_partial
from apps.execution.forms import (
    AccountFilterForm,
    JournalFilterForm,
    OrderFilterForm,
    OrderForm,
    OrderReplaceForm,
    SignalFilterForm,
    TradeNotesForm,
    order_modifiable,
)
from apps.execution.models import Order, OrderSource, OrderStatus
from apps.execution.selectors import (
    ATTRIBUTION_DIMENSIONS,
    journal_csv,
    journal_summary,
    order_detail_for_user,
    orders_for_user,
    orders_search,
    signals_search,
    trade_attribution,
    trades_for_user,
    trades_search,
)
from apps.execution.services import order_cancel, order_replace, order_submit, trade_annotate
from apps.marketdata.selectors import instruments_tradable
from apps.risk.services import RiskRejected

ORDERS_PER_PAGE = 25
TRADES_PER_PAGE = 50
SIGNALS_PER_PAGE = 50
ATTRIBUTION_TITLES = {
    "strategy": "By strategy",
    "symbol": "By symbol",
    "direction": "By side",
    "tag": "By tag",
}
LIVE_EVENTS = ("orders-changed", "positions-changed", "account-changed")


def _with_query(url: str, request: HttpRequest) -> str:
    query = request.GET.urlencode()
    return f"{url}?{query}" if query else url


def _account_filter_or_404(form, names: Iterable[str] = ("account", "strategy")) -> None:
    # Another user's account or strategy (or junk) in the query answers 404, like any foreign
    # object id.
    if form.is_bound and not form.is_valid():
        for name in names:
            if name in form.errors:
                raise Http404(f"No such {name}.")


def streaming_csv(lines: Iterable[str], *, filename: str) -> StreamingHttpResponse:
    """A CSV download sent as it is produced (a large journal never sits in memory)."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def journal_filename() -> str:
    return f"journal-{timezone.now():%Y%m%d-%H%M%S}.csv"


def _blotter(request: HttpRequest) -> dict:
    """Context of the orders table: filters from the query string, one page of orders."""
    filter_form = OrderFilterForm(request.GET or None, user=request.user)
    _account_filter_or_404(filter_form)
    filters = filter_form.filters() if filter_form.is_bound else {}
    page_obj = Paginator(orders_search(user=request.user, **filters), ORDERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return {
        "filter_form": filter_form,
        "page_obj": page_obj,
        "orders": page_obj.object_list,
        "orders_refresh_url": _with_query(reverse("execution:orders"), request),
        "orders_base_url": reverse("execution:orders"),
        "filtered": any(filters.values()),
    }


def _ticket_context(
    form: OrderForm, placed: Order | None = None, risk_decision: dict | None = None
) -> dict:
    return {
        "order_form": form,
        "placed": placed,
        # A refusal of the risk checks: every check with its value and limit, under the form.
        "risk_decision": risk_decision,
        "symbols": instruments_tradable().values_list("symbol", flat=True)[:1000],
    }


def _ticket_initial(request: HttpRequest) -> dict:
    initial = {}
    if request.GET.get("trade"):
        initial["symbol"] = request.GET["trade"].strip().upper()[:32]
    if request.GET.get("account", "").isdigit():
        initial["account"] = int(request.GET["account"])
    return initial


@login_required
@require_GET
def orders(request: HttpRequest) -> HttpResponse:
    context = _blotter(request)
    context.update(_ticket_context(OrderForm(user=request.user, initial=_ticket_initial(request))))
    return render_page(
        request, "execution/orders.html", "execution/partials/_orders_table.html", context
    )


@login_required
@require_POST
def order_create(request: HttpRequest) -> HttpResponse:
    form = OrderForm(request.POST, user=request.user)
    status, order, risk_decision = 200, None, None
    if form.is_valid():
        try:
            order = order_submit(
                account=form.cleaned_data["account"],
                intent=form.intent(),
                source=OrderSource.MANUAL,
            )
        except DomainError as exc:
            status = apply_domain_error(form, exc)
            if isinstance(exc, RiskRejected):
                risk_decision = exc.decision.as_dict()
    else:
        status = FORM_INVALID

    if order is not None:
        if not wants_partial(request):
            level = messages.ERROR if order.status == OrderStatus.REJECTED else messages.SUCCESS
            messages.add_message(
                request, level, f"Order {order.pk}: {order.get_status_display().lower()}."
            )
            return redirect(f"{reverse('execution:orders')}?account={order.account_id}")
        # A fresh ticket for the next order, set up like the last one but without a quantity.
        keep = ("account", "symbol", "side", "order_type", "time_in_force")
        form = OrderForm(user=request.user, initial={k: form.cleaned_data[k] for k in keep})

    if wants_partial(request):
        response = render_page(
            request,
            "execution/orders.html",
            "execution/partials/_order_form.html",
            _ticket_context(form, order, risk_decision),
            status=status,
        )
        return trigger(response, *LIVE_EVENTS) if order is not None else response
    context = _blotter(request)
    context.update(_ticket_context(form, risk_decision=risk_decision))
    return render_page(request, "execution/orders.html", None, context, status=status)


@login_required
@require_GET
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(order_detail_for_user(user=request.user), pk=pk)
    return render_page(
        request,
        "execution/order_detail.html",
        "execution/partials/_order_detail.html",
        _order_detail_context(order),
    )


def _order_detail_context(order: Order, replace_form: OrderReplaceForm | None = None) -> dict:
    if replace_form is None and order_modifiable(order):
        replace_form = OrderReplaceForm(order=order)
    return {"order": order, "replace_form": replace_form if order_modifiable(order) else None}


@login_required
@require_POST
def order_replace_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The inline "modify" form of an open limit or stop order (new prices, a lower quantity).

    Success answers the refreshed order detail (the history shows the change); an error
    answers the form with the message next to the field (422, or 409 when no longer open)."""
    order = get_object_or_404(order_detail_for_user(user=request.user), pk=pk)
    form = OrderReplaceForm(request.POST, order=order)
    status = 200
    if form.is_valid():
        try:
            order_replace(
                order=order,
                source=OrderSource.MANUAL,
                reason="modified on the order page",
                **form.changes(),
            )
        except DomainError as exc:
            status = apply_domain_error(form, exc)
        else:
            message = f"Order {order.pk} modified."
            if not wants_partial(request):
                messages.success(request, message)
                return redirect("execution:order_detail", pk=order.pk)
            fresh = order_detail_for_user(user=request.user).get(pk=pk)
            response = render_page(
                request,
                "execution/order_detail.html",
                "execution/partials/_order_detail.html",
                {**_order_detail_context(fresh), "heading_oob": True},  # the page title's size
            )
            response = reswap(retarget(response, "#order-detail"), "outerHTML")
            return toast(trigger(response, *LIVE_EVENTS), message)
    else:
        status = FORM_INVALID
    order = order_detail_for_user(user=request.user).get(pk=pk)
    return render_page(
        request,
        "execution/order_detail.html",
        "execution/partials/_order_modify_form.html",
        {"order": order, "replace_form": form, "replace_open": True},
        status=status,
    )


@login_required
@require_POST
def order_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(orders_for_user(user=request.user), pk=pk)
    error, status = None, 200
    try:
        order = order_cancel(order=order, source=OrderSource.MANUAL)
    except DomainError as exc:
        error, status = exc.message, exc.status_code
        order.refresh_from_db()
    if not wants_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Order {order.pk} cancelled.")
        return redirect("execution:order_detail", pk=order.pk)
    response = render_page(
        request,
        "execution/order_detail.html",
        "execution/partials/_order_row.html",
        {"order": order, "row_error": error},
        status=status,
    )
    if error:
        return toast(response, error, "error")
    return toast(trigger(response, *LIVE_EVENTS), f"Order {order.pk} cancelled.")


@login_required
@require_GET
def positions(request: HttpRequest) -> HttpResponse:
    form = AccountFilterForm(request.GET or None, user=request.user)
    _account_filter_or_404(form)
    account = form.cleaned_data.get("account") if form.is_bound else None
    rows = position_rows_for_user(user=request.user, account=account)
    context = {
        "filter_form": form,
        "position_rows": rows,
        "totals": position_totals(rows),
        "show_account": account is None,
        "positions_refresh_url": _with_query(reverse("execution:positions"), request),
    }
    return render_page(
        request, "execution/positions.html", "execution/partials/_positions_table.html", context
    )


def _journal_trades(request: HttpRequest) -> tuple[JournalFilterForm, dict, object]:
    form = JournalFilterForm(request.GET or None, user=request.user)
    _account_filter_or_404(form)
    filters = form.filters(user_tz(request.user)) if form.is_bound else {}
    return form, filters, trades_search(user=request.user, **filters)


@login_required
@require_GET
def journal(request: HttpRequest) -> HttpResponse:
    form, filters, trades = _journal_trades(request)
    page_obj = Paginator(trades, TRADES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    export_url = reverse("execution:journal_export")
    context = {
        "filter_form": form,
        "summary": journal_summary(trades=trades),
        "attribution": [
            (by, ATTRIBUTION_TITLES[by], trade_attribution(trades=trades, by=by))
            for by in ATTRIBUTION_DIMENSIONS
        ],
        "page_obj": page_obj,
        "trades": page_obj.object_list,
        "journal_refresh_url": _with_query(reverse("execution:journal"), request),
        "journal_base_url": reverse("execution:journal"),
        "export_url": f"{export_url}?{query.urlencode()}" if query else export_url,
        "filtered": any(filters.values()),
    }
    return render_page(
        request, "execution/journal.html", "execution/partials/_journal_results.html", context
    )


@login_required
@require_GET
def journal_export(request: HttpRequest) -> HttpResponse:
    """The journal as a CSV file, narrowed by the same filters as the page."""
    _form, _filters, trades = _journal_trades(request)
    return streaming_csv(journal_csv(trades=trades), filename=journal_filename())


@login_required
@require_GET
def signals(request: HttpRequest) -> HttpResponse:
    """What each strategy decided on each bar and what became of it (ordered, rejected with
    the reason, or skipped), linked to the order it placed."""
    form = SignalFilterForm(request.GET or None, user=request.user)
    _account_filter_or_404(form, ("strategy",))
    filters = form.filters(user_tz(request.user)) if form.is_bound else {}
    page_obj = Paginator(signals_search(user=request.user, **filters), SIGNALS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "filter_form": form,
        "page_obj": page_obj,
        "signals": page_obj.object_list,
        "signals_refresh_url": _with_query(reverse("execution:signals"), request),
        "signals_base_url": reverse("execution:signals"),
        "filtered": any(filters.values()),
    }
    return render_page(
        request, "execution/signals.html", "execution/partials/_signals_table.html", context
    )


@login_required
@require_GET
def trade_row(request: HttpRequest, pk: int) -> HttpResponse:
    trade = get_object_or_404(trades_for_user(user=request.user), pk=pk)
    if not wants_partial(request):
        return redirect("execution:journal")
    return render_page(
        request, "execution/journal.html", "execution/partials/_trade_row.html", {"trade": trade}
    )


@login_required
@require_http_methods(["GET", "POST"])
def trade_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Notes and tags of one journal entry: an inline row editor (HTMX) or a small page."""
    trade = get_object_or_404(trades_for_user(user=request.user), pk=pk)
    status = 200
    if request.method == "GET":
        form = TradeNotesForm(
            initial={"notes": trade.notes, "tags": ", ".join(tag.name for tag in trade.tags.all())}
        )
    else:
        form = TradeNotesForm(request.POST)
        if form.is_valid():
            try:
                trade_annotate(trade=trade, notes=form.cleaned_data["notes"], tags=form.tag_list())
            except DomainError as exc:
                status = apply_domain_error(form, exc)
            else:
                if not wants_partial(request):
                    messages.success(request, "Journal entry saved.")
                    return redirect("execution:journal")
                trade = trades_for_user(user=request.user).get(pk=pk)
                response = render_page(
                    request,
                    "execution/journal.html",
                    "execution/partials/_trade_row.html",
                    {"trade": trade, "flash": True},
                )
                return toast(response, "Journal entry saved.")
        else:
            status = FORM_INVALID
    return render_page(
        request,
        "execution/trade_edit.html",
        "execution/partials/_trade_edit_row.html",
        {"trade": trade, "form": form},
        status=status,
    )
