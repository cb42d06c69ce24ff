"""Performance metrics of a return series and statistics of closed trades.

The return metrics follow empyrical (empyrical-reloaded 0.7) exactly, including its edge cases,
so that results can be checked against it; the tests hold them to 1e-12 relative. Conventions:

- ``returns`` are simple (non-cumulative) period returns, e.g. daily: ``0.01`` is +1 %.
- ``periods`` is the number of return periods per year used to annualise (252 for daily bars,
  52 weekly, 12 monthly); empyrical calls it ``annualization``.
- NaN returns are ignored by the means and standard deviations, and count as a 0 % return
  (flat period) when returns are compounded (``cum_returns``, ``max_drawdown``,
  ``annual_return``) - as in empyrical. The length checks count every period, NaN included
  (``annual_return`` divides the number of periods, NaN included, by ``periods``).
- Fewer than two returns (one for ``max_drawdown`` / ``annual_return``) give NaN.
- Standard deviations are sample ones (ddof=1) except in ``alpha_beta``, which regresses with
  population moments like empyrical.
- Sums run left to right in one pass, the order empyrical's bottleneck routines use, so the
  results agree with empyrical to the last bits in practice.

Trade statistics work on the per-trade profit and loss (any currency, one value per closed
trade); their edge cases are documented on each function and on ``TradeStats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

__all__ = [
    "TradeStats",
    "alpha_beta",
    "annual_return",
    "annual_volatility",
    "average_loss",
    "average_win",
    "calmar_ratio",
    "cum_returns",
    "drawdown_series",
    "expectancy",
    "max_drawdown",
    "profit_factor",
    "returns_from_equity",
    "sharpe_ratio",
    "sortino_ratio",
    "trade_stats",
    "win_rate",
]


# --------------------------------------------------------------------------- helpers


def _series(values: ArrayLike, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _periods(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"periods must be a positive number, got {value!r}")
    result = float(value)
    if not (math.isfinite(result) and result > 0):
        raise ValueError(f"periods must be a positive number, got {value!r}")
    return result


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _sum(values: FloatArray) -> float:
    """Left-to-right sum (numpy's own sum is pairwise, empyrical's bottleneck is not)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def _nanmean(values: FloatArray) -> float:
    """Mean of the non-NaN values (NaN if there are none)."""
    present = values[~np.isnan(values)]
    return _sum(present) / present.size if present.size else math.nan


def _nanstd(values: FloatArray, ddof: int) -> float:
    """Standard deviation of the non-NaN values, two-pass (NaN if too few)."""
    present = values[~np.isnan(values)]
    if present.size <= ddof:
        return math.nan
    deviations = present - _sum(present) / present.size
    return math.sqrt(_sum(deviations * deviations) / (present.size - ddof))


# --------------------------------------------------------------------------- return metrics


def cum_returns(returns: ArrayLike, starting_value: float = 0) -> FloatArray:
    """Cumulative return after each period: ``prod(1 + r) - 1``, or the value of
    ``starting_value`` invested (``starting_value * prod(1 + r)``) when it is not 0.
    NaN returns count as 0 %."""
    r = _series(returns, "returns")
    start = _rate(starting_value, "starting_value")
    if r.size == 0:
        return r.copy()
    out = np.where(np.isnan(r), 0.0, r)
    out += 1.0
    np.cumprod(out, out=out)
    if start == 0:
        out -= 1.0
    else:
        out *= start
    return out


def drawdown_series(returns: ArrayLike) -> FloatArray:
    """Drawdown after each period: ``(value - running peak) / running peak`` of the
    compounded returns, where the peak includes the starting value (so a first loss is a
    drawdown). 0 at new highs, negative below them. For an equity curve, pass
    ``returns_from_equity(equity)``."""
    r = _series(returns, "returns")
    value = np.empty(r.size + 1)
    value[0] = 100.0
    value[1:] = cum_returns(r, starting_value=100.0)
    peak = np.fmax.accumulate(value)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = (value - peak) / peak
    return drawdown[1:]


def max_drawdown(returns: ArrayLike) -> float:
    """Deepest drawdown of the compounded returns as a negative fraction (``-0.25`` is a 25 %
    fall from the peak); 0 if the value never fell; NaN for no returns."""
    r = _series(returns, "returns")
    if r.size < 1:
        return math.nan
    return float(np.nanmin(drawdown_series(r)))


