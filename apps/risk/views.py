"""The risk page at /risk/?account=ID: trading state (halt / resume), the account's risk
(exposure and correlation heat maps, limits as bars, leverage, heat, drawdown, daily PnL, VaR),
recent events with acknowledge, the rules with inline create/edit, an order test and the
position size calculator.

Each view validates its input with a form, calls one risk service or selector and renders the
page, or only the fragment HTMX asks for. The fragments refresh themselves on the live events
(``risk-changed`` from a "risk.event", ``account-changed``, ``positions-changed``; see
static/js/risk.js). Another user's account, rule or event answers 404.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import TradingAccount
from apps.accounts.selectors import accounts_for_user
from apps.core.errors import DomainError
from apps.core.forms import FORM_INVALID, apply_domain_error
from apps.core.views import render_page, toast, trigger, wants_partial
from apps.marketdata.selectors import instruments_tradable
from apps.risk.display import format_measure, unit_for
from apps.risk.forms import (
    OrderTestForm,
    PositionSizeForm,
    RiskQueryForm,
    RuleForm,
    TradingStateForm,
    rule_field_name,
    size_field_name,
)
from apps.risk.models import RiskRule, TradingStateChange
from apps.risk.selectors import events_for_user, rules_for_user
from apps.risk.services import (
    AccountRiskOverview,
    account_resume_trading,
    account_risk_overview,
    position_size,
    risk_event_acknowledge,
    risk_events_acknowledge,
    risk_order_test,
    risk_rule_create,
    risk_rule_delete,
    risk_rule_update,
    trading_state_set,
)

RECENT_EVENTS = 25
# Fired after a change of rules or events, so the limits and the events list refresh.
RISK_CHANGED = "risk-changed"
_PREFIX = re.compile(r"^(new|rule(\d{1,12}))$")

PARTIAL_TEMPLATES = {
    "overview": "risk/partials/_overview.html",
    "state": "risk/partials/_state.html",
    "events": "risk/partials/_events.html",
    "rules": "risk/partials/_rules.html",
}

# --- helpers ------------------------------------------------------------------------------


def _own_account(request: HttpRequest, pk: int) -> TradingAccount:
    return get_object_or_404(accounts_for_user(user=request.user), pk=pk)


def _own_rule(request: HttpRequest, pk: int) -> RiskRule:
    return get_object_or_404(rules_for_user(user=request.user), pk=pk)


def _base_url(account: TradingAccount) -> str:
    return f"{reverse('risk:dashboard')}?account={account.pk}"


def limit_bars(overview: AccountRiskOverview) -> list[dict[str, Any]]:
    """One bar per measured result (value / limit), and one line per rule that is only checked
    on orders (stops, targets, cool-down, correlation). Presentation only: the numbers are the
    risk engine's."""
    by_rule: dict[int, list] = {}
    for check in overview.checks:
        if check.rule_id is not None:
            by_rule.setdefault(check.rule_id, []).append(check)
    bars = []
    for rule in overview.rules:
        if not rule.enabled:
            continue
        unit = unit_for(rule.rule_type, rule.params)
        level = float(rule.warning_level) if rule.warning_level is not None else None
        checks = by_rule.get(rule.pk, [])
        if not checks:
            bars.append(
                {
                    "rule": rule,
                    "measured": False,
                    "subject": "",
                    "message": "Checked on every order.",
                }
            )
            continue
        for check in checks:
            ratio = None
            if check.value is not None and check.limit and math.isfinite(check.value):
                ratio = max(check.value / check.limit, 0.0)
            if not check.passed:
                tone = "breach" if check.action == "block" else "warning"
            elif str(check.severity) == "warning" or (ratio is not None and ratio >= 1):
                tone = "warning"  # near the limit, or at it (the limit itself still passes)
            else:
                tone = "ok"
            bars.append(
                {
                    "rule": rule,
                    "measured": ratio is not None,
                    "subject": check.subject,
                    "code": str(check.code),
                    "tone": tone,
                    "ratio_pct": round(ratio * 100, 1) if ratio is not None else None,
                    # The track runs to 125% of the limit; the limit mark sits at 80% of it.
                    "fill_pct": round(min(ratio, 1.25) / 1.25 * 100, 2) if ratio is not None else 0,
                    "warning_mark_pct": round(level / 1.25 * 100, 2) if level else None,
                    "value_text": format_measure(check.value, unit),
                    "limit_text": format_measure(check.limit, unit),
                    "message": check.message,
                }
            )
    return bars


