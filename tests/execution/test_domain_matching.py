"""The paper broker's matching rules (pure)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from apps.execution.domain.matching import (
    PaperConfig,
    PriceBar,
    WorkingOrder,
    match_at_price,
    match_on_bar,
    round_to_tick,
)

CFG = PaperConfig(
    slippage_bps=D("0"),
    commission_rate=D("0"),
    commission_minimum=D("0"),
    max_volume_participation=D("1"),
    lot_size=D("1"),
    tick_size=D("0.01"),
)
BAR = PriceBar(open=D("100"), high=D("105"), low=D("95"), close=D("102"), volume=D("1000"))


def order(**kw):
    base = {"side": "buy", "order_type": "market", "time_in_force": "day", "remaining": D("10")}
    return WorkingOrder(**(base | kw))


def test_market_buy_pays_slippage_rounded_against_the_trader():
    cfg = PaperConfig(**(CFG.__dict__ | {"slippage_bps": D("5")}))
    buy = match_at_price(order(), last_price=D("100.03"), volume=D("1000"), config=cfg)
    sell = match_at_price(order(side="sell"), last_price=D("100.03"), volume=D("1000"), config=cfg)
    # 100.03 * 1.0005 = 100.080015 -> up to 100.09 ; 100.03 * 0.9995 = 99.979985 -> down to 99.97
    assert buy.price == D("100.09") and sell.price == D("99.97")
    assert buy.quantity == D("10")


def test_commission_is_a_fraction_of_notional_with_a_minimum():
    cfg = PaperConfig(
        **(CFG.__dict__ | {"commission_rate": D("0.001"), "commission_minimum": D("1.50")})
    )
    small = match_at_price(
        order(remaining=D("1")), last_price=D("100"), volume=D("1000"), config=cfg
    )
    large = match_at_price(
        order(remaining=D("100")), last_price=D("100"), volume=D("1000"), config=cfg
    )
    assert small.commission == D("1.50")
    assert large.commission == D("10.0000")


@pytest.mark.parametrize(
    ("side", "limit", "expected"),
    [
        ("buy", "96", "96"),  # inside the range: fills at the limit
        ("buy", "101", "100"),  # at or above the open: fills at the open (better)
        ("buy", "94", None),  # below the low: no fill
        ("sell", "104", "104"),
        ("sell", "99", "100"),
        ("sell", "106", None),
    ],
)
def test_limit_on_bar(side, limit, expected):
    match = match_on_bar(order(side=side, order_type="limit", limit_price=D(limit)), BAR, CFG)
    assert match.price == (D(expected) if expected else None)
    assert match.filled == (expected is not None)


@pytest.mark.parametrize(
    ("side", "stop", "expected"),
    [
        ("buy", "103", "103"),  # range touches the stop: fills at the stop
        ("buy", "98", "100"),  # gapped through (open above stop): fills at the open
        ("buy", "106", None),
        ("sell", "97", "97"),
        ("sell", "101", "100"),
        ("sell", "94", None),
    ],
)
def test_stop_on_bar(side, stop, expected):
    match = match_on_bar(order(side=side, order_type="stop", stop_price=D(stop)), BAR, CFG)
    assert match.price == (D(expected) if expected else None)
    assert match.stop_triggered == (expected is not None)


def test_stop_limit_triggers_then_needs_its_limit():
    # Buy stop 103 triggers in the bar; limit 103.5 lets it fill at the trigger price.
    filled = match_on_bar(
        order(order_type="stop_limit", stop_price=D("103"), limit_price=D("103.5")), BAR, CFG
    )
    assert filled.stop_triggered and filled.price == D("103")
    # Limit 94 is below the bar's low: the stop triggers and the order rests as a limit.
    resting = match_on_bar(
        order(order_type="stop_limit", stop_price=D("103"), limit_price=D("94")), BAR, CFG
    )
    assert resting.stop_triggered and not resting.filled


def test_untriggered_stop_at_submission_rests():
    match = match_at_price(
        order(order_type="stop", stop_price=D("110")),
        last_price=D("100"),
        volume=D("1e6"),
        config=CFG,
    )
    assert not match.filled and not match.stop_triggered


def test_volume_cap_fills_partially_on_lot_grid():
    cfg = PaperConfig(**(CFG.__dict__ | {"max_volume_participation": D("0.1"), "lot_size": D("5")}))
    match = match_on_bar(
        order(remaining=D("100")), PriceBar(D("10"), D("10"), D("10"), D("10"), D("237")), cfg
    )
    # 10% of 237 = 23.7 -> 20 on a lot of 5
    assert match.quantity == D("20")
    assert "left" in match.note and not match.cancel_rest


def test_ioc_cancels_the_rest_and_fok_fills_all_or_nothing():
    cfg = PaperConfig(**(CFG.__dict__ | {"max_volume_participation": D("0.1")}))
    ioc = match_at_price(
        order(time_in_force="ioc", remaining=D("50")),
        last_price=D("10"),
        volume=D("100"),
        config=cfg,
    )
    assert ioc.quantity == D("10") and ioc.cancel_rest
    fok = match_at_price(
        order(time_in_force="fok", remaining=D("50")),
        last_price=D("10"),
        volume=D("100"),
        config=cfg,
    )
    assert not fok.filled and fok.cancel_rest
    fok_ok = match_at_price(
        order(time_in_force="fok", remaining=D("5")),
        last_price=D("10"),
        volume=D("100"),
        config=cfg,
    )
    assert fok_ok.quantity == D("5") and not fok_ok.cancel_rest


def test_marketable_limit_at_submission_gets_the_better_price():
    match = match_at_price(
        order(order_type="limit", limit_price=D("101")),
        last_price=D("100"),
        volume=D("1e6"),
        config=CFG,
    )
    assert match.price == D("100")
    resting = match_at_price(
        order(order_type="limit", limit_price=D("99")),
        last_price=D("100"),
        volume=D("1e6"),
        config=CFG,
    )
    assert not resting.filled and not resting.cancel_rest


def test_round_to_tick_never_reaches_zero():
    assert round_to_tick(D("0.001"), D("0.01"), up=False) == D("0.01")
    assert round_to_tick(D("1.234"), D("0.05"), up=True) == D("1.25")