def annual_return(returns: ArrayLike, periods: float = 252) -> float:
    """Compound annual growth rate: ``prod(1 + r) ** (periods / len(returns)) - 1``; NaN for
    no returns, and when the total return is below -100 %."""
    r = _series(returns, "returns")
    per_year = _periods(periods)
    if r.size < 1:
        return math.nan
    years = r.size / per_year
    ending_value = np.nanprod(r + 1.0)
    with np.errstate(invalid="ignore"):
        return float(ending_value ** (1.0 / years) - 1.0)


def annual_volatility(returns: ArrayLike, periods: float = 252) -> float:
    """Sample standard deviation of the returns (ddof=1) times ``sqrt(periods)``."""
    r = _series(returns, "returns")
    factor = _periods(periods)
    if r.size < 2:
        return math.nan
    return _nanstd(r, ddof=1) * factor ** (1.0 / 2.0)


def sharpe_ratio(returns: ArrayLike, risk_free: float = 0.0, periods: float = 252) -> float:
    """Annualised Sharpe ratio: ``mean(r - risk_free) / std(r - risk_free, ddof=1) *
    sqrt(periods)``, with ``risk_free`` a constant per-period rate.

    When every (non-NaN) excess return is the same the deviation is taken as exactly 0, so the
    ratio is +/-inf (NaN if the excess return is 0), rather than a huge number made of
    rounding noise; empyrical does the same.
    """
    r = _series(returns, "returns")
    rate = _rate(risk_free, "risk_free")
    factor = _periods(periods)
    if r.size < 2:
        return math.nan
    excess = r - rate if rate != 0 else r
    deviation = _nanstd(excess, ddof=1)
    present = excess[~np.isnan(excess)]
    if math.isfinite(deviation) and present.size and present.max() == present.min():
        deviation = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(_nanmean(excess)) / np.float64(deviation) * np.sqrt(factor))


def _downside_risk(excess: FloatArray, factor: float) -> float:
    """Root mean square of the negative part of the excess returns, annualised."""
    downside = np.clip(excess, -np.inf, 0.0)
    np.square(downside, out=downside)
    return math.sqrt(_nanmean(downside)) * math.sqrt(factor)


