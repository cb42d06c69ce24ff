"""The pure risk core: rule parameters, the pre-trade engine, position sizing and portfolio
risk. No Django, no clock (time is an argument): snapshots in, decisions out."""

from apps.risk.domain.engine import (
    evaluate_account,
    evaluate_order,
    protective_exits,
    stop_triggered,
    take_profit_triggered,
)
from apps.risk.domain.portfolio import PortfolioRisk, portfolio_risk
from apps.risk.domain.rules import (
    RULE_PARAM_SPECS,
    describe_rule_types,
    max_position_value,
    validate_rule_params,
    validate_warning_level,
)
from apps.risk.domain.sizing import (
    SizingResult,
    describe_sizing_methods,
    size_position,
    validate_sizing_params,
)
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
    ProtectiveExit,
    ReasonCode,
    Rule,
    RuleType,
    Severity,
    TradingState,
)

__all__ = [
    "RULE_PARAM_SPECS",
    "Action",
    "CheckResult",
    "Decision",
    "EngineLimits",
    "Holding",
    "InstrumentInfo",
    "MarketSnapshot",
    "OrderProposal",
    "Outcome",
    "PendingOrder",
    "PortfolioRisk",
    "PortfolioSnapshot",
    "ProtectiveExit",
    "ReasonCode",
    "Rule",
    "RuleType",
    "Severity",
    "SizingResult",
    "TradingState",
    "describe_rule_types",
    "describe_sizing_methods",
    "evaluate_account",
    "evaluate_order",
    "max_position_value",
    "portfolio_risk",
    "protective_exits",
    "size_position",
    "stop_triggered",
    "take_profit_triggered",
    "validate_rule_params",
    "validate_sizing_params",
    "validate_warning_level",
]
