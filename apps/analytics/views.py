"""The dashboard: one account's equity, PnL, drawdown, open positions, recent orders and curve."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.accounts.selectors import accounts_for_user, dashboard_for_account
from apps.analytics.forms import DashboardQueryForm
from apps.core.views import render_page

PARTIAL_TEMPLATES = {
    "summary": "analytics/partials/_summary.html",
    "positions": "execution/partials/_positions_table.html",
    "orders": "execution/partials/_orders_table.html",
}


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    query = DashboardQueryForm(request.GET)
    if not query.is_valid():
        raise Http404("No such account.")
    accounts = accounts_for_user(user=request.user)
    account_id = query.cleaned_data["account"]
    if account_id is not None:
        account = get_object_or_404(accounts, pk=account_id)
    else:
        account = accounts.first()
    if account is None:
        return render(request, "analytics/dashboard_empty.html")

    data = dashboard_for_account(account=account)
    base = f"{reverse('dashboard')}?account={account.pk}"
    context = {
        "accounts": accounts,
        "account": account,
        "dashboard": data,
        "valuation": data.valuation,
        "position_rows": data.position_rows,
        "orders": data.recent_orders,
        "compact": True,
        "summary_refresh_url": f"{base}&partial=summary",
        "positions_refresh_url": f"{base}&partial=positions",
        "orders_refresh_url": f"{base}&partial=orders",
        "equity_chart": {
            "x": [point.taken_at.isoformat() for point in data.equity_curve],
            "equity": [float(point.equity) for point in data.equity_curve],
            "hwm": [float(point.high_water_mark) for point in data.equity_curve],
        },
    }
    partial = PARTIAL_TEMPLATES.get(query.cleaned_data["partial"] or "")
    return render_page(request, "analytics/dashboard.html", partial, context)
