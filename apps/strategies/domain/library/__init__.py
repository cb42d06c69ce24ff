"""The built-in strategies. Importing this package registers them, in this order (the order
`strategy_kinds()` lists them in), so the imports are not sorted."""

# isort: skip_file

from apps.strategies.domain.library.sma_crossover import SmaCrossover
from apps.strategies.domain.library.rsi_mean_reversion import RsiMeanReversion
from apps.strategies.domain.library.bollinger_breakout import BollingerBreakout
from apps.strategies.domain.library.macd_trend import MacdTrend

__all__ = ["BollingerBreakout", "MacdTrend", "RsiMeanReversion", "SmaCrossover"]
