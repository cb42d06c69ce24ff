"""The trade journal: every figure of a round trip on the page and in the API, performance
attribution per strategy / symbol / side / tag (checked against an independent computation from
the trades' net PnL), and the CSV export (filters, streaming, formula injection)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.urls import reverse

from apps.core.templatetags.trading import signed_money
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Trade
from apps.execution.services import order_submit, trade_annotate
from apps.risk.services import RuleInput, risk_rule_create
from tests.factories import BarFactory, InstrumentFactory, StrategyFactory

pytestmark = pytest.mark.django_db

JOURNAL = reverse("execution:journal")
EXPORT = reverse("execution:journal_export")
API_TRADES = "/api/v1/trades/"
API_ATTRIBUTION = "/api/v1/trades/attribution/"
API_EXPORT = "/api/v1/trades/export/"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

CSV_HEADER = [
    "id",
    "account",
    "strategy",
    "symbol",
    "direction",
    "status",
    "entry_time",
    "exit_time",
    "holding_seconds",
    "entry_quantity",
    "entry_price",
    "exit_quantity",
    "exit_price",
    "fees",
    "gross_pnl",
    "net_pnl",
    "return_pct",
    "initial_stop_price",
    "r_multiple",
    "best_price",
    "worst_price",
    "mae",
    "mfe",
    "entry_reason",
    "exit_reason",
    "tags",
    "notes",
]


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


def _trade(account, symbol, side, qty, entry, exit, *, at, held, strategy=None):
    """One real round trip through the order service and the paper broker: an entry at
    ``entry`` at time ``at``, the exit at ``exit`` ``held`` later."""
    instrument = InstrumentFactory(symbol=symbol)
    exit_side = "sell" if side == "buy" else "buy"
    for price, order_side, when, source in (
        (entry, side, at, "strategy" if strategy else "manual"),
        (exit, exit_side, at + held, "manual"),
    ):
        instrument.last_price = D(price)
        instrument.save()
        with time_machine.travel(when, tick=False):
            order_submit(
                account=account,
                intent=OrderIntent(symbol=symbol, side=order_side, quantity=D(qty)),
                source=source,
                strategy=strategy if order_side == side else None,
            )
    return Trade.objects.filter(account=account, instrument=instrument).latest("id")


@pytest.fixture
def desk(user, account):
    """Five closed round trips (two strategies and a manual one, long and short, winners and
    losers, some tagged) with commission and a 5% stop-loss rule, so fees and R are real."""
    account.commission_rate = D("0.001")
    account.save()
    for symbol in ("AAPL", "MSFT"):
        BarFactory(instrument=InstrumentFactory(symbol=symbol), volume=10_000_000)
    risk_rule_create(
        owner=user,
        account=account,
        data=RuleInput(rule_type="stop_loss", params={"mode": "pct", "value": 5}),
    )
    trend = StrategyFactory(owner=user, account=account, name="Trend")
    revert = StrategyFactory(owner=user, account=account, name="Revert")
    hour = timedelta(hours=1)
    trades = {
        "trend_aapl": _trade(account, "AAPL", "buy", 10, "100", "110", at=T0, held=2.5 * hour,
                             strategy=trend),
        "trend_msft": _trade(account, "MSFT", "buy", 5, "200", "190", at=T0 + 3 * hour,
                             held=hour, strategy=trend),
        "revert_short": _trade(account, "AAPL", "sell", 10, "110", "100", at=T0 + 5 * hour,
                               held=timedelta(minutes=12), strategy=revert),
        "manual_msft": _trade(account, "MSFT", "buy", 4, "190", "195", at=T0 + 6 * hour,
                              held=timedelta(days=2, hours=3)),
        "revert_loss": _trade(account, "AAPL", "buy", 10, "100", "97", at=T0 + 60 * hour,
                              held=hour, strategy=revert),
    }  # fmt: skip
    trade_annotate(trade=trades["trend_aapl"], tags=["breakout", "momentum"], notes="clean break")
    trade_annotate(trade=trades["trend_msft"], tags=["breakout"])
    trade_annotate(trade=trades["revert_short"], tags=["fade"])
    for key, trade in trades.items():
        trade.refresh_from_db()
        assert trade.status == "closed", key
    return {"trend": trend, "revert": revert, **trades}


def test_round_trips_carry_real_figures(desk):
    trade = desk["trend_aapl"]
    # 10 x (110 - 100) = 100 gross; commission 0.1% of 1000 and of 1100 = 2.10.
    assert (trade.gross_pnl, trade.fees, trade.net_pnl) == (D("100"), D("2.1"), D("97.9"))
    assert trade.initial_stop_price == D("95")  # 5% under the entry
    assert trade.r_multiple == (D("97.9") / D("50")).quantize(D("0.0001"))  # risk = 10 x 5
    assert trade.holding_time == timedelta(hours=2, minutes=30)
    assert trade.mae <= 0 <= trade.mfe
    short = desk["revert_short"]
    assert (
        short.direction == "short" and short.net_pnl > 0 and short.initial_stop_price == D("115.5")
    )


# --- attribution --------------------------------------------------------------------------


def _groups_of(trade: Trade, by: str) -> list:
    if by == "strategy":
        return [trade.strategy.name if trade.strategy else "No strategy (manual)"]
    if by == "symbol":
        return [trade.instrument.symbol]
    if by == "direction":
        return [trade.direction.capitalize()]
    return [tag.name for tag in trade.tags.all()] or ["untagged"]


def expected_attribution(trades, by: str) -> dict[str, dict]:
    """The attribution computed in Python from each closed trade's net PnL and R."""
    groups = defaultdict(list)
    for trade in trades:
        if trade.status == "closed":
            for label in _groups_of(trade, by):
                groups[label].append(trade)
    out = {}
    for label, members in groups.items():
        pnl = [t.net_pnl for t in members]
        rs = [t.r_multiple for t in members if t.r_multiple is not None]
        profit = sum((p for p in pnl if p > 0), D("0"))
        loss = sum((p for p in pnl if p < 0), D("0"))
        out[label] = {
            "trades": len(pnl),
            "winners": sum(1 for p in pnl if p > 0),
            "losers": sum(1 for p in pnl if p < 0),
            "win_rate": (D(sum(1 for p in pnl if p > 0)) * 100 / len(pnl)).quantize(D("0.1")),
            "net_pnl": sum(pnl, D("0")),
            "profit_factor": (profit / -loss).quantize(D("0.01")) if loss else None,
            "expectancy": (sum(pnl, D("0")) / len(pnl)).quantize(D("0.01")),
            "average_r": (sum(rs, D("0")) / len(rs)).quantize(D("0.01")) if rs else None,
        }
    return out


