"""Return metrics against empyrical (empyrical-reloaded) on the same data, and trade
statistics against their definitions.

The metrics sum in the same order as empyrical's bottleneck routines, so 1e-12 relative is a
comfortable bound (in practice the results are bit-identical).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import warnings

import empyrical
import numpy as np
import pytest

from apps.analytics.domain import metrics
from apps.analytics.domain.metrics import (
    TradeStats,
    alpha_beta,
    annual_return,
    annual_volatility,
    average_loss,
    average_win,
    calmar_ratio,
    cum_returns,
    drawdown_series,
    expectancy,
    max_drawdown,
    profit_factor,
    returns_from_equity,
    sharpe_ratio,
    sortino_ratio,
    trade_stats,
    win_rate,
)

RTOL = 1e-12
SEEDS = [0, 1, 2, 3]
PERIODS = [252, 52, 12]
SHAPES = ["normal", "with_nans", "all_positive", "constant", "losing", "short"]


def returns_for(shape: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0005, 0.012, 750)
    if shape == "with_nans":
        returns[rng.random(returns.size) < 0.08] = np.nan
    elif shape == "all_positive":
        returns = np.abs(returns)
    elif shape == "constant":
        returns = np.full(300, 0.0004)
    elif shape == "losing":
        returns = rng.normal(-0.002, 0.02, 400)
    elif shape == "short":
        returns = returns[: seed % 3 + 1]  # 1 to 3 returns
    return returns


def benchmark_for(returns: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    market = rng.normal(0.0004, 0.01, returns.size)
    market[rng.random(returns.size) < 0.03] = np.nan
    return 0.6 * np.nan_to_num(returns) + market


def assert_same(ours: object, reference: object) -> None:
    np.testing.assert_allclose(
        np.asarray(ours, dtype=np.float64),
        np.asarray(reference, dtype=np.float64),
        rtol=RTOL,
        atol=0.0,
        equal_nan=True,
    )


@pytest.fixture(autouse=True)
def _quiet_empyrical():
    # empyrical warns on all-NaN slices and empty means; the comparisons are the point here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("periods", PERIODS)
@pytest.mark.parametrize("risk_free", [0.0, 0.0001])
def test_sharpe_and_sortino_match_empyrical(
    seed: int, shape: str, periods: int, risk_free: float
) -> None:
    returns = returns_for(shape, seed)
    assert_same(
        sharpe_ratio(returns, risk_free, periods),
        empyrical.sharpe_ratio(returns, risk_free, annualization=periods),
    )
    assert_same(
        sortino_ratio(returns, risk_free, periods),
        empyrical.sortino_ratio(returns, risk_free, annualization=periods),
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("periods", PERIODS)
def test_return_and_risk_match_empyrical(seed: int, shape: str, periods: int) -> None:
    returns = returns_for(shape, seed)
    assert_same(max_drawdown(returns), empyrical.max_drawdown(returns))
    assert_same(
        annual_return(returns, periods), empyrical.annual_return(returns, annualization=periods)
    )
    assert_same(
        annual_volatility(returns, periods),
        empyrical.annual_volatility(returns, annualization=periods),
    )
    assert_same(
        calmar_ratio(returns, periods), empyrical.calmar_ratio(returns, annualization=periods)
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("periods", PERIODS)
@pytest.mark.parametrize("risk_free", [0.0, 0.0002])
def test_alpha_beta_match_empyrical(seed: int, shape: str, periods: int, risk_free: float) -> None:
    returns = returns_for(shape, seed)
    benchmark = benchmark_for(returns, seed)
    ours = alpha_beta(returns, benchmark, risk_free, periods)
    assert isinstance(ours, tuple) and len(ours) == 2
    assert_same(ours, empyrical.alpha_beta(returns, benchmark, risk_free, annualization=periods))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("starting_value", [0, 1, 10_000.0])
def test_cumulative_returns_and_drawdowns_match_empyrical(
    seed: int, shape: str, starting_value: float
) -> None:
    returns = returns_for(shape, seed)
    assert_same(
        cum_returns(returns, starting_value), empyrical.cum_returns(returns, starting_value)
    )
    assert_same(drawdown_series(returns), empyrical.stats.drawdown_series(returns))


@pytest.mark.parametrize("seed", SEEDS)
def test_returns_from_equity_match_empyrical(seed: int) -> None:
    equity = 10_000.0 * np.cumprod(1.0 + returns_for("normal", seed))
    returns = returns_from_equity(equity)
    assert_same(returns, empyrical.simple_returns(equity))
    # ... and compound back to the equity curve.
    assert_same(equity[0] * (1.0 + cum_returns(returns)), equity[1:])


def test_benchmark_beta_of_itself_is_one_and_alpha_zero() -> None:
    market = returns_for("normal", 5)
    alpha, beta = alpha_beta(market, market)
    assert beta == pytest.approx(1.0, rel=1e-12)
    assert alpha == pytest.approx(0.0, abs=1e-12)
    alpha, beta = alpha_beta(2.0 * market, market)
    assert beta == pytest.approx(2.0, rel=1e-12)


def test_fewer_than_two_returns_give_nan_like_empyrical() -> None:
    for returns in (np.array([]), np.array([0.01])):
        for value in (
            sharpe_ratio(returns),
            sortino_ratio(returns),
            annual_volatility(returns),
            *alpha_beta(returns, returns),
        ):
            assert math.isnan(value)
    assert math.isnan(max_drawdown(np.array([])))
    assert math.isnan(annual_return(np.array([])))
    assert cum_returns(np.array([])).size == 0


def test_constant_returns_have_no_dispersion() -> None:
    returns = np.full(100, 0.001)
    assert sharpe_ratio(returns) == math.inf  # std taken as exactly 0, like empyrical
    assert sortino_ratio(returns) == math.inf  # nothing below the target
    assert max_drawdown(returns) == 0.0
    assert math.isnan(calmar_ratio(returns))  # no drawdown to divide by
    assert math.isnan(alpha_beta(returns, returns)[1])  # a flat benchmark has no beta


def test_max_drawdown_is_the_worst_fall_from_a_peak() -> None:
    equity = np.array([100.0, 120.0, 90.0, 130.0, 104.0, 140.0])
    returns = returns_from_equity(np.concatenate([[100.0], equity[1:]]))
    worst = min((equity[j] - equity[: j + 1].max()) / equity[: j + 1].max() for j in range(6))
    assert max_drawdown(returns) == pytest.approx(worst, rel=1e-12)
    assert max_drawdown(returns) < 0


def test_nans_are_ignored_where_empyrical_ignores_them() -> None:
    returns = returns_for("normal", 7)
    holed = returns.copy()
    holed[::10] = np.nan
    present = returns[np.arange(returns.size) % 10 != 0]
    # Means and deviations skip NaN; compounding treats it as a flat period.
    assert annual_volatility(holed) == pytest.approx(annual_volatility(present), rel=1e-12)
    assert max_drawdown(holed) == pytest.approx(max_drawdown(present), rel=1e-12)
    assert cum_returns(holed)[-1] == pytest.approx(cum_returns(present)[-1], rel=1e-12)


@pytest.mark.parametrize("bad", [0, -252, math.nan, math.inf, "252", None, True])
def test_periods_must_be_positive(bad: object) -> None:
    returns = returns_for("normal", 8)
    for call in (sharpe_ratio, sortino_ratio, annual_return, annual_volatility, calmar_ratio):
        with pytest.raises(ValueError, match="periods must be a positive number"):
            call(returns, periods=bad)


def test_alpha_beta_refuses_unaligned_series() -> None:
    with pytest.raises(ValueError, match="same length"):
        alpha_beta(np.zeros(10), np.zeros(9))


def test_accepts_lists() -> None:
    returns = [0.01, -0.02, 0.015, 0.0, 0.005]
    assert_same(sharpe_ratio(returns), empyrical.sharpe_ratio(np.asarray(returns)))


# --------------------------------------------------------------------------- trades


def stats_by_hand(pnl: list[float]) -> dict[str, float]:
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p < 0]
    return {
        "win_rate": len(wins) / len(pnl),
        "average_win": sum(wins) / len(wins),
        "average_loss": sum(losses) / len(losses),
        "profit_factor": sum(wins) / -sum(losses),
        "expectancy": sum(pnl) / len(pnl),
        "largest_win": max(wins),
        "largest_loss": min(losses),
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_trade_statistics_follow_their_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pnl = np.round(rng.normal(20.0, 150.0, 57), 2)
    pnl[[3, 9]] = 0.0  # breakeven trades
    expected = stats_by_hand(pnl.tolist())
    stats = trade_stats(pnl)
    assert stats.trades == 57
    assert stats.wins + stats.losses + stats.breakeven == 57
    assert stats.breakeven == int(np.count_nonzero(pnl == 0))
    for name, value in expected.items():
        assert getattr(stats, name) == pytest.approx(value, rel=1e-12), name
    assert stats.win_rate == win_rate(pnl)
    assert stats.average_win == average_win(pnl)
    assert stats.average_loss == average_loss(pnl)
    assert stats.profit_factor == profit_factor(pnl)
    assert stats.expectancy == expectancy(pnl)
    assert stats.net_pnl == pytest.approx(stats.gross_profit + stats.gross_loss, rel=1e-12)
    # The expectancy is the win-rate-weighted average of wins and losses.
    loss_rate = stats.losses / stats.trades
    weighted = stats.win_rate * stats.average_win + loss_rate * stats.average_loss
    assert stats.expectancy == pytest.approx(weighted, rel=1e-12)


def test_no_trades() -> None:
    stats = trade_stats([])
    assert (stats.trades, stats.wins, stats.losses, stats.breakeven) == (0, 0, 0, 0)
    for value in (
        stats.win_rate,
        stats.average_win,
        stats.average_loss,
        stats.largest_win,
        stats.largest_loss,
        stats.profit_factor,
        stats.expectancy,
    ):
        assert math.isnan(value)
    assert stats.gross_profit == stats.gross_loss == stats.net_pnl == 0.0


def test_only_winners() -> None:
    stats = trade_stats([10.0, 5.0, 0.0])
    assert stats.profit_factor == math.inf
    assert math.isnan(stats.average_loss)
    assert math.isnan(stats.largest_loss)
    assert stats.win_rate == pytest.approx(2 / 3)
    assert stats.largest_win == 10.0


def test_only_losers() -> None:
    stats = trade_stats([-10.0, -5.0])
    assert stats.profit_factor == 0.0
    assert stats.win_rate == 0.0
    assert math.isnan(stats.average_win)
    assert stats.average_loss == -7.5
    assert stats.expectancy == -7.5


def test_only_breakeven_trades() -> None:
    stats = trade_stats([0.0, 0.0])
    assert math.isnan(stats.profit_factor)
    assert stats.win_rate == 0.0
    assert stats.expectancy == 0.0


def test_trade_stats_is_frozen() -> None:
    stats = trade_stats([1.0, -1.0])
    assert isinstance(stats, TradeStats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.trades = 3  # type: ignore[misc]


@pytest.mark.parametrize("bad", [[1.0, math.nan], [math.inf], [[1.0, 2.0]], ["x"]])
def test_trade_pnl_must_be_finite_numbers(bad: list) -> None:
    with pytest.raises(ValueError, match="pnl"):
        trade_stats(bad)


def test_module_is_pure() -> None:
    tree = ast.parse(inspect.getsource(metrics))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"django", "time", "datetime", "empyrical", "pandas"}
