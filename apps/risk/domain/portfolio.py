"""Portfolio risk: exposures, sector concentration, heat to stops, correlation, drawdown and
historical value at risk, for the risk page, the API and monitoring.

Everything is measured on the holdings as they stand (pending orders are the pre-trade
engine's business). Money is in the account currency, percentages in %.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.risk.domain.types import MarketSnapshot, PortfolioSnapshot

__all__ = [
    "MIN_CORRELATION_OBSERVATIONS",
    "PortfolioRisk",
    "PositionExposure",
    "SectorExposure",
    "StopRisk",
    "historical_var",
    "pairwise_correlation",
    "portfolio_risk",
    "return_matrix",
]

# A correlation from fewer paired daily returns than this is reported as unmeasurable.
MIN_CORRELATION_OBSERVATIONS = 10


def return_matrix(
    returns: Mapping[str, np.ndarray], symbols: Sequence[str], lookback: int
) -> np.ndarray:
    """The last `lookback` returns of each symbol as rows of a float64 matrix.

    Series are aligned on their LAST element (the most recent day); a shorter series is padded
    with NaN at the front, and a symbol without a series is a row of NaN. The window is
    `lookback` long, or as long as the longest series when that is shorter.
    """
    series = [returns.get(symbol) for symbol in symbols]
    lengths = [len(s) for s in series if s is not None]
    longest = max(lengths, default=0)
    length = min(lookback, longest)
    if length and len(lengths) == len(series) and min(lengths) >= length:
        # Every series long enough (the aligned case): one stack of the tails.
        return np.array([s[-length:] for s in series], dtype=np.float64).reshape(-1, length)
    matrix = np.full((len(symbols), length), np.nan)
    if length == 0:
        return matrix
    for row, values in enumerate(series):
        if values is None or len(values) == 0:
            continue
        tail = np.asarray(values, dtype=np.float64)[-length:]
        matrix[row, length - len(tail) :] = tail
    return matrix


def pairwise_correlation(
    x: np.ndarray, others: np.ndarray, *, min_observations: int = MIN_CORRELATION_OBSERVATIONS
) -> np.ndarray:
    """Pearson correlation of `x` (length L) with each row of `others` (k x L), each pair on
    the days where both are finite. NaN where fewer than `min_observations` days pair up or a
    series does not vary over them."""
    others = np.atleast_2d(others)
    if others.shape[0] == 0 or others.shape[1] == 0:
        return np.full(others.shape[0], np.nan)
    mask = np.isfinite(others) & np.isfinite(x)[None, :]
    count = mask.sum(axis=1)
    safe_count = np.maximum(count, 1)
    xs = np.where(mask, x[None, :], 0.0)
    ys = np.where(mask, others, 0.0)
    dx = np.where(mask, xs - (xs.sum(axis=1) / safe_count)[:, None], 0.0)
    dy = np.where(mask, ys - (ys.sum(axis=1) / safe_count)[:, None], 0.0)
    vx = (dx * dx).sum(axis=1)
    vy = (dy * dy).sum(axis=1)
    scale_x = np.abs(xs).max(axis=1)
    scale_y = np.abs(ys).max(axis=1)
    # A constant series leaves rounding noise after centring: compare with its magnitude.
    flat = (np.sqrt(vx / safe_count) <= 1e-12 * scale_x) | (
        np.sqrt(vy / safe_count) <= 1e-12 * scale_y
    )
    flat |= (vx == 0) | (vy == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (dx * dy).sum(axis=1) / np.sqrt(vx * vy)
    corr = np.clip(corr, -1.0, 1.0)
    corr[(count < min_observations) | flat] = np.nan
    return corr


@dataclass(frozen=True)
class PositionExposure:
    symbol: str
    side: str  # "long" | "short"
    quantity: float
    last_price: float
    value: float  # signed market value
    pct_of_equity: float | None  # |value| / equity * 100
    sector: str


@dataclass(frozen=True)
class SectorExposure:
    sector: str  # "" for holdings without a sector
    gross: float
    net: float
    gross_pct: float | None
    net_pct: float | None


@dataclass(frozen=True)
class StopRisk:
    symbol: str
    stop_price: float
    last_price: float
    risk: float  # money lost if the stop fills at its price: |qty| * |last - stop|


def _pct(value: float, equity: float) -> float | None:
    return value / equity * 100.0 if equity > 0 else None


def _json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class PortfolioRisk:
    equity: float
    cash: float
    positions: tuple[PositionExposure, ...]
    sectors: tuple[SectorExposure, ...]
    long_exposure: float
    short_exposure: float  # positive number
    gross_exposure: float
    net_exposure: float
    leverage: float | None  # gross / equity (None when equity <= 0)
    heat: float  # open risk to stops, money
    heat_pct: float | None
    stop_risks: tuple[StopRisk, ...]
    unprotected: tuple[str, ...]  # holdings without a stop loss
    correlation_symbols: tuple[str, ...]
    correlation: np.ndarray  # len(symbols) x len(symbols), NaN where unmeasurable
    high_water_mark: float | None
    drawdown_pct: float | None
    start_of_day_equity: float | None
    daily_pnl: float | None
    daily_pnl_pct: float | None
    var_confidence: float
    var_lookback: int
    var: float | None  # 1-day historical VaR, money; positive = a loss
    var_observations: int
    var_missing: tuple[str, ...]  # holdings left out of VaR for lack of return history

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (NaN and infinities become null)."""
        return {
            "equity": self.equity,
            "cash": self.cash,
            "positions": [
                {
                    "symbol": p.symbol,
                    "side": p.side,
                    "quantity": p.quantity,
                    "last_price": p.last_price,
                    "value": p.value,
                    "pct_of_equity": _json_number(p.pct_of_equity),
                    "sector": p.sector,
                }
                for p in self.positions
            ],
            "sectors": [
                {
                    "sector": s.sector,
                    "gross": s.gross,
                    "net": s.net,
                    "gross_pct": _json_number(s.gross_pct),
                    "net_pct": _json_number(s.net_pct),
                }
                for s in self.sectors
            ],
            "long_exposure": self.long_exposure,
            "short_exposure": self.short_exposure,
            "gross_exposure": self.gross_exposure,
            "net_exposure": self.net_exposure,
            "leverage": _json_number(self.leverage),
            "heat": self.heat,
            "heat_pct": _json_number(self.heat_pct),
            "stop_risks": [
                {
                    "symbol": r.symbol,
                    "stop_price": r.stop_price,
                    "last_price": r.last_price,
                    "risk": r.risk,
                }
                for r in self.stop_risks
            ],
            "unprotected": list(self.unprotected),
            "correlation": {
                "symbols": list(self.correlation_symbols),
                "matrix": [[_json_number(v) for v in row] for row in self.correlation.tolist()],
            },
            "high_water_mark": self.high_water_mark,
            "drawdown_pct": _json_number(self.drawdown_pct),
            "start_of_day_equity": self.start_of_day_equity,
            "daily_pnl": _json_number(self.daily_pnl),
            "daily_pnl_pct": _json_number(self.daily_pnl_pct),
            "var": {
                "confidence": self.var_confidence,
                "lookback": self.var_lookback,
                "value": _json_number(self.var),
                "observations": self.var_observations,
                "missing": list(self.var_missing),
            },
        }