def _as_decimals(group: dict) -> dict:
    return {
        key: (D(group[key]) if group[key] is not None and key not in ("trades", "winners",
                                                                       "losers") else group[key])
        for key in ("trades", "winners", "losers", "win_rate", "net_pnl", "profit_factor",
                    "expectancy", "average_r")
    }  # fmt: skip


@pytest.mark.parametrize("by", ["strategy", "symbol", "direction", "tag"])
def test_api_attribution_matches_an_independent_computation(api_client, account, desk, by):
    response = api_client.get(API_ATTRIBUTION, {"by": by})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["by"] == by
    got = {group["label"]: _as_decimals(group) for group in body["groups"]}
    expected = expected_attribution(Trade.objects.filter(account=account), by)
    assert got == expected
    # Best net PnL first.
    nets = [D(group["net_pnl"]) for group in body["groups"]]
    assert nets == sorted(nets, reverse=True)


def test_attribution_by_strategy_has_the_expected_groups(api_client, desk):
    body = api_client.get(API_ATTRIBUTION).json()  # strategy is the default
    labels = {group["label"]: group for group in body["groups"]}
    assert set(labels) == {"Trend", "Revert", "No strategy (manual)"}
    assert labels["Trend"]["key"] == desk["trend"].pk and labels["Trend"]["trades"] == 2
    assert labels["No strategy (manual)"]["key"] is None
    # One winner and one loser each: a real profit factor.
    assert labels["Revert"]["winners"] == 1 and labels["Revert"]["profit_factor"] is not None
    assert labels["No strategy (manual)"]["profit_factor"] is None  # no losing trade


def test_attribution_honours_the_journal_filters(api_client, account, desk):
    body = api_client.get(API_ATTRIBUTION, {"by": "strategy", "symbol": "aapl"}).json()
    got = {group["label"]: _as_decimals(group) for group in body["groups"]}
    aapl = Trade.objects.filter(account=account, instrument__symbol="AAPL")
    assert got == expected_attribution(aapl, "strategy")
    assert "No strategy (manual)" not in got  # the manual trade was MSFT


def test_attribution_by_tag_under_a_tag_filter_keeps_the_other_tags_of_those_trades(
    api_client, desk
):
    body = api_client.get(API_ATTRIBUTION, {"by": "tag", "tag": "breakout"}).json()
    got = {group["label"]: group["trades"] for group in body["groups"]}
    assert got == {"breakout": 2, "momentum": 1}