def _chart_data(overview: AccountRiskOverview) -> dict[str, Any]:
    risk = overview.risk.as_dict()
    positions = sorted(
        risk["positions"], key=lambda p: (p["sector"] or "~", -abs(p["pct_of_equity"] or 0))
    )
    sectors = []
    for p in positions:
        name = p["sector"] or "Unclassified"
        if name not in sectors:
            sectors.append(name)
    symbols = [p["symbol"] for p in positions]
    # Rows are sectors, columns the positions: each cell is a position's signed share of
    # equity in its own sector (others blank), so concentration reads as one dense row.
    z: list[list[float | None]] = []
    for sector in sectors:
        row: list[float | None] = []
        for p in positions:
            same = (p["sector"] or "Unclassified") == sector
            pct = p["pct_of_equity"]
            row.append((pct if p["value"] >= 0 else -pct) if same and pct is not None else None)
        z.append(row)
    return {
        "exposure": {"sectors": sectors, "symbols": symbols, "z": z},
        "correlation": risk["correlation"],
    }


def _overview_context(account: TradingAccount, overview: AccountRiskOverview) -> dict:
    risk = overview.risk
    return {
        "account": account,
        "overview": overview,
        "risk": risk,
        "net_leverage": risk.net_exposure / risk.equity if risk.equity > 0 else None,
        "limit_bars": limit_bars(overview),
        "risk_charts": _chart_data(overview),
        "state_change": overview.last_state_change,
        "overview_refresh_url": f"{_base_url(account)}&partial=overview",
    }


def _state_context(account: TradingAccount, change: TradingStateChange | None = None) -> dict:
    return {
        "account": account,
        "state_change": change,
        "state_form": TradingStateForm(),
        "state_refresh_url": f"{_base_url(account)}&partial=state",
    }


def _events_context(request: HttpRequest, account: TradingAccount) -> dict:
    events = list(events_for_user(user=request.user).filter(account=account)[:RECENT_EVENTS])
    return {
        "account": account,
        "events": events,
        "open_events": [e.pk for e in events if e.acknowledged_at is None],
        "events_refresh_url": f"{_base_url(account)}&partial=events",
    }


def _rules_context(
    request: HttpRequest,
    account: TradingAccount,
    *,
    create_form: RuleForm | None = None,
    flash: int | None = None,
) -> dict:
    return {
        "account": account,
        "rules": rules_for_user(user=request.user).filter(account=account).order_by("id"),
        "create_form": create_form,
        "flash": flash,
    }


def _tools_context(account: TradingAccount) -> dict:
    return {
        "test_form": OrderTestForm(account=account),
        "size_form": PositionSizeForm(account=account),
        "symbols": instruments_tradable().values_list("symbol", flat=True)[:1000],
    }


# --- the page -----------------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    query = RiskQueryForm(request.GET)
    if not query.is_valid():
        raise Http404("No such account.")
    accounts = accounts_for_user(user=request.user)
    account_id = query.cleaned_data["account"]
    account = get_object_or_404(accounts, pk=account_id) if account_id else accounts.first()
    if account is None:
        return render(request, "risk/empty.html")

    partial = query.cleaned_data["partial"] if wants_partial(request) else ""
    if partial == "overview":
        context = _overview_context(account, account_risk_overview(account=account))
    elif partial == "state":
        change = TradingStateChange.objects.filter(account=account).first()
        context = _state_context(account, change)
    elif partial == "events":
        context = _events_context(request, account)
    elif partial == "rules":
        context = _rules_context(request, account)
    else:
        overview = account_risk_overview(account=account)
        context = {
            "accounts": accounts,
            **_overview_context(account, overview),
            **_state_context(account, overview.last_state_change),
            **_events_context(request, account),
            **_rules_context(request, account),
            **_tools_context(account),
        }
    return render_page(request, "risk/dashboard.html", PARTIAL_TEMPLATES.get(partial), context)


# --- trading state ------------------------------------------------------------------------


def _state_response(
    request: HttpRequest, account: TradingAccount, *, error: str | None, status: int, done: str
) -> HttpResponse:
    if not wants_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, done)
        return redirect(_base_url(account))
    change = TradingStateChange.objects.filter(account=account).first()
    context = _state_context(account, change)
    context["state_error"] = error
    response = render_page(
        request, "risk/dashboard.html", PARTIAL_TEMPLATES["state"], context, status=status
    )
    if error:
        return toast(response, error, "error")
    return toast(trigger(response, "account-changed", RISK_CHANGED), done)