def sortino_ratio(returns: ArrayLike, required_return: float = 0.0, periods: float = 252) -> float:
    """Annualised Sortino ratio: ``mean(r - required_return) * periods`` divided by the
    downside deviation ``sqrt(mean(min(r - required_return, 0) ** 2)) * sqrt(periods)`` (over
    all periods, the ones above the target counting as 0). +inf when nothing fell below the
    target and the mean is positive."""
    r = _series(returns, "returns")
    target = _rate(required_return, "required_return")
    factor = _periods(periods)
    if r.size < 2:
        return math.nan
    excess = r - target if target != 0 else r
    average_annual = np.float64(_nanmean(excess) * factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(average_annual / np.float64(_downside_risk(excess, factor)))


def calmar_ratio(returns: ArrayLike, periods: float = 252) -> float:
    """``annual_return / |max_drawdown|``; NaN when there was no drawdown (or no returns) and
    when the ratio is infinite."""
    r = _series(returns, "returns")
    factor = _periods(periods)
    deepest = max_drawdown(r)
    if not deepest < 0:
        return math.nan
    ratio = annual_return(r, factor) / abs(deepest)
    return math.nan if math.isinf(ratio) else ratio


def alpha_beta(
    returns: ArrayLike, benchmark: ArrayLike, risk_free: float = 0.0, periods: float = 252
) -> tuple[float, float]:
    """Annualised alpha and beta of the returns against the benchmark's, over the periods
    where both are present.

    ``beta = cov(r, b) / var(b)`` with population moments; NaN when the benchmark's variance is
    below 1e-30 (a flat benchmark). ``alpha = (1 + mean(r - rf - beta * (b - rf))) ** periods
    - 1``. Both NaN for fewer than two periods.
    """
    r = _series(returns, "returns")
    b = _series(benchmark, "benchmark")
    if r.size != b.size:
        raise ValueError(
            f"returns and benchmark must have the same length, got {r.size} and {b.size}"
        )
    rate = _rate(risk_free, "risk_free")
    factor = _periods(periods)
    if r.size < 2:
        return math.nan, math.nan
    independent = np.where(np.isnan(r), np.nan, b)
    residual = independent - _nanmean(independent)
    covariance = _nanmean(residual * r)
    variance = _nanmean(residual * residual)
    beta = covariance / variance if variance >= 1.0e-30 else math.nan
    excess = r - rate if rate != 0 else r
    benchmark_excess = b - rate if rate != 0 else b
    unexplained = excess - beta * benchmark_excess
    with np.errstate(invalid="ignore", over="ignore"):
        alpha = float(np.power(np.float64(_nanmean(unexplained)) + 1.0, factor) - 1.0)
    return alpha, beta


def returns_from_equity(equity: ArrayLike) -> FloatArray:
    """Simple returns of an equity curve (or prices): ``equity[i] / equity[i-1] - 1``, one
    fewer than the values. A zero value gives inf/NaN returns after it."""
    values = _series(equity, "equity")
    out = np.diff(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, values[:-1], out=out)
    return out


# --------------------------------------------------------------------------- trades


@dataclass(frozen=True)
class TradeStats:
    """Statistics of closed trades from their profit and loss.

    A win is a trade with PnL > 0, a loss one with PnL < 0; breakeven trades (PnL == 0) count
    in ``trades`` (and so in the win rate's denominator and the expectancy) but are neither.
    Averages and extremes of an empty group are NaN; with no trades every ratio is NaN.
    """

    trades: int
    wins: int
    losses: int
    breakeven: int
    win_rate: float  # wins / trades
    average_win: float  # mean PnL of the wins (positive)
    average_loss: float  # mean PnL of the losses (negative)
    largest_win: float  # the best trade's PnL (positive)
    largest_loss: float  # the worst trade's PnL (negative)
    gross_profit: float  # sum of the wins (0 if none)
    gross_loss: float  # sum of the losses (negative, 0 if none)
    net_pnl: float  # sum of all trades
    profit_factor: float  # gross_profit / |gross_loss|, see profit_factor()
    expectancy: float  # mean PnL per trade


def _pnl(pnl: ArrayLike) -> FloatArray:
    values = _series(pnl, "pnl")
    if not np.isfinite(values).all():
        raise ValueError("pnl must be finite numbers (one per closed trade)")
    return values


def win_rate(pnl: ArrayLike) -> float:
    """Share of trades with PnL > 0 among all trades (breakeven ones included); NaN with no
    trades."""
    values = _pnl(pnl)
    return float(np.count_nonzero(values > 0) / values.size) if values.size else math.nan


def average_win(pnl: ArrayLike) -> float:
    """Mean PnL of the winning trades (PnL > 0); NaN if there is none."""
    values = _pnl(pnl)
    wins = values[values > 0]
    return _sum(wins) / wins.size if wins.size else math.nan


def average_loss(pnl: ArrayLike) -> float:
    """Mean PnL of the losing trades (PnL < 0), a negative number; NaN if there is none."""
    values = _pnl(pnl)
    losses = values[values < 0]
    return _sum(losses) / losses.size if losses.size else math.nan


def profit_factor(pnl: ArrayLike) -> float:
    """Gross profit over gross loss (``sum of wins / |sum of losses|``): inf when there are wins
    but no losses, 0 when there are losses but no wins, NaN when there is neither (no trades,
    or only breakeven ones)."""
    values = _pnl(pnl)
    gross_profit = _sum(values[values > 0])
    gross_loss = -_sum(values[values < 0])
    if gross_loss == 0:
        return math.inf if gross_profit > 0 else math.nan
    return gross_profit / gross_loss


def expectancy(pnl: ArrayLike) -> float:
    """Mean PnL per trade (= win rate * average win + loss rate * average loss); NaN with no
    trades."""
    values = _pnl(pnl)
    return _sum(values) / values.size if values.size else math.nan


def trade_stats(pnl: ArrayLike) -> TradeStats:
    """All trade statistics of the given per-trade PnL at once."""
    values = _pnl(pnl)
    wins = values[values > 0]
    losses = values[values < 0]
    return TradeStats(
        trades=int(values.size),
        wins=int(wins.size),
        losses=int(losses.size),
        breakeven=int(values.size - wins.size - losses.size),
        win_rate=win_rate(values),
        average_win=average_win(values),
        average_loss=average_loss(values),
        largest_win=float(wins.max()) if wins.size else math.nan,
        largest_loss=float(losses.min()) if losses.size else math.nan,
        gross_profit=_sum(wins),
        gross_loss=_sum(losses),
        net_pnl=_sum(values),
        profit_factor=profit_factor(values),
        expectancy=expectancy(values),
    )
