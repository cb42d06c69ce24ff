"""Building blocks shared by the library's strategies: crossings, the event-driven
long/flat/short state machine, and assembling a SignalSeries with strengths and reasons."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from apps.strategies.domain.base import LazyReasons, SignalSeries
from apps.strategies.domain.params import ParamSpec

LONG_ENTRY = "long_entry"
LONG_EXIT = "long_exit"
SHORT_ENTRY = "short_entry"
SHORT_EXIT = "short_exit"

ALLOW_SHORT = ParamSpec(
    "allow_short",
    bool,
    False,
    label="Allow short",
    help="Go short on the opposite signal instead of only closing longs.",
)

_ACTIONS: dict[tuple[int, int], str] = {
    (0, 1): "open long",
    (1, 0): "close long",
    (0, -1): "open short",
    (-1, 0): "close short",
    (-1, 1): "reverse to long",
    (1, -1): "reverse to short",
}

# strength(event, indices) -> raw strengths at those bars; clipped to [0, 1] afterwards.
StrengthFn = Callable[[str, np.ndarray], np.ndarray]
# describe(event, index) -> the sentence explaining the event at that bar.
DescribeFn = Callable[[str, int], str]


def _previous(values: np.ndarray | float) -> np.ndarray | float:
    return values[:-1] if isinstance(values, np.ndarray) else values


def _current(values: np.ndarray | float) -> np.ndarray | float:
    return values[1:] if isinstance(values, np.ndarray) else values


def crossed_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at bar i when a[i-1] <= b[i-1] and a[i] > b[i] (b may be a level).

    A touch followed by a break counts, so a flat stretch that breaks upward is a cross. NaN
    (indicator warm-up) on either bar is never a cross.
    """
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (_previous(a) <= _previous(b)) & (_current(a) > _current(b))
    return out


def crossed_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at bar i when a[i-1] >= b[i-1] and a[i] < b[i] (b may be a level)."""
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (_previous(a) >= _previous(b)) & (_current(a) < _current(b))
    return out


def positions(
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray | None = None,
    short_exit: np.ndarray | None = None,
) -> np.ndarray:
    """Target exposure (int8) from entry/exit events, without a loop over bars.

    The series starts flat. An entry sets the exposure (+1 or -1; long wins if both fire),
    reversing an opposite position. An exit of the side currently held goes flat; any other
    exit does nothing. On one bar an entry takes precedence over an exit.
    """
    n = long_entry.size
    none = np.zeros(n, dtype=bool)
    short_entry = none if short_entry is None else short_entry
    short_exit = none if short_exit is None else short_exit
    bar = np.arange(n)
    entry = long_entry | short_entry
    last_entry = np.maximum.accumulate(np.where(entry, bar, -1))
    side_of_entry = np.where(long_entry, 1, -1).astype(np.int8)
    held = np.where(last_entry >= 0, side_of_entry[np.maximum(last_entry, 0)], 0)
    exits = ((held == 1) & long_exit) | ((held == -1) & short_exit)
    last_exit = np.maximum.accumulate(np.where(exits, bar, -1))
    # Strictly after: an exit on the entry's own bar does not undo the entry.
    return np.where(last_exit > last_entry, 0, held).astype(np.int8)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator clipped to [0, 1]; a zero or missing scale gives 1 when the
    numerator is positive (any move past a flat line is decisive), else 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    usable = np.isfinite(denominator) & (denominator > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(usable, numerator / np.where(usable, denominator, 1.0), numerator > 0)
    return np.clip(np.nan_to_num(value, nan=0.0), 0.0, 1.0)


_EVENT_KINDS = (LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT)


def build_signals(
    target: np.ndarray,
    strength: StrengthFn,
    describe: DescribeFn,
    indicators: Mapping[str, np.ndarray],
) -> SignalSeries:
    """A SignalSeries whose strength is filled at the target changes only and whose
    reasons are formatted when read."""
    changes = SignalSeries.change_indices(target)
    previous = np.where(changes > 0, target[changes - 1], 0).astype(np.int8)
    new = target[changes]
    # Which event caused each change: an entry when a position is opened or reversed,
    # otherwise the exit of the side that was held.
    kind_codes = np.select([new == 1, new == -1, previous == 1], [0, 2, 1], default=3)
    strengths = np.zeros(target.size)
    for code in np.unique(kind_codes):
        at = changes[kind_codes == code]
        raw = np.asarray(strength(_EVENT_KINDS[code], at), dtype=np.float64)
        strengths[at] = np.clip(np.nan_to_num(raw, nan=0.0), 0.0, 1.0)

    def reason(index: int) -> str:
        position = int(np.searchsorted(changes, index))
        action = _ACTIONS[(int(previous[position]), int(new[position]))]
        return f"{describe(_EVENT_KINDS[kind_codes[position]], index)}: {action}"

    return SignalSeries(
        target=target,
        strength=strengths,
        reasons=LazyReasons(changes, reason),
        indicators=indicators,
    )


def fmt_price(value: float) -> str:
    """Prices in reasons: cents for ordinary prices, significant digits for tiny ones."""
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


def fmt_number(value: float) -> str:
    """Parameter values in reasons and messages: 30.0 -> "30", 2.5 -> "2.5"."""
    return f"{value:g}"
