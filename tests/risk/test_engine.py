"""The pre-trade risk engine: built-in checks, every rule type at, just under and just over its
limit, reductions on the lot grid, pending orders, stops/targets, and account monitoring.

Pure: no database. Expected numbers are worked out here from the definitions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.risk.domain.engine import (
    evaluate_account,
    evaluate_order,
    floor_to_step,
    on_step,
    protective_exits,
    round_to_tick,
    stop_triggered,
    take_profit_triggered,
)
from apps.risk.domain.rules import validate_rule_params
from apps.risk.domain.types import (
    Action,
    CheckResult,
    Decision,
    EngineLimits,
    Holding,
    InstrumentInfo,
    MarketSnapshot,
    OrderProposal,
    Outcome,
    PendingOrder,
    PortfolioSnapshot,
    Rule,
    RuleType,
    Severity,
    TradingState,
)

NOW = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
EQUITY = 100_000.0


# --------------------------------------------------------------------------- builders


def inst(symbol: str, **kwargs) -> InstrumentInfo:
    kwargs.setdefault("sector", "Tech")
    kwargs.setdefault("last_price", 100.0)
    return InstrumentInfo(symbol=symbol, **kwargs)


def market(*instruments: InstrumentInfo, returns=None) -> MarketSnapshot:
    if not instruments:
        instruments = tuple(inst(s) for s in ("AAPL", "MSFT", "NVDA", "XOM", "CVX", "JNJ"))
    return MarketSnapshot(
        instruments={i.symbol: i for i in instruments}, returns=returns if returns else {}
    )


def hold(symbol: str, quantity: float, price: float = 100.0, **kwargs) -> Holding:
    kwargs.setdefault("sector", "Tech")
    return Holding(
        symbol=symbol, quantity=quantity, average_price=price, last_price=price, **kwargs
    )


def account(
    *holdings: Holding,
    equity: float = EQUITY,
    cash: float | None = None,
    sod: float | None = None,
    hwm: float | None = None,
    **kwargs,
) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        equity=equity,
        cash=equity if cash is None else cash,
        start_of_day_equity=equity if sod is None else sod,
        high_water_mark=equity if hwm is None else hwm,
        holdings=holdings,
        **kwargs,
    )


def rule(
    kind: RuleType,
    *,
    id: int = 1,
    action: Action = Action.BLOCK,
    warning_level: float | None = None,
    strategy_id: int | None = None,
    enabled: bool = True,
    **params,
) -> Rule:
    return Rule(
        id=id,
        type=kind,
        params=validate_rule_params(kind, params),
        action=action,
        warning_level=warning_level,
        strategy_id=strategy_id,
        enabled=enabled,
    )


def buy(symbol: str = "AAPL", quantity: float = 100, price: float = 100.0, **kwargs):
    return OrderProposal(symbol=symbol, side="buy", quantity=quantity, price=price, **kwargs)


def sell(symbol: str = "AAPL", quantity: float = 100, price: float = 100.0, **kwargs):
    return OrderProposal(symbol=symbol, side="sell", quantity=quantity, price=price, **kwargs)


def run(proposal, portfolio=None, mkt=None, rules=(), **kwargs) -> Decision:
    return evaluate_order(
        proposal,
        portfolio if portfolio is not None else account(),
        mkt if mkt is not None else market(),
        list(rules),
        now=kwargs.pop("now", NOW),
        **kwargs,
    )


def check(decision: Decision, name: str) -> CheckResult:
    """The single check named `name` (a rule type or a built-in check name)."""
    found = [c for c in decision.checks if c.check == name]
    assert len(found) == 1, [c.as_dict() for c in decision.checks]
    return found[0]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [(0.3, 0.1, True), (0.35, 0.1, False), (150, 10, True), (155, 10, False), (1e6, 0.01, True)],
)
def test_on_step_tolerates_float_rounding(value, step, expected):
    assert on_step(value, step) is expected


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [(0.3, 0.1, 0.3), (0.39, 0.1, 0.3), (105.5, 10, 100.0), (99.999, 1, 99.0), (7, 1, 7)],
)
def test_floor_to_step(value, step, expected):
    assert floor_to_step(value, step) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("price", "tick", "up", "expected"),
    [
        (98.0294, 0.01, False, 98.02),
        (98.0294, 0.01, True, 98.03),
        (95.0, 0.01, False, 95.0),  # already on the grid: 95.0 / 0.01 is 9499.999...
        (95.0, 0.01, True, 95.0),
        (102.0306, 0.05, True, 102.05),
    ],
)
def test_round_to_tick(price, tick, up, expected):
    assert round_to_tick(price, tick, up=up) == pytest.approx(expected, abs=1e-12)


def test_check_result_make_equals_the_dataclass_constructor():
    args = ("OK", True, Severity.OK, "msg", 3, "leverage", Action.WARN, 1.5, 2.0, 10.0, "x")
    fast = CheckResult.make(*args)
    slow = CheckResult(*args)
    assert fast == slow
    assert set(vars(fast)) == {f.name for f in dataclasses.fields(CheckResult)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.passed = False  # type: ignore[misc]


# --------------------------------------------------------------------------- built-ins


def test_a_clean_order_is_approved_with_every_check_listed():
    decision = run(buy(quantity=10), rules=[rule(RuleType.LEVERAGE, max_leverage=2)])
    assert decision.outcome is Outcome.APPROVED
    assert decision.quantity == 10
    names = [c.check for c in decision.checks]
    assert names == [
        "trading_state",
        "instrument",
        "quantity",
        "price",
        "rate_limit",
        "buying_power",
        "leverage",
    ]
    assert all(c.passed and c.code == "OK" for c in decision.checks)
    leverage = check(decision, "leverage")
    assert leverage.value == pytest.approx(10 * 100 / EQUITY)
    assert leverage.limit == 2
    json.dumps(decision.as_dict(), allow_nan=False)


@pytest.mark.parametrize("order", [buy(), sell(quantity=50), sell(quantity=500)])
def test_halted_rejects_everything(order):
    portfolio = account(hold("AAPL", 100), state=TradingState.HALTED)
    decision = run(order, portfolio)
    assert decision.outcome is Outcome.REJECTED
    assert decision.quantity == 0
    assert "TRADING_HALTED" in decision.reason_codes
    assert check(decision, "trading_state").max_quantity is None


def test_reducing_state_passes_reducing_orders_and_rejects_new_risk():
    portfolio = account(hold("AAPL", 100), state=TradingState.REDUCING)
    assert run(sell(quantity=100), portfolio).outcome is Outcome.APPROVED
    rejected = run(buy("MSFT", 10), portfolio)
    assert rejected.outcome is Outcome.REJECTED
    assert rejected.reason_codes == ("ACCOUNT_REDUCING",)
    adding = run(buy("AAPL", 10), portfolio)
    assert adding.reason_codes == ("ACCOUNT_REDUCING",)


def test_reducing_state_cuts_a_flip_to_its_closing_part():
    portfolio = account(hold("AAPL", 100), state=TradingState.REDUCING)
    decision = run(sell(quantity=150), portfolio)
    assert decision.outcome is Outcome.REDUCED
    assert decision.quantity == 100
    assert "Approved 100 of 150" in decision.message
    strict = run(sell(quantity=150, allow_reduce=False), portfolio)
    assert strict.outcome is Outcome.REJECTED
    assert strict.reason_codes == ("ACCOUNT_REDUCING",)


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (buy("ZZZZ"), "UNKNOWN_INSTRUMENT"),
        (buy(quantity=0), "INVALID_QUANTITY"),
        (buy(quantity=-5), "INVALID_QUANTITY"),
        (buy(quantity=math.nan), "INVALID_QUANTITY"),
        (buy(price=0), "INVALID_PRICE"),
        (buy(price=math.inf), "INVALID_PRICE"),
        (OrderProposal("AAPL", "hold", 10, 100.0), "INVALID_SIDE"),
    ],
)
def test_invalid_inputs_reject_before_any_rule(order, code):
    decision = run(order, rules=[rule(RuleType.LEVERAGE)])
    assert decision.outcome is Outcome.REJECTED
    assert decision.reason_codes == (code,)
    assert not any(c.rule_id for c in decision.checks)  # rules were not run on bad input


def test_untradable_instrument_is_rejected():
    decision = run(buy(), mkt=market(inst("AAPL", tradable=False)))
    assert decision.reason_codes == ("INSTRUMENT_NOT_TRADABLE",)
    assert decision.outcome is Outcome.REJECTED


@pytest.mark.parametrize(
    ("quantity", "lot", "ok"),
    [(150, 10, True), (155, 10, False), (0.3, 0.1, True), (0.35, 0.1, False)],
)
def test_quantity_must_be_on_the_lot(quantity, lot, ok):
    decision = run(buy(quantity=quantity), mkt=market(inst("AAPL", lot_size=lot)))
    assert decision.approved is ok
    assert ("QUANTITY_NOT_ON_LOT" in decision.reason_codes) is not ok


def test_closing_a_whole_off_lot_position_is_allowed():
    mkt = market(inst("AAPL", lot_size=1))
    portfolio = account(hold("AAPL", 10.5))
    assert run(sell(quantity=10.5), portfolio, mkt).outcome is Outcome.APPROVED
    assert run(sell(quantity=5.5), portfolio, mkt).reason_codes == ("QUANTITY_NOT_ON_LOT",)


@pytest.mark.parametrize(
    ("order_type", "price", "ok"),
    [("limit", 100.01, True), ("limit", 100.005, False), ("market", 100.005, True)],
)
def test_limit_prices_must_be_on_the_tick(order_type, price, ok):
    decision = run(buy(quantity=1, price=price, order_type=order_type))
    assert decision.approved is ok
    assert ("PRICE_NOT_ON_TICK" in decision.reason_codes) is not ok


@pytest.mark.parametrize(("recent", "ok"), [(0, True), (4, True), (5, False), (9, False)])
def test_order_rate_limit(recent, ok):
    decision = run(
        sell(quantity=10),  # even a reducing order: a runaway loop is stopped either way
        account(hold("AAPL", 100), recent_submissions=recent),
        limits=EngineLimits(max_orders_per_minute=5),
    )
    assert decision.approved is ok
    assert ("ORDER_RATE_LIMIT" in decision.reason_codes) is not ok
    assert check(decision, "rate_limit").value == recent


def test_reduce_only():
    portfolio = account(hold("AAPL", 100))
    assert run(sell(quantity=60, reduce_only=True), portfolio).outcome is Outcome.APPROVED
    flip = run(sell(quantity=150, reduce_only=True), portfolio)
    assert (flip.outcome, flip.quantity) == (Outcome.REDUCED, 100)
    assert flip.reason_codes == ("REDUCE_ONLY_WOULD_INCREASE",)
    adding = run(buy(quantity=10, reduce_only=True), portfolio)
    assert adding.outcome is Outcome.REJECTED
    assert adding.reason_codes == ("REDUCE_ONLY_WOULD_INCREASE",)
    strict = run(sell(quantity=150, reduce_only=True, allow_reduce=False), portfolio)
    assert strict.outcome is Outcome.REJECTED


@pytest.mark.parametrize(
    ("quantity", "outcome", "approved"),
    [(100, Outcome.APPROVED, 100), (99, Outcome.APPROVED, 99), (101, Outcome.REDUCED, 100)],
)
def test_buying_power_for_purchases(quantity, outcome, approved):
    decision = run(buy(quantity=quantity), account(cash=10_000))
    assert (decision.outcome, decision.quantity) == (outcome, approved)
    bp = check(decision, "buying_power")
    assert bp.value == pytest.approx(quantity * 100)
    assert bp.limit == 10_000


def test_buying_power_counts_pending_buys_and_rounds_down_to_the_lot():
    pending = (PendingOrder("MSFT", "buy", 20, 100.0),)  # 2,000 committed
    mkt = market(inst("AAPL", lot_size=10), inst("MSFT"))
    # (10,550 - 2,000) / 100 = 85.5 units -> 80 on a lot of 10.
    decision = run(buy(quantity=100), account(cash=10_550, pending=pending), mkt)
    assert check(decision, "buying_power").max_quantity == pytest.approx(85.5)
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 80)
    no_room = run(buy(quantity=100), account(cash=2_005, pending=pending), mkt)
    assert no_room.outcome is Outcome.REJECTED  # 0.05 units left: less than one lot


def test_buying_power_for_short_sales_uses_margin_on_equity():
    portfolio = account(hold("MSFT", -200), equity=100_000)  # 20,000 already short
    limits = EngineLimits(short_margin=0.5)  # shorts up to 200,000 notional
    ok = run(sell(quantity=1_800), portfolio, limits=limits)
    assert ok.outcome is Outcome.APPROVED
    over = run(sell(quantity=1_801), portfolio, limits=limits)
    assert (over.outcome, over.quantity) == (Outcome.REDUCED, 1_800)


def test_reducing_orders_need_no_buying_power():
    decision = run(sell(quantity=100), account(hold("AAPL", 100), cash=0))
    assert decision.outcome is Outcome.APPROVED
    assert "needs no buying power" in check(decision, "buying_power").message


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("mode", "limit"), [("pct_equity", 20.0), ("money", 20_000.0), ("units", 200.0)]
)
@pytest.mark.parametrize(("quantity", "passed"), [(199, True), (200, True), (201, False)])
def test_max_position_size_at_under_and_over(mode, limit, quantity, passed):
    decision = run(
        buy(quantity=quantity), rules=[rule(RuleType.MAX_POSITION_SIZE, mode=mode, limit=limit)]
    )
    result = check(decision, "max_position_size")
    assert result.passed is passed
    units = quantity
    expected = {"pct_equity": units * 100 / EQUITY * 100, "money": units * 100.0, "units": units}
    assert result.value == pytest.approx(expected[mode])
    if passed:
        assert (decision.outcome, result.code) == (Outcome.APPROVED, "OK")
    else:
        assert result.code == "MAX_POSITION_SIZE_EXCEEDED"
        assert result.max_quantity == pytest.approx(200)
        assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 200)


def test_max_position_size_message_has_the_numbers():
    decision = run(buy(quantity=235), rules=[rule(RuleType.MAX_POSITION_SIZE, limit=20)])
    assert check(decision, "max_position_size").message.startswith(
        "Position in AAPL would be 23.5% of equity; the limit is 20%."
    )


def test_max_position_size_counts_the_holding_and_short_side():
    rules = [rule(RuleType.MAX_POSITION_SIZE, mode="units", limit=200)]
    portfolio = account(hold("AAPL", 150))
    adding = run(buy(quantity=60), portfolio, rules=rules)
    assert (adding.outcome, adding.quantity) == (Outcome.REDUCED, 50)
    # A flip from +150 to -210 is a 210 short: over.
    flip = run(sell(quantity=360), portfolio, rules=rules)
    assert check(flip, "max_position_size").value == pytest.approx(210)
    assert (flip.outcome, flip.quantity) == (Outcome.REDUCED, 350)


def test_reduction_rounds_down_to_the_lot_and_needs_a_whole_lot():
    mkt = market(inst("AAPL", lot_size=10))
    rules = [rule(RuleType.MAX_POSITION_SIZE, mode="units", limit=195)]
    decision = run(buy(quantity=300), mkt=mkt, rules=rules)
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 190)
    tight = run(buy(quantity=300), account(hold("AAPL", 190)), mkt, rules)
    assert tight.outcome is Outcome.REJECTED  # room for 5: less than one lot of 10
    strict = run(buy(quantity=300, allow_reduce=False), mkt=mkt, rules=rules)
    assert strict.outcome is Outcome.REJECTED


def test_the_smallest_bound_wins():
    rules = [
        rule(RuleType.MAX_POSITION_SIZE, id=1, mode="units", limit=300),
        rule(RuleType.LEVERAGE, id=2, max_leverage=0.25),  # 25,000 -> 250 units
    ]
    decision = run(buy(quantity=400), account(cash=1e9), rules=rules)
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 250)
    assert set(decision.reason_codes) == {"MAX_POSITION_SIZE_EXCEEDED", "LEVERAGE_EXCEEDED"}


def test_a_binary_failure_rejects_even_when_another_check_could_reduce():
    rules = [
        rule(RuleType.MAX_POSITION_SIZE, id=1, mode="units", limit=50),
        rule(RuleType.POSITION_LIMIT, id=2, max_positions=1),
    ]
    decision = run(buy("MSFT", 100), account(hold("AAPL", 10)), rules=rules)
    assert decision.outcome is Outcome.REJECTED
    assert set(decision.reason_codes) == {"MAX_POSITION_SIZE_EXCEEDED", "POSITION_LIMIT_EXCEEDED"}


@pytest.mark.parametrize(
    ("quantity", "code", "severity"),
    [
        (159, "OK", Severity.OK),
        (160, "NEAR_LIMIT", Severity.WARNING),
        (200, "NEAR_LIMIT", Severity.WARNING),
    ],
)
def test_warning_level(quantity, code, severity):
    decision = run(
        buy(quantity=quantity),
        rules=[rule(RuleType.MAX_POSITION_SIZE, mode="units", limit=200, warning_level=0.8)],
    )
    result = check(decision, "max_position_size")
    assert (result.passed, result.code, result.severity) == (True, code, severity)
    assert decision.outcome is Outcome.APPROVED
    assert (result in decision.warnings) is (severity is Severity.WARNING)


def test_warn_action_never_blocks_or_reduces():
    decision = run(
        buy(quantity=250),
        rules=[rule(RuleType.MAX_POSITION_SIZE, mode="units", limit=200, action=Action.WARN)],
    )
    result = check(decision, "max_position_size")
    assert (result.passed, result.severity, result.action) == (False, Severity.WARNING, Action.WARN)
    assert result.max_quantity is None
    assert (decision.outcome, decision.quantity) == (Outcome.APPROVED, 250)
    assert decision.warnings == (result,)
    assert decision.message == "Approved."


def test_rules_with_plain_string_type_and_action_behave_the_same():
    # A service may build Rule straight from model fields (plain strings).
    loose = Rule(
        id=1, type="max_position_size", params={"mode": "units", "limit": 200}, action="warn"
    )
    decision = run(buy(quantity=250), rules=[loose])
    result = check(decision, "max_position_size")
    assert (result.passed, result.severity, result.action) == (False, Severity.WARNING, Action.WARN)
    assert decision.outcome is Outcome.APPROVED
    blocking = dataclasses.replace(loose, action="block")
    assert run(buy(quantity=250), rules=[blocking]).outcome is Outcome.REDUCED


def test_pending_orders_count_as_filled_but_pending_sells_make_no_room():
    rules = [rule(RuleType.MAX_POSITION_SIZE, mode="units", limit=200)]
    with_buy = account(hold("AAPL", 100), pending=(PendingOrder("AAPL", "buy", 50, 100.0),))
    decision = run(buy(quantity=60), with_buy, rules=rules)
    assert check(decision, "max_position_size").value == pytest.approx(210)
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 50)
    # A far take-profit sell may never fill: it does not let the long grow past the limit.
    with_sell = account(hold("AAPL", 100), pending=(PendingOrder("AAPL", "sell", 100, 150.0),))
    decision = run(buy(quantity=150), with_sell, rules=rules)
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 100)


def test_pending_sells_of_the_same_symbol_shrink_what_counts_as_reducing():
    portfolio = account(
        hold("AAPL", 100),
        pending=(PendingOrder("AAPL", "sell", 60, 100.0),),
        state=TradingState.REDUCING,
    )
    assert run(sell(quantity=40), portfolio).outcome is Outcome.APPROVED
    decision = run(sell(quantity=50), portfolio)  # 60 + 50 > 100: could go short
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 40)


@pytest.mark.parametrize("mode", ["pct", "money"])
@pytest.mark.parametrize(
    ("equity", "breached"), [(98_001.0, False), (98_000.0, True), (97_999.0, True)]
)
def test_daily_loss_at_under_and_over(mode, equity, breached):
    limit = 2.0 if mode == "pct" else 2_000.0
    rules = [rule(RuleType.DAILY_LOSS, mode=mode, limit=limit)]
    portfolio = account(hold("AAPL", 100), equity=equity, sod=100_000.0)
    adding = run(buy(quantity=10), portfolio, rules=rules)
    result = check(adding, "daily_loss")
    loss = 100_000.0 - equity
    assert result.value == pytest.approx(loss / 1_000 if mode == "pct" else loss)
    assert result.passed is not breached
    assert adding.approved is not breached
    if breached:
        assert adding.reason_codes == ("DAILY_LOSS_LIMIT",)
        assert result.severity is Severity.BREACH
    # Reducing orders pass whatever the loss.
    reducing = run(sell(quantity=100), portfolio, rules=rules)
    assert reducing.outcome is Outcome.APPROVED
    assert check(reducing, "daily_loss").severity is (Severity.WARNING if breached else Severity.OK)


def test_daily_loss_breach_cuts_a_flip_and_can_be_critical():
    rules = [rule(RuleType.DAILY_LOSS, limit=2, halt_on_breach=True)]
    portfolio = account(hold("AAPL", 100), equity=97_000, sod=100_000)
    decision = run(sell(quantity=130), portfolio, rules=rules)
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 100)
    assert check(decision, "daily_loss").severity is Severity.CRITICAL


def test_daily_loss_on_a_winning_day_and_without_start_of_day_equity():
    rules = [rule(RuleType.DAILY_LOSS, limit=2, warning_level=0.5)]
    up = run(buy(quantity=1), account(equity=101_000, sod=100_000), rules=rules)
    assert check(up, "daily_loss").code == "OK"
    assert "up 1,000.00" in check(up, "daily_loss").message
    near = run(buy(quantity=1), account(equity=99_000, sod=100_000), rules=rules)
    assert check(near, "daily_loss").code == "NEAR_LIMIT"
    unknown = PortfolioSnapshot(
        equity=90_000, cash=90_000, start_of_day_equity=None, high_water_mark=None
    )
    decision = run(buy(quantity=1), unknown, rules=rules)
    assert decision.approved
    assert "could not be measured" in check(decision, "daily_loss").message


@pytest.mark.parametrize(
    ("equity", "breached"), [(90_001.0, False), (90_000.0, True), (89_999.0, True)]
)
def test_max_drawdown_at_under_and_over(equity, breached):
    rules = [rule(RuleType.MAX_DRAWDOWN, limit_pct=10)]
    portfolio = account(hold("AAPL", 100), equity=equity, hwm=100_000, sod=equity)
    adding = run(buy(quantity=1), portfolio, rules=rules)
    result = check(adding, "max_drawdown")
    assert result.value == pytest.approx((100_000 - equity) / 100_000 * 100)
    assert adding.approved is not breached
    if breached:
        assert (result.code, result.severity) == ("MAX_DRAWDOWN_EXCEEDED", Severity.CRITICAL)
    assert run(sell(quantity=50), portfolio, rules=rules).outcome is Outcome.APPROVED


def _orthonormal(n: int, k: int, seed: int) -> np.ndarray:
    """k centred series of length n, pairwise uncorrelated, unit norm (Gram-Schmidt)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        x = rng.normal(size=n)
        x -= x.mean()
        for y in out:
            x -= (x @ y) * y
        out.append(x / np.linalg.norm(x))
    return np.array(out)


