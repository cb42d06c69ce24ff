"""Portfolio risk: exposures, sectors, heat to stops, correlation matrix, drawdown, daily PnL
and historical VaR, each checked against a direct computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from apps.risk.domain.portfolio import pairwise_correlation, portfolio_risk, return_matrix
from apps.risk.domain.types import Holding, InstrumentInfo, MarketSnapshot, PortfolioSnapshot


def hold(symbol, quantity, last, sector="Tech", stop=None):
    return Holding(
        symbol=symbol,
        quantity=quantity,
        average_price=last,
        last_price=last,
        sector=sector,
        stop_loss_price=stop,
    )


def snapshot(*holdings, equity=100_000.0, sod=101_000.0, hwm=110_000.0):
    return PortfolioSnapshot(
        equity=equity,
        cash=50_000.0,
        start_of_day_equity=sod,
        high_water_mark=hwm,
        holdings=holdings,
    )


def market(returns=None, symbols=("AAPL", "MSFT", "XOM")):
    return MarketSnapshot(
        instruments={s: InstrumentInfo(symbol=s) for s in symbols}, returns=returns or {}
    )


def test_exposures_sectors_and_leverage():
    portfolio = snapshot(
        hold("AAPL", 100, 150.0),  # +15,000
        hold("MSFT", -50, 300.0),  # -15,000
        hold("XOM", 200, 100.0, sector="Energy"),  # +20,000
    )
    risk = portfolio_risk(portfolio, market())
    by_symbol = {p.symbol: p for p in risk.positions}
    assert by_symbol["MSFT"].side == "short" and by_symbol["MSFT"].value == -15_000
    assert by_symbol["XOM"].pct_of_equity == pytest.approx(20.0)
    assert (risk.long_exposure, risk.short_exposure) == (35_000, 15_000)
    assert (risk.gross_exposure, risk.net_exposure) == (50_000, 20_000)
    assert risk.leverage == pytest.approx(0.5)
    sectors = {s.sector: s for s in risk.sectors}
    assert (sectors["Tech"].gross, sectors["Tech"].net) == (30_000, 0)
    assert sectors["Tech"].gross_pct == pytest.approx(30.0)
    assert (sectors["Energy"].gross, sectors["Energy"].net_pct) == (20_000, pytest.approx(20.0))


def test_heat_counts_stops_on_the_losing_side_only():
    portfolio = snapshot(
        hold("AAPL", 100, 150.0, stop=140.0),  # 100 x 10 = 1,000
        hold("MSFT", -50, 300.0, stop=312.0),  # 50 x 12 = 600
        hold("XOM", 200, 100.0, stop=101.0),  # already crossed: 0
        hold("NVDA", 10, 500.0),  # no stop
    )
    risk = portfolio_risk(portfolio, market())
    assert risk.heat == pytest.approx(1_600)
    assert risk.heat_pct == pytest.approx(1.6)
    assert {r.symbol: r.risk for r in risk.stop_risks} == {
        "AAPL": pytest.approx(1_000),
        "MSFT": pytest.approx(600),
        "XOM": 0,
    }
    assert risk.unprotected == ("NVDA",)


def test_drawdown_and_daily_pnl():
    risk = portfolio_risk(snapshot(equity=99_000, sod=100_000, hwm=110_000), market())
    assert risk.drawdown_pct == pytest.approx(11_000 / 110_000 * 100)
    assert (risk.daily_pnl, risk.daily_pnl_pct) == (-1_000, pytest.approx(-1.0))
    stale = portfolio_risk(snapshot(equity=120_000, hwm=110_000), market())
    assert stale.drawdown_pct == 0  # a new high: the stored mark is stale


@pytest.mark.parametrize(("confidence", "lookback"), [(0.95, 250), (0.99, 250), (0.95, 100)])
def test_historical_var_matches_numpy(confidence, lookback):
    rng = np.random.default_rng(11)
    returns = {s: rng.normal(0.0005, 0.02, 300) for s in ("AAPL", "MSFT", "XOM")}
    portfolio = snapshot(
        hold("AAPL", 100, 150.0), hold("MSFT", -50, 300.0), hold("XOM", 200, 100.0)
    )
    risk = portfolio_risk(portfolio, market(returns), var_confidence=confidence, lookback=lookback)
    values = np.array([15_000.0, -15_000.0, 20_000.0])
    pnl = (
        values[0] * returns["AAPL"][-lookback:]
        + values[1] * returns["MSFT"][-lookback:]
        + values[2] * returns["XOM"][-lookback:]
    )
    assert risk.var == pytest.approx(-np.quantile(pnl, 1 - confidence), rel=1e-12)
    assert risk.var > 0
    assert risk.var_observations == lookback


def test_var_drops_days_with_gaps_and_names_holdings_without_history():
    rng = np.random.default_rng(12)
    a = rng.normal(0, 0.02, 50)
    b = rng.normal(0, 0.02, 50)
    b[[5, 17]] = np.nan
    portfolio = snapshot(hold("AAPL", 100, 100.0), hold("MSFT", 10, 100.0), hold("XOM", 5, 1.0))
    risk = portfolio_risk(portfolio, market({"AAPL": a, "MSFT": b}))
    ok = np.isfinite(b)
    pnl = 10_000 * a[ok] + 1_000 * b[ok]
    assert risk.var == pytest.approx(-np.quantile(pnl, 0.05))
    assert risk.var_observations == 48
    assert risk.var_missing == ("XOM",)


def test_correlation_matrix_is_nan_safe():
    rng = np.random.default_rng(13)
    a = rng.normal(size=40)
    b = 0.6 * a + rng.normal(size=40)
    c = rng.normal(size=40)
    c[:3] = np.nan
    portfolio = snapshot(
        hold("AAPL", 1, 1.0), hold("MSFT", 1, 1.0), hold("XOM", 1, 1.0), hold("NVDA", 1, 1.0)
    )
    risk = portfolio_risk(portfolio, market({"AAPL": a, "MSFT": b, "XOM": c}))
    assert risk.correlation_symbols == ("AAPL", "MSFT", "XOM", "NVDA")
    matrix = risk.correlation
    assert matrix[0, 1] == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert matrix[1, 0] == matrix[0, 1]
    assert matrix[0, 2] == pytest.approx(np.corrcoef(a[3:], c[3:])[0, 1])
    assert matrix[0, 0] == pytest.approx(1.0)
    assert np.isnan(matrix[3]).all()  # NVDA has no returns
    data = risk.as_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["correlation"]["matrix"][3] == [None, None, None, None]
    assert "NaN" not in text


def test_pairwise_correlation_edge_cases():
    x = np.array([0.01] * 20)  # constant: correlation undefined
    others = np.vstack([np.linspace(0, 1, 20), np.full(20, np.nan)])
    assert np.isnan(pairwise_correlation(x, others)).all()
    short = pairwise_correlation(np.arange(5.0), np.arange(5.0)[None, :])
    assert np.isnan(short[0])  # fewer than 10 paired days


def test_return_matrix_aligns_on_the_latest_day():
    matrix = return_matrix({"A": np.arange(10.0), "B": np.arange(3.0)}, ["A", "B", "C"], 5)
    assert matrix.shape == (3, 5)
    assert matrix[0].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert np.isnan(matrix[1, :2]).all() and matrix[1, 2:].tolist() == [0.0, 1.0, 2.0]
    assert np.isnan(matrix[2]).all()


def test_empty_portfolio():
    risk = portfolio_risk(snapshot(), market())
    assert (risk.gross_exposure, risk.heat, risk.var) == (0, 0, None)
    assert risk.correlation.shape == (0, 0)
    json.dumps(risk.as_dict(), allow_nan=False)
    assert math.isclose(risk.leverage, 0.0)