def test_attribution_ignores_open_trades_and_rejects_an_unknown_dimension(
    api_client, account, desk
):
    msft = InstrumentFactory(symbol="MSFT")
    order_submit(account=account, intent=OrderIntent(symbol="MSFT", side="buy", quantity=D("1")))
    assert Trade.objects.filter(account=account, status="open", instrument=msft).exists()
    body = api_client.get(API_ATTRIBUTION, {"by": "symbol"}).json()
    assert {g["label"]: g["trades"] for g in body["groups"]} == {"AAPL": 3, "MSFT": 2}

    response = api_client.get(API_ATTRIBUTION, {"by": "weekday"})
    assert response.status_code == 400 and "by" in response.json()["errors"]


def test_attribution_of_another_user_is_empty(other_api_client, desk):
    assert other_api_client.get(API_ATTRIBUTION).json() == {"by": "strategy", "groups": []}


def test_journal_page_shows_attribution_tables_and_summary(owner_client, account, desk):
    body = owner_client.get(JOURNAL).content.decode()
    for by in ("strategy", "symbol", "direction", "tag"):
        assert f'data-attribution="{by}"' in body
    trades = Trade.objects.filter(account=account)
    for by, label in (("strategy", "Trend"), ("symbol", "MSFT"), ("tag", "untagged")):
        expected = expected_attribution(trades, by)[label]
        row = body.split(f'data-group="{label}"', 1)[1].split("</tr>", 1)[0]
        assert signed_money(expected["net_pnl"]) in row, (by, row)
        assert f"{expected['win_rate']}%" in row
    net = sum((t.net_pnl for t in trades), D("0"))
    assert f"{signed_money(net / 5)}" in body  # expectancy in the summary


def test_journal_page_attribution_follows_the_filters(owner_client, desk):
    body = owner_client.get(JOURNAL, {"strategy": desk["revert"].pk}, HTTP_HX_REQUEST="true")
    html = body.content.decode()
    strategy_table = html.split('data-attribution="strategy"', 1)[1].split("</table>", 1)[0]
    assert 'data-group="Revert"' in strategy_table and 'data-group="Trend"' not in strategy_table
    assert f'data-trade="{desk["revert_short"].pk}"' in html
    assert f'data-trade="{desk["trend_aapl"].pk}"' not in html


def test_journal_strategy_filter_of_another_user_is_404(owner_client, other_user, desk):
    foreign = StrategyFactory(owner=other_user)
    assert owner_client.get(JOURNAL, {"strategy": foreign.pk}).status_code == 404
    assert owner_client.get(EXPORT, {"strategy": foreign.pk}).status_code == 404


# --- every figure of a trade --------------------------------------------------------------


def test_api_trades_carry_every_figure(api_client, desk):
    rows = {row["id"]: row for row in api_client.get(API_TRADES).json()["results"]}
    trade = desk["trend_aapl"]
    row = rows[trade.pk]
    assert row["holding_time"] == 9000  # 2h30
    assert rows[desk["manual_msft"].pk]["holding_time"] == 2 * 86400 + 3 * 3600
    assert D(row["r_multiple"]) == trade.r_multiple and D(row["initial_stop_price"]) == D("95")
    assert D(row["mae"]) == trade.mae and D(row["mfe"]) == trade.mfe
    assert D(row["best_price"]) == trade.best_price and D(row["worst_price"]) == trade.worst_price
    assert row["entry_reason"] == "Strategy order" and row["exit_reason"] == "Manual (page) order"
    assert row["strategy"] == desk["trend"].pk and sorted(row["tags"]) == ["breakout", "momentum"]


def test_api_holding_time_is_null_while_open(api_client, account, desk):
    order_submit(account=account, intent=OrderIntent(symbol="MSFT", side="buy", quantity=D("1")))
    open_trade = Trade.objects.get(account=account, status="open")
    row = api_client.get(f"{API_TRADES}{open_trade.pk}/").json()
    assert row["holding_time"] is None and row["r_multiple"] is None and row["exit_reason"] == ""


def test_journal_row_shows_every_figure(owner_client, desk):
    trade = desk["trend_aapl"]
    body = owner_client.get(JOURNAL).content.decode()
    row = body.split(f'data-trade="{trade.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "2h 30m" in row  # holding time
    assert f"{signed_money(trade.r_multiple)}R" in row
    assert signed_money(trade.mae) in row and signed_money(trade.mfe) in row
    assert "stop 95.00" in row and "fees 2.10" in row and "+97.90" in row
    assert "Trend" in row and "Strategy order" in row and "Manual (page) order" in row
    manual = body.split(f'data-trade="{desk["manual_msft"].pk}"', 1)[1].split("</tr>", 1)[0]
    assert "2d 3h" in manual


# --- CSV export ---------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    assert response.streaming
    content = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(content)))


