"""Demo data: a trader, an admin, instruments across sectors with history, strategies and a
paper account. Everything goes through the apps' services; running it again changes nothing
that is already there (bars of an instrument that has history are not regenerated)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
from django.utils import timezone

from apps.accounts.models import TradingAccount, User
from apps.accounts.services import equity_snapshot_take, trading_account_create
from apps.execution.domain.intents import OrderIntent
from apps.execution.models import Order, OrderSource
from apps.execution.services import order_submit
from apps.marketdata.domain.aggregate import resample_bars
from apps.marketdata.domain.synthetic import gbm_bars, session_times
from apps.marketdata.models import Bar, Instrument
from apps.marketdata.services import bars_import
from apps.risk.models import RiskRule
from apps.risk.services import RuleInput, risk_rule_create
from apps.strategies.models import Strategy
from apps.strategies.services import strategy_create, strategy_update

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-trader-2026"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-trader-2026"

# symbol, name, sector, exchange, asset class, start price, annual volatility
INSTRUMENTS = (
    ("AAPL", "Apple Inc.", "Information Technology", "NASDAQ", "us_equity", 190.0, 0.25),
    ("MSFT", "Microsoft Corporation", "Information Technology", "NASDAQ", "us_equity", 410.0, 0.22),
    ("NVDA", "NVIDIA Corporation", "Information Technology", "NASDAQ", "us_equity", 120.0, 0.45),
    ("AMZN", "Amazon.com, Inc.", "Consumer Discretionary", "NASDAQ", "us_equity", 180.0, 0.30),
    ("JPM", "JPMorgan Chase & Co.", "Financials", "NYSE", "us_equity", 200.0, 0.22),
    ("GS", "The Goldman Sachs Group, Inc.", "Financials", "NYSE", "us_equity", 450.0, 0.26),
    ("XOM", "Exxon Mobil Corporation", "Energy", "NYSE", "us_equity", 115.0, 0.24),
    ("JNJ", "Johnson & Johnson", "Health Care", "NYSE", "us_equity", 155.0, 0.16),
    ("PFE", "Pfizer Inc.", "Health Care", "NYSE", "us_equity", 28.0, 0.25),
    ("PG", "The Procter & Gamble Company", "Consumer Staples", "NYSE", "us_equity", 165.0, 0.15),
    ("CAT", "Caterpillar Inc.", "Industrials", "NYSE", "us_equity", 340.0, 0.28),
    ("NEE", "NextEra Energy, Inc.", "Utilities", "NYSE", "us_equity", 70.0, 0.22),
    ("SPY", "SPDR S&P 500 ETF Trust", "Index", "NYSE Arca", "etf", 560.0, 0.15),
)

# name, kind, params, symbols, timeframe, mode, sizing method, sizing params
STRATEGIES = (
    (
        "SMA crossover (tech, 5m)",
        "sma_crossover",
        {"fast": 5, "slow": 20},
        ["AAPL", "MSFT", "NVDA"],
        "5m",
        "paper",
        "pct_equity",
        {"pct": 5},
    ),
    (
        "RSI mean reversion (banks, 15m)",
        "rsi_mean_reversion",
        {"period": 14},
        ["JPM", "GS"],
        "15m",
        "paper",
        "fixed_money",
        {"amount": 5000},
    ),
    (
        "SMA crossover (tech, daily)",
        "sma_crossover",
        {"fast": 10, "slow": 30},
        ["AAPL", "MSFT"],
        "1d",
        "paper",
        "pct_equity",
        {"pct": 10},
    ),
    (
        "Bollinger breakout (NVDA, 15m)",
        "bollinger_breakout",
        {"period": 20, "k": 2.0},
        ["NVDA"],
        "15m",
        "off",
        "pct_equity",
        {"pct": 5},
    ),
    ("MACD trend (SPY, daily)", "macd_trend", {}, ["SPY"], "1d", "off", "pct_equity", {"pct": 10}),
)

# The demo account's risk rules: type, params, other fields.
RISK_RULES = (
    ("max_position_size", {"mode": "pct_equity", "limit": 25}, {"warning_level": "0.8"}),
    (
        "daily_loss",
        {"mode": "pct", "limit": 3},
        {"warning_level": "0.5", "breach_state": "reducing", "escalate_after_minutes": 30},
    ),
    ("max_drawdown", {"limit_pct": 10}, {"warning_level": "0.7"}),
    ("leverage", {"max_leverage": 1.5}, {}),
    ("sector_limit", {"limit_pct": 40}, {"warning_level": "0.8"}),
    ("position_limit", {"max_positions": 10}, {}),
    ("stop_loss", {"mode": "pct", "value": 4}, {}),
    ("take_profit", {"mode": "rr", "value": 2}, {}),
    ("cooldown", {"minutes": 30}, {}),
)

# Positions the demo account opens on first seeding, so every page has something to show.
OPENING_ORDERS = (("AAPL", "50"), ("JPM", "40"), ("XOM", "60"), ("SPY", "10"))


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    bars_inserted: int = 0

    def add(self, text: str) -> None:
        self.created.append(text)


def _seed(symbol: str) -> int:
    return zlib.crc32(symbol.encode())


def _ensure_user(username: str, password: str, *, admin: bool, report: SeedReport) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        if admin:
            user = User.objects.create_superuser(username, f"{username}@example.com", password)
        else:
            user = User.objects.create_user(username, f"{username}@example.com", password)
        report.add(f"user {username}")
    return user


def _seed_bars(
    instrument: Instrument, s0: float, sigma: float, now: datetime, report: SeedReport
) -> None:
    if Bar.objects.filter(instrument=instrument).exists():
        return
    seed = _seed(instrument.symbol)
    minute_start = now - timedelta(days=30)
    daily_start = now - timedelta(days=365)
    daily_times = session_times(
        "1d", daily_start, minute_start.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    daily = gbm_bars(
        daily_times, seed=seed, s0=s0, sigma=sigma, base_volume=2_000_000, timeframe="1d"
    )
    last_close = float(daily["close"].iloc[-1]) if len(daily) else s0
    minute_times = session_times("1m", minute_start, now.replace(second=0, microsecond=0))
    minutes = gbm_bars(
        minute_times,
        seed=seed + 1,
        s0=last_close,
        sigma=sigma,
        base_volume=2_000_000,
        timeframe="1m",
    )
    frames = {"1m": minutes}
    for timeframe in ("5m", "15m", "1h"):
        frames[timeframe] = resample_bars(minutes, timeframe)
    # The daily series ends where the minute history starts; the last month's days are
    # aggregated from the minutes so every timeframe agrees.
    recent_days = resample_bars(minutes, "1d")
    if len(recent_days):
        daily = pd.concat([daily[daily.index < recent_days.index[0]], recent_days])
    frames["1d"] = daily
    for timeframe, frame in frames.items():
        result = bars_import(instrument=instrument, timeframe=timeframe, bars=frame)
        report.bars_inserted += result.inserted


def seed_demo(
    *,
    demo_password: str = DEMO_PASSWORD,
    admin_password: str = ADMIN_PASSWORD,
    now: datetime | None = None,
) -> SeedReport:
    now = now or timezone.now()
    report = SeedReport()
    demo = _ensure_user(DEMO_USERNAME, demo_password, admin=False, report=report)
    _ensure_user(ADMIN_USERNAME, admin_password, admin=True, report=report)

    for symbol, name, sector, exchange, asset_class, s0, sigma in INSTRUMENTS:
        instrument, created = Instrument.objects.get_or_create(
            symbol=symbol,
            defaults={
                "name": name,
                "sector": sector,
                "exchange": exchange,
                "asset_class": asset_class,
            },
        )
        if created:
            report.add(f"instrument {symbol}")
        _seed_bars(instrument, s0, sigma, now, report)

    account = TradingAccount.objects.filter(owner=demo, name="Demo paper").first()
    if account is None:
        account = trading_account_create(owner=demo, name="Demo paper", cash=Decimal("100000"))
        report.add("paper account 'Demo paper' with 100,000 USD")
        for symbol, quantity in OPENING_ORDERS:
            order_submit(
                account=account,
                intent=OrderIntent(
                    symbol=symbol,
                    side="buy",
                    quantity=Decimal(quantity),
                    client_order_id=f"demo-open-{symbol.lower()}",
                ),
                source=OrderSource.MANUAL,
            )
        report.add(f"{Order.objects.filter(account=account).count()} opening orders")

    for name, kind, params, symbols, timeframe, mode, sizing, sizing_params in STRATEGIES:
        if not Strategy.objects.filter(owner=demo, name=name).exists():
            strategy = strategy_create(
                owner=demo,
                account=account,
                name=name,
                kind=kind,
                params=params,
                symbols=symbols,
                timeframe=timeframe,
                mode=mode,
            )
            strategy_update(strategy=strategy, sizing_method=sizing, sizing_params=sizing_params)
            report.add(f"strategy {name}")
    if not RiskRule.objects.filter(account=account).exists():
        for rule_type, params, extra in RISK_RULES:
            risk_rule_create(
                owner=demo,
                account=account,
                data=RuleInput(rule_type=rule_type, params=params, **extra),
            )
        report.add(f"{len(RISK_RULES)} risk rules")
    equity_snapshot_take(account=account, now=now)
    return report