@login_required
@require_POST
def account_resume(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    form = TradingStateForm(request.POST)
    error, status = None, 200
    if form.is_valid():
        try:
            account = account_resume_trading(
                account=account, user=request.user, reason=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            error, status = exc.message, exc.status_code
    else:
        error, status = "A reason is at most 255 characters.", FORM_INVALID
    return _state_response(
        request, account, error=error, status=status, done=f"{account.name}: trading resumed."
    )


@login_required
@require_POST
def account_halt(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    form = TradingStateForm(request.POST)
    error, status = None, 200
    if form.is_valid():
        try:
            account = trading_state_set(
                account=account,
                state=TradingAccount.Status.HALTED,
                reason=form.cleaned_data["reason"] or f"halted by {request.user.get_username()}",
                changed_by=request.user,
            )
        except DomainError as exc:
            error, status = exc.message, exc.status_code
    else:
        error, status = "A reason is at most 255 characters.", FORM_INVALID
    return _state_response(
        request, account, error=error, status=status, done=f"{account.name}: trading halted."
    )


# --- rules --------------------------------------------------------------------------------


def _rules_section(request: HttpRequest, context: dict, *, status: int = 200) -> HttpResponse:
    return render_page(
        request, "risk/rule_form.html", PARTIAL_TEMPLATES["rules"], context, status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def rule_create(request: HttpRequest, pk: int) -> HttpResponse:
    """The inline "new rule" form (GET), and creating the rule (POST)."""
    account = _own_account(request, pk)
    if request.method == "GET":
        form = RuleForm(account=account, rule_type=request.GET.get("rule_type"))
        return render_page(
            request,
            "risk/rule_form.html",
            "risk/partials/_rule_form.html",
            {"account": account, "form": form},
        )
    form = RuleForm(request.POST, account=account)
    status = FORM_INVALID
    if form.is_valid():
        try:
            rule = risk_rule_create(owner=request.user, account=account, data=form.rule_input())
        except DomainError as exc:
            status = apply_domain_error(form, exc, field_map=rule_field_name)
        else:
            if not wants_partial(request):
                messages.success(request, f"Rule “{rule}” created.")
                return redirect(_base_url(account))
            response = _rules_section(request, _rules_context(request, account, flash=rule.pk))
            return toast(trigger(response, RISK_CHANGED), f"Rule “{rule}” created.")
    if wants_partial(request):
        return _rules_section(
            request, _rules_context(request, account, create_form=form), status=status
        )
    return render(request, "risk/rule_form.html", {"account": account, "form": form}, status=status)


@login_required
@require_GET
def rule_fields(request: HttpRequest, pk: int) -> HttpResponse:
    """The fields that depend on the rule type (the type select asks when it changes)."""
    account = _own_account(request, pk)
    match = _PREFIX.match(request.GET.get("prefix", "new"))
    if match is None:
        raise Http404("No such form.")
    prefix = match.group(1)
    rule = None
    if match.group(2):
        rule = get_object_or_404(
            rules_for_user(user=request.user).filter(account=account), pk=int(match.group(2))
        )
    form = RuleForm(account=account, rule=rule, rule_type=request.GET.get(f"{prefix}-rule_type"))
    return render_page(
        request,
        "risk/rule_form.html",
        "risk/partials/_rule_fields.html",
        {"account": account, "form": form},
    )


@login_required
@require_GET
def rule_row(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _own_rule(request, pk)
    if not wants_partial(request):
        return redirect(_base_url(rule.account))
    return render_page(
        request, "risk/rule_form.html", "risk/partials/_rule_row.html", {"rule": rule}
    )


@login_required
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit one rule: an inline row editor (HTMX) or a small page."""
    rule = _own_rule(request, pk)
    account = rule.account
    status = 200
    if request.method == "GET":
        form = RuleForm(account=account, rule=rule)
    else:
        form = RuleForm(request.POST, account=account, rule=rule)
        status = FORM_INVALID
        if form.is_valid():
            try:
                rule = risk_rule_update(rule=rule, changes=form.changes())
            except DomainError as exc:
                status = apply_domain_error(form, exc, field_map=rule_field_name)
                rule.refresh_from_db()
            else:
                if not wants_partial(request):
                    messages.success(request, f"Rule “{rule}” saved.")
                    return redirect(_base_url(account))
                response = render_page(
                    request,
                    "risk/rule_form.html",
                    "risk/partials/_rule_row.html",
                    {"rule": _own_rule(request, pk), "flash": pk},
                )
                return toast(trigger(response, RISK_CHANGED), f"Rule “{rule}” saved.")
    return render_page(
        request,
        "risk/rule_form.html",
        "risk/partials/_rule_edit_row.html",
        {"account": account, "rule": rule, "form": form},
        status=status,
    )


@login_required
@require_POST
def rule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _own_rule(request, pk)
    error, status = None, 200
    try:
        rule = risk_rule_update(rule=rule, changes={"enabled": not rule.enabled})
    except DomainError as exc:
        error, status = exc.message, exc.status_code
        rule.refresh_from_db()
    done = f"Rule “{rule}” {'enabled' if rule.enabled else 'disabled'}."
    if not wants_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, done)
        return redirect(_base_url(rule.account))
    response = render_page(
        request,
        "risk/rule_form.html",
        "risk/partials/_rule_row.html",
        {"rule": _own_rule(request, pk), "row_error": error},
        status=status,
    )
    if error:
        return toast(response, error, "error")
    return toast(trigger(response, RISK_CHANGED), done)


@login_required
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _own_rule(request, pk)
    account, name = rule.account, str(rule)
    risk_rule_delete(rule=rule)
    if not wants_partial(request):
        messages.success(request, f"Rule “{name}” deleted.")
        return redirect(_base_url(account))
    # An empty answer swapped over the row removes it.
    return toast(trigger(HttpResponse(""), RISK_CHANGED), f"Rule “{name}” deleted.")


# --- order test and position size ---------------------------------------------------------


def _tool_response(
    request: HttpRequest, account: TradingAccount, partial: str, context: dict, status: int
) -> HttpResponse:
    context = {"account": account, "symbols": _tools_context(account)["symbols"], **context}
    return render_page(request, "risk/tool.html", partial, context, status=status)


@login_required
@require_POST
def order_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Check a hypothetical order against the account's rules; nothing is placed or stored."""
    account = _own_account(request, pk)
    form = OrderTestForm(request.POST, account=account)
    decision, status = None, FORM_INVALID
    if form.is_valid():
        try:
            decision = risk_order_test(
                account=account, intent=form.intent(), strategy_id=form.strategy_id()
            )
            status = 200
        except DomainError as exc:
            status = apply_domain_error(form, exc)
    context = {
        "test_form": form,
        "decision": decision.as_dict() if decision is not None else None,
        "tool": "test",
    }
    return _tool_response(request, account, "risk/partials/_order_test.html", context, status)


@login_required
@require_POST
def size(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    form = PositionSizeForm(request.POST, account=account)
    result, status = None, FORM_INVALID
    if form.is_valid():
        try:
            result = position_size(account=account, **form.service_arguments())
            status = 200
        except DomainError as exc:
            status = apply_domain_error(form, exc, field_map=size_field_name)
    context = {"size_form": form, "sizing": result, "tool": "size"}
    return _tool_response(request, account, "risk/partials/_position_size.html", context, status)


@login_required
@require_GET
def size_fields(request: HttpRequest, pk: int) -> HttpResponse:
    """The parameter fields of one sizing method (the method select asks when it changes)."""
    account = _own_account(request, pk)
    if not wants_partial(request):
        return redirect(_base_url(account))
    form = PositionSizeForm(account=account, method=request.GET.get("size-method"))
    return _tool_response(
        request,
        account,
        "risk/partials/_size_params.html",
        {"size_form": form, "tool": "size"},
        200,
    )


# --- events -------------------------------------------------------------------------------


@login_required
@require_POST
def event_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(events_for_user(user=request.user), pk=pk)
    event = risk_event_acknowledge(event=event, user=request.user)
    if not wants_partial(request):
        messages.success(request, "Event acknowledged.")
        return redirect(_base_url(event.account))
    response = render_page(
        request, "risk/dashboard.html", "risk/partials/_event_row.html", {"event": event}
    )
    return toast(response, "Event acknowledged.")


@login_required
@require_POST
def events_acknowledge_all(request: HttpRequest, pk: int) -> HttpResponse:
    """Acknowledge every open event of the account that the page lists."""
    account = _own_account(request, pk)
    ids = [int(value) for value in request.POST.getlist("ids") if value.isdigit()][:1000]
    if ids:
        try:
            risk_events_acknowledge(user=request.user, event_ids=ids)
        except DomainError:
            raise Http404("No such event.") from None  # another user's id, like in a URL
    done = f"{len(ids)} event{'s' if len(ids) != 1 else ''} acknowledged."
    if not wants_partial(request):
        messages.success(request, done)
        return redirect(_base_url(account))
    response = render_page(
        request,
        "risk/dashboard.html",
        PARTIAL_TEMPLATES["events"],
        _events_context(request, account),
    )
    return toast(response, done)