def _correlation_matrix(windows: np.ndarray) -> np.ndarray:
    n = windows.shape[0]
    matrix = np.full((n, n), np.nan)
    for i in range(n):
        matrix[i, i:] = pairwise_correlation(windows[i], windows[i:])
        matrix[i:, i] = matrix[i, i:]
    return matrix


def historical_var(
    values: np.ndarray, windows: np.ndarray, *, confidence: float
) -> tuple[float | None, int]:
    """1-day historical VaR of positions worth `values` (signed money) given their daily
    returns `windows` (positions x days): the loss at the (1 - confidence) quantile of the
    simulated daily value changes ``sum_i values[i] * r[i, t]``, as a positive number when
    it is a loss. Days on which any position lacks a return are dropped. numpy's default
    (linear) quantile interpolation. Returns (VaR, days used); VaR None without data."""
    if windows.size == 0:
        return None, 0
    complete = np.isfinite(windows).all(axis=0)
    pnl = values @ windows[:, complete]
    if pnl.size == 0:
        return None, 0
    return float(-np.quantile(pnl, 1.0 - confidence)), int(pnl.size)


def portfolio_risk(
    portfolio: PortfolioSnapshot,
    market: MarketSnapshot,
    *,
    var_confidence: float = 0.95,
    lookback: int = 250,
) -> PortfolioRisk:
    """The risk of the holdings as they stand. See `PortfolioRisk` for the fields.

    - Exposure of a holding = quantity * last price; gross = sum of |values|, net = sum.
    - Sector of a holding = `Holding.sector`, else the instrument's, else "".
    - Heat = sum over holdings with a stop on the losing side of the last price of
      |qty| * |last - stop|; a stop already crossed counts 0 (monitoring closes it).
    - Drawdown = (HWM - equity) / HWM * 100 with HWM = max(high_water_mark, equity).
    - VaR: see `historical_var`, over the last `lookback` aligned returns.
    """
    if not 0 < var_confidence < 1:
        raise ValueError("var_confidence must be between 0 and 1")
    if lookback < 2:
        raise ValueError("lookback must be at least 2")
    equity = float(portfolio.equity)
    held = [h for h in portfolio.holdings if h.quantity != 0]
    positions = []
    sector_gross: dict[str, float] = {}
    sector_net: dict[str, float] = {}
    long_exposure = short_exposure = 0.0
    stop_risks = []
    unprotected = []
    for holding in held:
        info = market.instruments.get(holding.symbol)
        sector = holding.sector or (info.sector if info is not None else "")
        value = holding.quantity * holding.last_price
        positions.append(
            PositionExposure(
                symbol=holding.symbol,
                side="long" if holding.quantity > 0 else "short",
                quantity=holding.quantity,
                last_price=holding.last_price,
                value=value,
                pct_of_equity=_pct(abs(value), equity),
                sector=sector,
            )
        )
        sector_gross[sector] = sector_gross.get(sector, 0.0) + abs(value)
        sector_net[sector] = sector_net.get(sector, 0.0) + value
        if value > 0:
            long_exposure += value
        else:
            short_exposure -= value
        stop = holding.stop_loss_price
        if stop is None:
            unprotected.append(holding.symbol)
            continue
        distance = (holding.last_price - stop) * (1.0 if holding.quantity > 0 else -1.0)
        stop_risks.append(
            StopRisk(
                holding.symbol, stop, holding.last_price, abs(holding.quantity) * max(distance, 0.0)
            )
        )
    sectors = tuple(
        SectorExposure(
            sector=sector,
            gross=gross,
            net=sector_net[sector],
            gross_pct=_pct(gross, equity),
            net_pct=_pct(sector_net[sector], equity),
        )
        for sector, gross in sorted(sector_gross.items(), key=lambda item: -item[1])
    )
    gross = long_exposure + short_exposure
    heat = sum(risk.risk for risk in stop_risks)

    symbols = tuple(h.symbol for h in held)
    windows = return_matrix(market.returns, symbols, lookback)
    correlation = _correlation_matrix(windows)
    values = np.array([h.quantity * h.last_price for h in held], dtype=np.float64)
    has_returns = np.isfinite(windows).any(axis=1) if windows.size else np.zeros(len(held), bool)
    var, observations = historical_var(
        values[has_returns], windows[has_returns], confidence=var_confidence
    )

    hwm = portfolio.high_water_mark
    drawdown = None
    if hwm is not None and max(hwm, equity) > 0:
        peak = max(hwm, equity)
        drawdown = (peak - equity) / peak * 100.0
    sod = portfolio.start_of_day_equity
    daily_pnl = equity - sod if sod is not None else None
    daily_pnl_pct = daily_pnl / sod * 100.0 if daily_pnl is not None and sod else None

    return PortfolioRisk(
        equity=equity,
        cash=float(portfolio.cash),
        positions=tuple(positions),
        sectors=sectors,
        long_exposure=long_exposure,
        short_exposure=short_exposure,
        gross_exposure=gross,
        net_exposure=long_exposure - short_exposure,
        leverage=gross / equity if equity > 0 else None,
        heat=heat,
        heat_pct=_pct(heat, equity),
        stop_risks=tuple(stop_risks),
        unprotected=tuple(unprotected),
        correlation_symbols=symbols,
        correlation=correlation,
        high_water_mark=hwm,
        drawdown_pct=drawdown,
        start_of_day_equity=sod,
        daily_pnl=daily_pnl,
        daily_pnl_pct=daily_pnl_pct,
        var_confidence=var_confidence,
        var_lookback=lookback,
        var=var,
        var_observations=observations,
        var_missing=tuple(s for s, ok in zip(symbols, has_returns, strict=True) if not ok),
    )