def _with_correlation(
    rho: float, n: int = 60, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(held, new, unrelated): corr(held, new) is exactly `rho`, `unrelated` is uncorrelated
    with both."""
    u, v, w = _orthonormal(n, 3, seed)
    return 0.01 * u, 0.01 * (rho * u + math.sqrt(1 - rho * rho) * v), 0.01 * w


@pytest.mark.parametrize(
    ("rho", "passed"), [(0.79, True), (0.8, True), (0.81, False), (-0.85, False), (0.0, True)]
)
def test_correlation_with_known_series(rho, passed):
    held, new, unrelated = _with_correlation(rho)
    mkt = market(
        inst("AAPL"),
        inst("MSFT"),
        inst("XOM"),
        returns={"AAPL": held, "XOM": unrelated, "MSFT": new},
    )
    portfolio = account(hold("AAPL", 10), hold("XOM", 10))
    rules = [rule(RuleType.CORRELATION, threshold=0.8, lookback=60)]
    decision = run(buy("MSFT", 10), portfolio, mkt, rules)
    result = check(decision, "correlation")
    expected = max(abs(np.corrcoef(new, held)[0, 1]), abs(np.corrcoef(new, unrelated)[0, 1]))
    assert result.value == pytest.approx(expected, abs=1e-9)
    assert result.value == pytest.approx(abs(rho), abs=1e-9)
    assert result.passed is passed
    assert decision.approved is passed
    if not passed:
        assert decision.reason_codes == ("CORRELATION_TOO_HIGH",)
        assert "AAPL" in result.message and result.subject == "AAPL"
        assert result.max_quantity is None


def test_correlation_uses_only_the_last_lookback_returns():
    early_a, early_b, _ = _with_correlation(-0.99, n=100, seed=3)
    late_a, late_b, _ = _with_correlation(0.5, n=60, seed=4)
    a = np.concatenate([early_a, late_a])
    b = np.concatenate([early_b, late_b])
    mkt = market(inst("AAPL"), inst("MSFT"), returns={"AAPL": a, "MSFT": b})
    portfolio = account(hold("AAPL", 10))
    short = run(
        buy("MSFT", 1), portfolio, mkt, [rule(RuleType.CORRELATION, threshold=0.8, lookback=60)]
    )
    assert check(short, "correlation").value == pytest.approx(0.5, abs=1e-9)
    assert short.approved
    long = run(
        buy("MSFT", 1), portfolio, mkt, [rule(RuleType.CORRELATION, threshold=0.8, lookback=160)]
    )
    assert check(long, "correlation").value == pytest.approx(abs(np.corrcoef(a, b)[0, 1]), abs=1e-9)


def test_correlation_with_gaps_is_pairwise():
    held, new, _ = _with_correlation(0.9, n=80, seed=5)
    held = held.copy()
    held[[3, 10, 40]] = np.nan
    mkt = market(inst("AAPL"), inst("MSFT"), returns={"AAPL": held, "MSFT": new})
    decision = run(
        buy("MSFT", 1),
        account(hold("AAPL", 10)),
        mkt,
        [rule(RuleType.CORRELATION, threshold=0.95, lookback=80)],
    )
    ok = np.isfinite(held)
    assert check(decision, "correlation").value == pytest.approx(
        abs(np.corrcoef(held[ok], new[ok])[0, 1]), abs=1e-9
    )


def test_correlation_without_history_passes_and_says_so():
    held, _, _ = _with_correlation(0.5)
    mkt = market(inst("AAPL"), inst("MSFT"), inst("NVDA"), returns={"AAPL": held})
    rules = [rule(RuleType.CORRELATION, threshold=0.8)]
    decision = run(buy("MSFT", 1), account(hold("AAPL", 10)), mkt, rules)
    result = check(decision, "correlation")
    assert result.passed and result.value is None
    assert (
        "could not be measured" in result.message and "MSFT has no return history" in result.message
    )
    # A holding without history is named, the others still measured.
    _, related, _ = _with_correlation(0.95)
    mkt = market(inst("AAPL"), inst("MSFT"), inst("NVDA"), returns={"AAPL": held, "MSFT": related})
    decision = run(buy("MSFT", 1), account(hold("AAPL", 10), hold("NVDA", 5)), mkt, rules)
    result = check(decision, "correlation")
    assert not result.passed and "NVDA" in result.message


@pytest.mark.parametrize("level", [0.0, 0.01, 123.456])
def test_a_constant_return_series_cannot_be_correlated(level):
    _, new, other = _with_correlation(0.3)
    mkt = market(
        inst("AAPL"),
        inst("MSFT"),
        inst("XOM"),
        returns={"AAPL": np.full(60, level), "MSFT": new, "XOM": other},
    )
    decision = run(
        buy("MSFT", 1),
        account(hold("AAPL", 10), hold("XOM", 10)),
        mkt,
        [rule(RuleType.CORRELATION, threshold=0.8)],
    )
    result = check(decision, "correlation")
    assert result.value == pytest.approx(abs(np.corrcoef(new, other)[0, 1]), abs=1e-9)
    assert "XOM" in result.message and "AAPL" in result.message  # AAPL: not measurable


def test_correlation_ignores_the_symbol_itself_and_reducing_orders():
    held, new, _ = _with_correlation(0.99)
    mkt = market(inst("AAPL"), inst("MSFT"), returns={"AAPL": held, "MSFT": new})
    rules = [rule(RuleType.CORRELATION, threshold=0.8)]
    adding = run(buy("AAPL", 10), account(hold("AAPL", 10)), mkt, rules)
    assert adding.approved  # AAPL vs AAPL is not a diversification question
    both = account(hold("AAPL", 10), hold("MSFT", 10))
    assert not run(buy("MSFT", 10), both, mkt, rules).approved
    assert run(sell("MSFT", 10), both, mkt, rules).approved


@pytest.mark.parametrize(("quantity", "passed"), [(499, True), (500, True), (501, False)])
def test_leverage_at_under_and_over(quantity, passed):
    portfolio = account(hold("MSFT", 1000), hold("NVDA", -500), cash=1e9)  # gross 150,000
    rules = [rule(RuleType.LEVERAGE, max_leverage=2)]
    decision = run(buy("AAPL", quantity), portfolio, rules=rules)
    result = check(decision, "leverage")
    assert result.value == pytest.approx((150_000 + quantity * 100) / EQUITY)
    assert result.passed is passed
    if not passed:
        assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 500)


def test_leverage_counts_pending_orders():
    pending = (PendingOrder("XOM", "buy", 100, 100.0),)
    portfolio = account(hold("MSFT", 1000), hold("NVDA", -500), cash=1e9, pending=pending)
    decision = run(buy("AAPL", 500), portfolio, rules=[rule(RuleType.LEVERAGE, max_leverage=2)])
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 400)


@pytest.mark.parametrize(
    ("holdings", "pending", "symbol", "passed", "count"),
    [
        (("MSFT", "NVDA"), (), "AAPL", True, 3),  # at the limit
        (("MSFT", "NVDA", "XOM"), (), "AAPL", False, 4),  # over
        (("MSFT", "NVDA", "XOM"), (), "MSFT", True, 3),  # adds to an open position
        (("MSFT", "NVDA"), ("XOM",), "AAPL", False, 4),  # a pending order opens a position
        (("MSFT",), (), "AAPL", True, 2),  # under
    ],
)
def test_position_limit(holdings, pending, symbol, passed, count):
    portfolio = account(
        *(hold(s, 10) for s in holdings),
        pending=tuple(PendingOrder(s, "buy", 10, 100.0) for s in pending),
    )
    decision = run(
        buy(symbol, 10), portfolio, rules=[rule(RuleType.POSITION_LIMIT, max_positions=3)]
    )
    result = check(decision, "position_limit")
    assert (result.passed, result.value) == (passed, count)
    assert decision.outcome is (Outcome.APPROVED if passed else Outcome.REJECTED)


@pytest.mark.parametrize(("quantity", "passed"), [(99, True), (100, True), (101, False)])
def test_sector_limit_at_under_and_over(quantity, passed):
    mkt = market(inst("AAPL"), inst("MSFT"), inst("XOM", sector="Energy"))
    portfolio = account(hold("MSFT", 150), hold("NVDA", -50), hold("XOM", 500, sector="Energy"))
    rules = [rule(RuleType.SECTOR_LIMIT, limit_pct=30)]
    decision = run(buy("AAPL", quantity), portfolio, mkt, rules)
    result = check(decision, "sector_limit")
    # Gross Tech exposure: 15,000 long + 5,000 short + the order.
    assert result.value == pytest.approx((20_000 + quantity * 100) / EQUITY * 100)
    assert result.passed is passed
    if not passed:
        assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 100)
    energy = run(buy("XOM", 10), portfolio, mkt, rules)
    assert check(energy, "sector_limit").value == pytest.approx(51_000 / EQUITY * 100)


def test_sector_limit_without_a_sector_does_not_apply():
    mkt = market(inst("AAPL", sector=""))
    decision = run(buy("AAPL", 900), mkt=mkt, rules=[rule(RuleType.SECTOR_LIMIT, limit_pct=1)])
    assert decision.approved
    assert "no sector" in check(decision, "sector_limit").message


@pytest.mark.parametrize(
    ("ago", "blocked"),
    [
        (timedelta(minutes=0), True),
        (timedelta(minutes=29, seconds=59), True),
        (timedelta(minutes=30), False),  # the window is [stop, stop + 30 min)
        (timedelta(minutes=31), False),
    ],
)
def test_cooldown_window_edges(ago, blocked):
    portfolio = account(hold("AAPL", 10), last_stop_out={"AAPL": NOW - ago})
    rules = [rule(RuleType.COOLDOWN, minutes=30)]
    decision = run(buy("AAPL", 10), portfolio, rules=rules)
    assert decision.approved is not blocked
    assert ("COOLDOWN_ACTIVE" in decision.reason_codes) is blocked
    assert run(buy("MSFT", 10), portfolio, rules=rules).approved  # other symbols are free
    assert run(sell("AAPL", 10), portfolio, rules=rules).approved  # reducing passes


def test_rules_scoped_to_a_strategy_apply_only_to_its_orders():
    scoped = rule(RuleType.MAX_POSITION_SIZE, mode="units", limit=5, strategy_id=7)
    disabled = rule(RuleType.LEVERAGE, id=2, max_leverage=0.001, enabled=False)
    mine = run(buy(quantity=10, strategy_id=7), rules=[scoped, disabled])
    assert mine.reason_codes == ("MAX_POSITION_SIZE_EXCEEDED",)
    assert not [c for c in mine.checks if c.rule_id == 2]
    for strategy_id in (8, None):
        other = run(buy(quantity=10, strategy_id=strategy_id), rules=[scoped, disabled])
        assert other.outcome is Outcome.APPROVED
        assert not [c for c in other.checks if c.rule_id is not None]


# --------------------------------------------------------------------------- stops and targets


@pytest.mark.parametrize(
    ("mode", "value", "side", "price", "quantity", "atr", "expected"),
    [
        ("pct", 2, "buy", 100.0, 100, None, 98.0),
        ("pct", 2, "sell", 100.0, 100, None, 102.0),
        ("pct", 2, "buy", 100.03, 100, None, 98.02),  # 98.0294 rounded down (away)
        ("pct", 2, "sell", 100.03, 100, None, 102.04),  # 102.0306 rounded up (away)
        ("money", 250, "buy", 100.0, 100, None, 97.5),  # 250 / 100 units
        ("money", 250, "sell", 100.0, 100, None, 102.5),
        ("atr", 2, "buy", 100.0, 100, 1.37, 97.26),
        ("atr", 2, "sell", 100.0, 100, 1.37, 102.74),
    ],
)
def test_stop_loss_is_attached_on_the_right_side_and_tick(
    mode, value, side, price, quantity, atr, expected
):
    mkt = market(inst("AAPL", atr=atr))
    order = OrderProposal("AAPL", side, quantity, price)
    decision = run(order, account(), mkt, [rule(RuleType.STOP_LOSS, mode=mode, value=value)])
    assert decision.outcome is Outcome.APPROVED
    assert decision.stop_loss_price == pytest.approx(expected, abs=1e-9)
    assert on_step(decision.stop_loss_price, 0.01)
    risk_per_unit = abs(price - decision.stop_loss_price)
    raw_distance = {
        "pct": price * value / 100,
        "money": value / quantity,
        "atr": value * (atr or 0),
    }[mode]
    assert risk_per_unit >= raw_distance - 1e-9  # rounding never tightens past the rule...
    assert risk_per_unit < raw_distance + 0.01  # ...and moves by less than a tick


def test_stop_loss_with_atr_unavailable_rejects_or_warns():
    decision = run(buy(quantity=10), rules=[rule(RuleType.STOP_LOSS, mode="atr", value=2)])
    assert decision.outcome is Outcome.REJECTED
    assert decision.reason_codes == ("STOP_LOSS_UNAVAILABLE",)
    warn = run(
        buy(quantity=10), rules=[rule(RuleType.STOP_LOSS, mode="atr", value=2, action=Action.WARN)]
    )
    assert warn.outcome is Outcome.APPROVED and warn.stop_loss_price is None
    assert check(warn, "stop_loss").severity is Severity.WARNING


def test_a_given_stop_is_kept_and_checked():
    rules = [rule(RuleType.STOP_LOSS, value=2)]
    kept = run(buy(quantity=10, stop_loss_price=95.0), rules=rules)
    assert kept.stop_loss_price == 95.0
    wrong = run(buy(quantity=10, stop_loss_price=101.0), rules=rules)
    assert wrong.outcome is Outcome.REJECTED and wrong.reason_codes == ("INVALID_STOP_LOSS",)
    short_wrong = run(sell(quantity=10, stop_loss_price=99.0))  # no rule needed
    assert short_wrong.reason_codes == ("INVALID_STOP_LOSS",)
    target_wrong = run(buy(quantity=10, take_profit_price=99.0))
    assert target_wrong.reason_codes == ("INVALID_TAKE_PROFIT",)


def test_stops_use_the_final_quantity_and_skip_reducing_orders():
    rules = [
        rule(RuleType.MAX_POSITION_SIZE, id=1, mode="units", limit=200),
        rule(RuleType.STOP_LOSS, id=2, mode="money", value=200),
    ]
    decision = run(buy(quantity=300), rules=rules)
    assert (decision.outcome, decision.quantity) == (Outcome.REDUCED, 200)
    assert decision.stop_loss_price == pytest.approx(99.0)  # 200 / 200 units, not / 300
    closing = run(sell(quantity=100), account(hold("AAPL", 100)), rules=rules)
    assert closing.approved and closing.stop_loss_price is None


@pytest.mark.parametrize(
    ("mode", "value", "side", "stop", "expected"),
    [
        ("pct", 4, "buy", None, 104.0),
        ("pct", 4, "sell", None, 96.0),
        ("money", 500, "buy", None, 105.0),  # 500 / 100 units
        ("rr", 2, "buy", None, 104.0),  # stop 98 from the 2% rule: 2 x 2.00
        ("rr", 2, "sell", None, 96.0),
        ("rr", 3, "buy", 97.0, 109.0),  # the order's own stop: 3 x 3.00
    ],
)
def test_take_profit_is_attached(mode, value, side, stop, expected):
    rules = [
        rule(RuleType.STOP_LOSS, id=1, value=2),
        rule(RuleType.TAKE_PROFIT, id=2, mode=mode, value=value),
    ]
    order = OrderProposal("AAPL", side, 100, 100.0, stop_loss_price=stop)
    decision = run(order, rules=rules)
    assert decision.outcome is Outcome.APPROVED
    assert decision.take_profit_price == pytest.approx(expected, abs=1e-9)


def test_reward_risk_target_without_a_stop_is_unavailable():
    decision = run(buy(quantity=10), rules=[rule(RuleType.TAKE_PROFIT, mode="rr", value=2)])
    assert decision.outcome is Outcome.REJECTED
    assert decision.reason_codes == ("TAKE_PROFIT_UNAVAILABLE",)


# --------------------------------------------------------------------------- monitoring


def test_evaluate_account_reports_breaches_with_severity():
    portfolio = account(
        hold("AAPL", 300),  # 30,000: 31.6% of 95,000
        hold("MSFT", 100),
        hold("XOM", -50, sector="Energy"),
        equity=95_000,
        sod=100_000,
        hwm=110_000,
        pending=(PendingOrder("NVDA", "buy", 1_000, 100.0),),  # not counted by monitoring
    )
    rules = [
        rule(RuleType.DAILY_LOSS, id=1, limit=5, halt_on_breach=True),
        rule(RuleType.MAX_DRAWDOWN, id=2, limit_pct=20, warning_level=0.5),
        rule(RuleType.LEVERAGE, id=3, max_leverage=1),
        rule(RuleType.POSITION_LIMIT, id=4, max_positions=2),
        rule(RuleType.SECTOR_LIMIT, id=5, limit_pct=40),
        rule(RuleType.MAX_POSITION_SIZE, id=6, limit=30, warning_level=0.9),
        rule(RuleType.COOLDOWN, id=7),  # not an account-level rule
    ]
    results = {r.rule_id: r for r in evaluate_account(portfolio, market(), rules, now=NOW)}
    assert set(results) == {1, 2, 3, 4, 5, 6}
    assert (results[1].code, results[1].severity) == ("DAILY_LOSS_LIMIT", Severity.CRITICAL)
    drawdown = results[2]
    assert drawdown.value == pytest.approx(15 / 110 * 100)
    assert (drawdown.passed, drawdown.code, drawdown.severity) == (
        True,
        "NEAR_LIMIT",
        Severity.WARNING,
    )
    assert results[3].value == pytest.approx(45_000 / 95_000) and results[3].passed
    assert (results[4].passed, results[4].value) == (False, 3)
    assert results[4].severity is Severity.BREACH
    assert results[5].value == pytest.approx(40_000 / 95_000 * 100)  # Tech, 42.1% > 40%
    assert (results[5].passed, results[5].severity, results[5].subject) == (
        False,
        Severity.BREACH,
        "Tech",
    )
    assert (results[6].passed, results[6].value) == (False, pytest.approx(30_000 / 95_000 * 100))
    assert "AAPL" in results[6].message


def test_evaluate_account_lists_every_position_over_the_warning_level():
    portfolio = account(hold("AAPL", 250), hold("MSFT", 210), hold("NVDA", 50))
    rules = [rule(RuleType.MAX_POSITION_SIZE, limit=22, warning_level=0.9)]
    results = evaluate_account(portfolio, market(), rules, now=NOW)
    assert [(r.code, r.subject, round(r.value, 6)) for r in results] == [
        ("MAX_POSITION_SIZE_EXCEEDED", "AAPL", 25.0),
        ("NEAR_LIMIT", "MSFT", 21.0),
    ]
    calm = evaluate_account(account(hold("NVDA", 50)), market(), rules, now=NOW)
    assert [(r.code, r.value) for r in calm] == [("OK", pytest.approx(5.0))]


@pytest.mark.parametrize(
    ("quantity", "last", "stop", "target", "kind"),
    [
        (100, 94.99, 95.0, 110.0, "stop_loss"),
        (100, 95.0, 95.0, 110.0, "stop_loss"),
        (100, 95.01, 95.0, 110.0, None),
        (100, 110.0, 95.0, 110.0, "take_profit"),
        (-100, 105.0, 105.0, 90.0, "stop_loss"),
        (-100, 104.99, 105.0, 90.0, None),
        (-100, 89.5, 105.0, 90.0, "take_profit"),
        (100, 50.0, None, None, None),
    ],
)
def test_protective_exits(quantity, last, stop, target, kind):
    holding = Holding("AAPL", quantity, 100.0, last, stop_loss_price=stop, take_profit_price=target)
    exits = protective_exits(account(holding))
    assert stop_triggered(holding) is (kind == "stop_loss")
    assert take_profit_triggered(holding) is (kind == "take_profit")
    if kind is None:
        assert exits == []
    else:
        (exit_,) = exits
        assert (exit_.kind, exit_.quantity, exit_.last_price) == (kind, 100, last)
        assert exit_.side == ("sell" if quantity > 0 else "buy")
        assert exit_.trigger_price == (stop if kind == "stop_loss" else target)


# --------------------------------------------------------------------------- caching


def test_a_reused_portfolio_snapshot_is_re_derived_for_another_market():
    portfolio = account(hold("MSFT", 250, sector=""))  # sector comes from the instrument
    rules = [rule(RuleType.SECTOR_LIMIT, limit_pct=30)]
    tech = market(inst("AAPL"), inst("MSFT"))
    energy = market(inst("AAPL"), inst("MSFT", sector="Energy"))
    assert run(buy("AAPL", 100), portfolio, tech, rules).outcome is Outcome.REDUCED
    assert run(buy("AAPL", 100), portfolio, energy, rules).outcome is Outcome.APPROVED
    assert run(buy("AAPL", 100), portfolio, tech, rules).outcome is Outcome.REDUCED


def test_return_windows_follow_a_new_returns_mapping():
    held, related, unrelated = _with_correlation(0.95)
    rules = [rule(RuleType.CORRELATION, threshold=0.8)]
    portfolio = account(hold("AAPL", 10))
    first = market(inst("AAPL"), inst("MSFT"), returns={"AAPL": held, "MSFT": related})
    assert not run(buy("MSFT", 1), portfolio, first, rules).approved
    second = market(inst("AAPL"), inst("MSFT"), returns={"AAPL": held, "MSFT": unrelated})
    assert run(buy("MSFT", 1), portfolio, second, rules).approved
    # A fresh snapshot sharing the first mapping reuses its windows and still gets it right.
    again = MarketSnapshot(instruments=first.instruments, returns=first.returns)
    assert not run(buy("MSFT", 1), dataclasses.replace(portfolio), again, rules).approved


def test_a_stop_that_would_be_at_or_below_zero_is_unavailable():
    mkt = market(inst("PENNY", last_price=1.0))
    rules = [rule(RuleType.STOP_LOSS, mode="money", value=500)]
    decision = run(buy("PENNY", 100, price=1.0), mkt=mkt, rules=rules)  # 5.00 per unit
    assert decision.reason_codes == ("STOP_LOSS_UNAVAILABLE",)
    assert "at or below zero" in check(decision, "stop_loss").message


def test_decisions_serialise_to_strict_json():
    rules = [
        rule(RuleType.MAX_POSITION_SIZE, id=1, mode="units", limit=50),
        rule(RuleType.CORRELATION, id=2),
        rule(RuleType.STOP_LOSS, id=3),
    ]
    for order in (buy(quantity=80), buy("ZZZZ"), sell(quantity=10)):
        data = run(order, account(hold("AAPL", 10)), rules=rules).as_dict()
        text = json.dumps(data, allow_nan=False)
        assert json.loads(text)["outcome"] in {"approved", "reduced", "rejected"}


# --------------------------------------------------------------------------- property


def _random_case(rng: random.Random):
    symbols = ["A", "B", "C", "D", "E", "F"]
    lot = rng.choice([1.0, 10.0, 0.1])
    instruments = {
        s: InstrumentInfo(
            s, sector=rng.choice(["T", "E", ""]), lot_size=lot, atr=rng.choice([None, 2.0])
        )
        for s in symbols
    }
    returns = {
        s: np.random.default_rng(rng.randint(0, 99)).normal(0, 0.01, 80)
        for s in symbols
        if rng.random() < 0.8
    }
    holdings = tuple(
        Holding(
            s,
            rng.choice([-1, 1]) * rng.randint(1, 30) * lot,
            100.0,
            rng.uniform(80, 120),
            sector=rng.choice(["T", "E", ""]),
        )
        for s in rng.sample(symbols, rng.randint(0, 5))
    )
    pending = tuple(
        PendingOrder(
            rng.choice(symbols), rng.choice(["buy", "sell"]), rng.randint(1, 10) * lot, 100.0
        )
        for _ in range(rng.randint(0, 3))
    )
    equity = rng.uniform(20_000, 100_000)
    portfolio = PortfolioSnapshot(
        equity=equity,
        cash=rng.uniform(0, equity),
        start_of_day_equity=rng.uniform(equity * 0.95, equity * 1.05),
        high_water_mark=equity * rng.uniform(1, 1.2),
        state=rng.choice(list(TradingState)),
        holdings=holdings,
        pending=pending,
        last_stop_out={rng.choice(symbols): NOW - timedelta(minutes=rng.randint(0, 90))},
    )
    kinds = [
        (
            RuleType.MAX_POSITION_SIZE,
            {
                "mode": rng.choice(["pct_equity", "money", "units"]),
                "limit": rng.choice([5, 20, 40, 3000]),
            },
        ),
        (RuleType.DAILY_LOSS, {"limit": rng.choice([1, 3])}),
        (RuleType.MAX_DRAWDOWN, {"limit_pct": rng.choice([5, 15])}),
        (RuleType.CORRELATION, {"threshold": rng.choice([0.1, 0.5, 0.9])}),
        (RuleType.LEVERAGE, {"max_leverage": rng.choice([0.5, 1, 2])}),
        (RuleType.POSITION_LIMIT, {"max_positions": rng.randint(1, 6)}),
        (RuleType.SECTOR_LIMIT, {"limit_pct": rng.choice([10, 30, 80])}),
        (
            RuleType.STOP_LOSS,
            {"mode": rng.choice(["pct", "money", "atr"]), "value": rng.choice([1, 2, 50])},
        ),
        (RuleType.TAKE_PROFIT, {"mode": rng.choice(["pct", "money", "rr"]), "value": 2}),
        (RuleType.COOLDOWN, {"minutes": 30}),
    ]
    rules = [
        rule(
            kind,
            id=i,
            action=rng.choice([Action.BLOCK, Action.BLOCK, Action.WARN]),
            warning_level=rng.choice([None, 0.8]),
            **params,
        )
        for i, (kind, params) in enumerate(kinds)
        if rng.random() < 0.7
    ]
    proposal = OrderProposal(
        rng.choice(symbols),
        rng.choice(["buy", "sell"]),
        rng.randint(1, 60) * lot,
        round(rng.uniform(90, 110), 2),
        reduce_only=rng.random() < 0.1,
    )
    return proposal, portfolio, MarketSnapshot(instruments, returns), rules


@pytest.mark.parametrize("seed", range(4))
def test_a_reduced_quantity_passes_when_submitted_again(seed):
    """The bounds are exact: whatever the engine reduces an order to, it then approves."""
    rng = random.Random(seed)
    reduced = 0
    for _ in range(400):
        proposal, portfolio, mkt, rules = _random_case(rng)
        decision = evaluate_order(proposal, portfolio, mkt, rules, now=NOW)
        json.dumps(decision.as_dict(), allow_nan=False)
        assert decision.quantity <= proposal.quantity
        if decision.outcome is Outcome.REDUCED:
            reduced += 1
            again = evaluate_order(
                dataclasses.replace(proposal, quantity=decision.quantity),
                dataclasses.replace(portfolio),
                mkt,
                rules,
                now=NOW,
            )
            assert again.outcome is Outcome.APPROVED, (proposal, again.as_dict())
        evaluate_account(portfolio, mkt, rules, now=NOW)
    assert reduced > 10  # the property was exercised