def test_page_export_is_a_csv_download_of_the_whole_journal(owner_client, account, desk):
    response = owner_client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="journal-') and disposition.endswith(
        '.csv"'
    )
    assert response["Cache-Control"] == "no-store"
    rows = _csv(response)
    assert rows[0] == CSV_HEADER
    assert len(rows) == 1 + Trade.objects.filter(account=account).count() == 6
    by_id = {row[0]: dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]}
    trade = desk["trend_aapl"]
    row = by_id[str(trade.pk)]
    assert row["net_pnl"] == "97.9" and row["fees"] == "2.1" and row["holding_seconds"] == "9000"
    assert row["strategy"] == "Trend" and row["symbol"] == "AAPL" and row["direction"] == "long"
    assert row["tags"] == "breakout;momentum" and row["notes"] == "clean break"
    assert row["initial_stop_price"] == "95" and D(row["r_multiple"]) == trade.r_multiple
    assert row["entry_time"] == trade.entry_time.isoformat()
    loser = by_id[str(desk["trend_msft"].pk)]
    assert loser["net_pnl"].startswith("-")  # numbers are never quoted


def test_export_honours_the_filters(owner_client, api_client, desk):
    page = _csv(owner_client.get(EXPORT, {"symbol": "msft"}))
    assert {row[3] for row in page[1:]} == {"MSFT"} and len(page) == 3
    page = _csv(owner_client.get(EXPORT, {"strategy": desk["revert"].pk, "direction": "short"}))
    assert [row[0] for row in page[1:]] == [str(desk["revert_short"].pk)]

    api = _csv(api_client.get(API_EXPORT, {"tag": "breakout"}))
    assert sorted(row[0] for row in api[1:]) == sorted(
        [str(desk["trend_aapl"].pk), str(desk["trend_msft"].pk)]
    )
    assert api[0] == CSV_HEADER


def test_export_neutralises_formula_injection(owner_client, api_client, desk):
    trade = desk["revert_loss"]
    trade_annotate(
        trade=trade, notes='=HYPERLINK("http://evil.example","click")', tags=["@sum", "-cmd"]
    )
    strategy = desk["revert"]
    strategy.name = "+Revert"
    strategy.save()
    for response in (owner_client.get(EXPORT), api_client.get(API_EXPORT)):
        rows = {row[0]: dict(zip(CSV_HEADER, row, strict=True)) for row in _csv(response)[1:]}
        row = rows[str(trade.pk)]
        assert row["notes"] == '\'=HYPERLINK("http://evil.example","click")'
        assert row["tags"] == "'-cmd;@sum"
        assert row["strategy"] == "'+Revert"
        assert row["net_pnl"] == format(trade.net_pnl.normalize(), "f")  # a number, untouched
        assert row["net_pnl"].startswith("-")


def test_export_is_owner_scoped(other_api_client, other_account, desk):
    InstrumentFactory(symbol="AAPL")
    order_submit(
        account=other_account, intent=OrderIntent(symbol="AAPL", side="buy", quantity=D("1"))
    )
    rows = _csv(other_api_client.get(API_EXPORT))
    theirs = Trade.objects.get(account=other_account)
    assert [row[0] for row in rows[1:]] == [str(theirs.pk)]
    assert "clean break" not in str(rows)


def test_api_export_accepts_text_csv_and_streams_without_a_query_per_trade(
    api_client, desk, django_assert_max_num_queries
):
    with django_assert_max_num_queries(5):
        response = api_client.get(API_EXPORT, HTTP_ACCEPT="text/csv")
        rows = _csv(response)
    assert response.status_code == 200 and len(rows) == 6


def test_export_in_small_chunks_keeps_each_trades_tags(api_client, desk, monkeypatch):
    monkeypatch.setattr("apps.execution.selectors.JOURNAL_CSV_CHUNK", 2)
    rows = {row[0]: row for row in _csv(api_client.get(API_EXPORT))[1:]}
    tags = {pk: row[CSV_HEADER.index("tags")] for pk, row in rows.items()}
    assert tags[str(desk["trend_aapl"].pk)] == "breakout;momentum"
    assert tags[str(desk["revert_short"].pk)] == "fade"
    assert tags[str(desk["manual_msft"].pk)] == ""


def test_export_bad_filter_is_a_400_not_a_500(api_client, desk):
    response = api_client.get(API_EXPORT, {"closed_after": "yesterday"})
    assert response.status_code == 400 and "closed_after" in response.json()["errors"]


def test_journal_page_links_the_export_with_its_filters(owner_client, desk):
    body = owner_client.get(JOURNAL, {"symbol": "MSFT", "page": "1"}).content.decode()
    assert f'href="{EXPORT}?symbol=MSFT"' in body


def test_export_needs_a_signed_in_user(client, desk):
    response = client.get(EXPORT)
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("accounts:login")
    )
    assert client.get(API_EXPORT).status_code in (401, 403)
    assert client.get(API_ATTRIBUTION).status_code in (401, 403)
