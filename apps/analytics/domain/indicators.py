"""Technical indicators on price arrays, numerically compatible with TA-Lib.

Every function takes array-likes, returns ``float64`` arrays of the input's length and puts NaN
where TA-Lib does (the warm-up). After the warm-up the values agree with TA-Lib (the pinned
0.8.x C library) to about 1e-13 relative on realistic prices; the tests hold them to 1e-9.
Two places cannot be compared relatively: the MACD line and histogram are differences of two
price-sized EMAs, so near a zero crossing any two implementations agree only to ~1e-15 of the
price; and TA-Lib's own standard deviation is off by up to ~1e-8 relative on nearly flat
windows, where this module's is exact to ~1e-12.

Definitions (TA-Lib's):

- ``sma``: mean of the last ``n`` values; first value at index ``n - 1``.
- ``ema``: seeded with the SMA of the first ``n`` values at index ``n - 1``, then
  ``ema[i] = ema[i-1] + k * (x[i] - ema[i-1])`` with ``k = 2 / (n + 1)``.
- ``rsi``: Wilder's average gain and loss, seeded with the plain mean of the first ``n``
  price changes (first value at index ``n``), then ``avg = (avg * (n - 1) + change) / n``;
  ``rsi = 100 * gain / (gain + loss)``, and 0 when both averages are exactly zero (a flat
  market; TA-Lib 0.8 answers 0 there).
- ``true_range``: ``max(high - low, |prev_close - high|, |prev_close - low|)`` from index 1.
- ``atr``: Wilder average of the true range, seeded with the mean of the first ``n`` true
  ranges (first value at index ``n``).
- ``macd``: EMA(fast) - EMA(slow), both starting at index ``slow - 1`` (the fast EMA is seeded
  with the SMA of the ``fast`` values ending there, as TA-Lib does), the signal an EMA of that
  line; all three outputs start at index ``slow + signal - 2``. As in TA-Lib, ``fast`` and
  ``slow`` are swapped when ``slow < fast``.
- ``stddev`` / ``bollinger_bands``: population standard deviation (ddof=0) of the last ``n``
  values; the bands are ``sma +/- k * stddev``. A window whose values are all equal has a
  deviation of exactly 0.
- ``vwap``: cumulative typical price ``(high + low + close) / 3`` weighted by volume, optionally
  restarting whenever the ``session`` key changes. TA-Lib has no VWAP.

Missing values:

- Leading NaNs are skipped as the TA-Lib Python wrapper does: the warm-up starts at the first
  bar where every input is a number.
- A NaN after that makes the recursive indicators (EMA, RSI, ATR, MACD) NaN from that bar on,
  as in TA-Lib (for RSI TA-Lib writes 0 there, which reads as "extremely oversold"; this module
  writes NaN). For ATR a missing close only affects the next bar's true range, which falls back
  to ``high - low``, exactly as in TA-Lib.
- The window indicators (SMA, stddev, Bollinger) are NaN only for the windows that contain the
  missing value; TA-Lib's running sums stay NaN for the rest of the series instead.
- ``vwap`` leaves bars with a missing price or volume out of the cumulation and returns NaN for
  them.
- ``n = 1`` is accepted everywhere (TA-Lib refuses it for RSI, Bollinger, stddev and MACD's
  fast and slow periods); it gives the natural limit (identity for the averages, zero
  deviation, an RSI of 100 or 0 per bar).

How it is fast without a loop over bars: a first-order recursion
``y[i] = a * y[i-1] + b * u[i]`` (EMA, Wilder's smoothing, running sums) is cut into blocks of
8 bars; each block's response to its own inputs is one BLAS matrix product, and the state
carried from block to block is itself a (8 times shorter) recursion of the same kind. Window
variances come from sums of shifted values carried the same way (see ``_variance_fill``).
Long series go through in segments of 65,536 or 131,072 bars, so every scratch array stays in
cache and is reused.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import lfilter

FloatArray = NDArray[np.float64]

__all__ = [
    "atr",
    "bollinger_bands",
    "ema",
    "macd",
    "rsi",
    "sma",
    "stddev",
    "true_range",
    "vwap",
]

# Bars per block of the blocked recursion: the (n x 8) @ (8 x 8) products are the fastest per
# bar on the reference machine.
_BLOCK = 8
# Windows per block of the window statistics (fewer, longer blocks: less per-block work).
_WINDOW_BLOCK = 16
# Below this many blocks scipy's sequential filter is cheaper than the matrix set-up.
_MIN_BLOCKS = 256
# Bars per pass. Scratch arrays of this size stay in cache and are reused between passes (a
# fresh 8 MB temporary would cost about 2 ms of page faults on the reference machine), and the
# per-call overhead of the numpy calls is spread over enough bars. The window statistics keep
# more scratch arrays, so they take shorter segments.
_SEGMENT = 1 << 17
_WINDOW_SEGMENT = 1 << 16
# OpenBLAS hands a product to its thread pool above m*n*k = 4 * 65536. For these thin products
# the hand-off costs more than it saves (and made timings erratic), so they go in row chunks
# that stay under it.
_SINGLE_THREAD_GEMM = 4 * 65536
# A window's variance is recomputed directly when the shifted sums it comes from are more than
# 10,000 times larger (more than 4 digits would cancel; what is left is still good to ~1e-12).
_CANCELLATION_LIMIT = 1e-4
# In a direct computation, TA-Lib's floor: a variance this small relative to the mean squared
# deviation is the rounding noise of a flat window.
_FLAT_FLOOR = 1e-12


# --------------------------------------------------------------------------- validation


def _as_series(values: ArrayLike, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return np.ascontiguousarray(array)


def _same_length(**arrays: FloatArray) -> int:
    lengths = {name: array.size for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={size}" for name, size in lengths.items())
        raise ValueError(f"input arrays must have the same length, got {detail}")
    return next(iter(lengths.values()))


def _check_period(value: Any, name: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _check_multiplier(value: Any, name: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return result


def _first_valid(*arrays: FloatArray) -> int:
    """Index of the first bar where every input is a number (len if there is none)."""
    size = arrays[0].size
    if size == 0 or not any(math.isnan(array[0]) for array in arrays):
        return 0
    missing = np.isnan(arrays[0])
    for array in arrays[1:]:
        missing |= np.isnan(array)
    return size if missing.all() else int(np.argmin(missing))


def _output(size: int, warmup: int) -> FloatArray:
    """An output array whose first ``warmup`` values are already NaN."""
    out = np.empty(size)
    out[: min(warmup, size)] = np.nan
    return out


def _spans(size: int, segment: int = _SEGMENT) -> Iterator[tuple[int, int]]:
    for begin in range(0, size, segment):
        yield begin, min(begin + segment, size)


# --------------------------------------------------------------------------- recursion


@functools.lru_cache(maxsize=128)
def _plan(a: float, b: float, size: int = _BLOCK) -> tuple[FloatArray, FloatArray]:
    """Matrices for y[i] = a * y[i-1] + b * u[i] on blocks of ``size``:
    ``kernel[m, j] = b * a**(j - m)`` (j >= m), so that ``u_block @ kernel`` is a block's
    response to its own inputs, and its last column twice (see ``_row_dot``)."""
    offsets = np.arange(size)[None, :] - np.arange(size)[:, None]
    powers = b * np.power(a, np.arange(size, dtype=np.float64))
    kernel = np.where(offsets >= 0, powers[np.maximum(offsets, 0)], 0.0)
    last = np.ascontiguousarray(kernel[:, [-1, -1]])
    kernel.flags.writeable = False
    last.flags.writeable = False
    return kernel, last


def _matmul(rows: FloatArray, kernel: FloatArray, out: FloatArray) -> FloatArray:
    """``rows @ kernel`` written into ``out`` (which must not overlap ``rows``)."""
    chunk = max(1, _SINGLE_THREAD_GEMM // kernel.size)
    for begin in range(0, rows.shape[0], chunk):
        np.matmul(rows[begin : begin + chunk], kernel, out=out[begin : begin + chunk])
    return out


def _row_dot(rows: FloatArray, pair: FloatArray) -> FloatArray:
    """``rows @ pair[:, 0]`` computed as a two-column product: a matrix-vector product would
    go to OpenBLAS's threaded gemv."""
    product = _matmul(rows, pair, np.empty((rows.shape[0], 2)))
    return np.ascontiguousarray(product[:, 0])


def _sequential(u: FloatArray, a: float, b: float, state: float, out: FloatArray) -> None:
    if u.size:
        out[:] = lfilter([b], [1.0, -a], u, zi=[a * state])[0]


def _recurrence(u: FloatArray, a: float, b: float, state: float, out: FloatArray) -> None:
    """Write ``out[i] = a * out[i-1] + b * u[i]`` with ``out[-1] = state``.

    ``u`` is used as scratch space and must not overlap ``out``. Non-finite inputs keep the
    semantics of a sequential loop: a NaN stays in the state from its bar on.
    """
    size = u.size
    if a == 0.0:
        np.multiply(u, b, out=out)
        return
    blocks_count = size // _BLOCK
    if blocks_count < _MIN_BLOCKS:
        _sequential(u, a, b, state, out)
        return
    head = blocks_count * _BLOCK
    kernel, last = _plan(a, b)
    blocks = u[:head].reshape(blocks_count, _BLOCK)
    block_ends = _row_dot(blocks, last)  # each block's end value from its own inputs
    finite = np.isfinite(block_ends)
    if not finite.all():
        # The matrix product would smear a NaN over its whole block: keep the clean prefix
        # blocked and run the rest sequentially, as TA-Lib's loop would.
        clean = int(np.argmin(finite)) * _BLOCK
        if clean:
            _recurrence(u[:clean], a, b, state, out[:clean])
            state = float(out[clean - 1])
        _sequential(u[clean:], a, b, state, out[clean:])
        return
    carries = np.empty(blocks_count)  # the state at the end of each block
    _recurrence(block_ends, a**_BLOCK, 1.0, state, carries)
    # Feed the state entering each block in through its first input: b*u0' = b*u0 + a*state.
    feed = a / b
    blocks[0, 0] += feed * state
    blocks[1:, 0] += feed * carries[:-1]
    _matmul(blocks, kernel, out[:head].reshape(blocks_count, _BLOCK))
    if head < size:
        _sequential(u[head:], a, b, float(carries[-1]), out[head:])


def _smooth_into(u: FloatArray, a: float, b: float, state: float, out: FloatArray) -> float:
    """``out[i] = a * out[i-1] + b * u[i]`` from ``state``, segment by segment, leaving ``u``
    untouched; returns the final state."""
    scratch = np.empty(min(u.size, _SEGMENT))
    for begin, end in _spans(u.size):
        work = scratch[: end - begin]
        work[:] = u[begin:end]
        _recurrence(work, a, b, state, out[begin:end])
        state = float(out[end - 1])
    return state


@functools.lru_cache(maxsize=32)
def _spread_plan(
    fast: tuple[float, float], slow: tuple[float, float]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """For the difference of two recursions: the kernel of the difference, the last columns
    of both kernels (their block ends) and the rows that carry each state into a block."""
    fast_kernel, _ = _plan(*fast)
    slow_kernel, _ = _plan(*slow)
    kernel = fast_kernel - slow_kernel
    ends = np.ascontiguousarray(np.column_stack([fast_kernel[:, -1], slow_kernel[:, -1]]))
    steps = np.arange(1, _BLOCK + 1, dtype=np.float64)
    carry = np.stack([np.power(fast[0], steps), -np.power(slow[0], steps)])
    for array in (kernel, ends, carry):
        array.flags.writeable = False
    return kernel, ends, carry


def _spread_into(
    u: FloatArray,
    fast: tuple[float, float],
    slow: tuple[float, float],
    states: tuple[float, float],
    out: FloatArray,
) -> tuple[float, float]:
    """``out = y_fast - y_slow`` for two recursions ``y = a * y[-1] + b * u`` (``fast`` and
    ``slow`` are their (a, b)) from the given states, with one matrix product for both;
    ``u`` is left untouched. Returns the final states."""
    blocks_count = u.size // _BLOCK
    head = blocks_count * _BLOCK
    blocks = u[:head].reshape(blocks_count, _BLOCK)
    ends = None
    if blocks_count >= _MIN_BLOCKS:
        kernel, last_columns, carry = _spread_plan(fast, slow)
        ends = _matmul(blocks, last_columns, np.empty((blocks_count, 2)))
    if ends is None or not np.isfinite(ends).all():
        # Short, or holding a NaN: one recursion at a time (each keeps the NaN semantics).
        lines = np.empty((2, u.size))
        _recurrence(u.copy(), *fast, states[0], lines[0])
        _recurrence(u.copy(), *slow, states[1], lines[1])
        np.subtract(lines[0], lines[1], out=out)
        return float(lines[0, -1]), float(lines[1, -1])
    # The state at the end of each block, then the state entering each block.
    entering = np.empty((blocks_count, 2))
    entering[0] = states
    carried = []
    for column, (a, _) in enumerate((fast, slow)):
        block_states = np.empty(blocks_count)
        _recurrence(
            np.ascontiguousarray(ends[:, column]), a**_BLOCK, 1.0, states[column], block_states
        )
        entering[1:, column] = block_states[:-1]
        carried.append(float(block_states[-1]))
    lines = out[:head].reshape(blocks_count, _BLOCK)
    _matmul(blocks, kernel, lines)
    lines += entering @ carry
    if head == u.size:
        return carried[0], carried[1]
    # The last few bars, sequentially.
    tail = u[head:]
    fast_tail = lfilter([fast[1]], [1.0, -fast[0]], tail, zi=[fast[0] * carried[0]])[0]
    slow_tail = lfilter([slow[1]], [1.0, -slow[0]], tail, zi=[slow[0] * carried[1]])[0]
    np.subtract(fast_tail, slow_tail, out=out[head:])
    return float(fast_tail[-1]), float(slow_tail[-1])


# --------------------------------------------------------------------------- windows


def _window_count(flags: NDArray[np.bool_], width: int) -> FloatArray:
    """Exact number of True flags in every window of ``width`` consecutive flags."""
    as_float = flags.astype(np.float64)
    out = np.empty(flags.size - width + 1)
    out[0] = as_float[:width].sum()
    # Running sums of 0/1 values are integers below 2**53: the blocked recursion is exact.
    steps = np.subtract(as_float[width:], as_float[:-width])
    _recurrence(steps, 1.0, 1.0, float(out[0]), out[1:])
    return out


def _forward_filled(x: FloatArray, missing: NDArray[np.bool_]) -> FloatArray:
    """``x`` with each missing value replaced by the previous present one (leading ones by the
    first present one)."""
    source = np.where(missing, 0, np.arange(x.size))
    np.maximum.accumulate(source, out=source)
    filled = x[source]
    if missing[0]:
        lead = x.size if missing.all() else int(np.argmin(missing))
        filled[:lead] = x[lead] if lead < x.size else 0.0
    return filled


def _windowed(
    x: FloatArray,
    n: int,
    fill: Any,
    outs: tuple[FloatArray | None, ...],
    finish: Any = None,
) -> None:
    """Run ``fill(part, n, *outs_part) -> bool`` (False when it met a non-finite value) over
    the windows of ``x`` segment by segment; windows holding a missing value come out NaN.
    ``finish(begin, end)``, if given, then completes each segment while it is in cache."""
    for begin, end in _spans(x.size - n + 1, _WINDOW_SEGMENT):
        part = x[begin : end + n - 1]
        targets = tuple(None if out is None else out[begin:end] for out in outs)
        if not fill(part, n, *targets):
            missing = ~np.isfinite(part)
            fill(_forward_filled(part, missing), n, *targets)
            holes = _window_count(missing, n) > 0
            for target in targets:
                if target is not None:
                    target[holes] = np.nan
        if finish is not None:
            finish(begin, end)


def _mean_fill(x: FloatArray, n: int, out: FloatArray) -> bool:
    """Mean of each window of ``n`` values of ``x`` into ``out``, as a running sum seeded at
    the start of the segment (so rounding cannot drift over more than one segment)."""
    out[0] = float(x[:n].sum()) / n
    if out.size > 1:
        _recurrence(np.subtract(x[n:], x[:-n]), 1.0, 1.0 / n, float(out[0]), out[1:])
    return bool(np.isfinite(out[-1]))


def _variance_fill(
    x: FloatArray, n: int, out: FloatArray, mean: FloatArray | None, scratch: FloatArray
) -> bool:
    """Population variance (and, if ``mean`` is given, the mean) of each window of ``n``
    values of ``x`` (n >= 2); False, with nothing useful written, if ``x`` is not all finite.
    ``scratch`` is a (4, m) array, m the number of windows rounded up to whole groups
    (``_window_group``).

    TA-Lib 0.8's cancellation-free scheme, vectorised: sums of ``x - s`` and ``(x - s)**2``
    over the window, carried from block to block of 16 windows, with the shift ``s`` set to
    the local price level and the sums recomputed from the window itself for every group of a
    few blocks, so they stay of the size of the window's dispersion and nothing drifts.
    Windows where too many digits would still cancel, and flat windows, are computed directly.
    """
    size = _WINDOW_BLOCK
    group, span = _window_group(n)
    steps = out.size - 1  # window t + 1 replaces x[t] with x[t + n]
    padded = scratch.shape[1]
    groups = padded // span
    blocks_count = groups * group
    # The shift of a group: the value entering at its middle window, near all its windows.
    shifts = np.full(groups, x[-1])
    middles = x[n + span // 2 :: span][:groups]
    shifts[: middles.size] = middles
    # The sums of the window before each group, from the window itself (group 0's is window 0).
    seeds = min(groups, steps // span + 1)  # seed windows inside the data
    seed_dev = (
        np.lib.stride_tricks.as_strided(
            x, shape=(seeds, n), strides=(span * x.strides[0], x.strides[0])
        )
        - shifts[:seeds, None]
    )
    seed_sum = np.zeros(groups)
    seed_square = np.zeros(groups)
    ones = np.ones(n)
    seed_sum[:seeds] = seed_dev @ ones
    seed_square[:seeds] = (seed_dev * seed_dev) @ ones
    kernel, sums = _plan(1.0, 1.0 / n, size)

    entering, leaving = x[n:], x[:-n]
    diff, square = scratch[:2]
    np.subtract(entering, leaving, out=diff[:steps])
    diff[steps:] = 0.0
    # (x_in - s)**2 - (x_out - s)**2 = d * (d + 2 * (x_out - s)): every term exact or nearly
    # (x_in + x_out would be rounded at the price level).
    np.multiply(leaving, 2.0, out=square[:steps])
    square[steps:] = 0.0
    square.reshape(groups, span)[...] -= (2.0 * shifts)[:, None]
    square += diff
    square *= diff
    # Row sums of both in one product, then the sums entering each block.
    block_sums = _row_dot(scratch[:2].reshape(2 * blocks_count, size), sums).reshape(2, -1) * n
    if not (np.isfinite(block_sums[0].sum()) and math.isfinite(seed_square[0])):
        return False
    sum_entering = _carried(seed_sum, block_sums[0, :-1], group)
    square_entering = _carried(seed_square, block_sums[1, :-1], group)
    diff_blocks = diff.reshape(blocks_count, size)
    square_blocks = square.reshape(blocks_count, size)
    diff_blocks[:, 0] += sum_entering
    square_blocks[:, 0] += square_entering
    # centred: window mean - shift; second: window mean of (x - shift)**2.
    moments = _matmul(
        scratch[:2].reshape(2 * blocks_count, size),
        kernel,
        scratch[2:].reshape(2 * blocks_count, size),
    )
    centred, second = moments.reshape(2, padded)
    if mean is not None:
        mean[0] = shifts[0] + seed_sum[0] / n
        np.add(centred.reshape(groups, span), shifts[:, None], out=diff.reshape(groups, span))
        mean[1:] = diff[:steps]
    # Rounding in a group's sums is relative to the largest of them: its largest `second`
    # (every partial sum in its products and carried sums is n times one), seed included.
    # Windows whose variance is within 10,000x of that are computed directly; flat windows
    # always are (their computed variance is pure rounding).
    limit = np.maximum(second.reshape(groups, span).max(axis=1), seed_square / n)
    limit *= _CANCELLATION_LIMIT
    np.multiply(centred, centred, out=centred)
    second -= centred  # the variance: E[(x - s)**2] - E[x - s]**2
    out[0] = seed_square[0] / n - (seed_sum[0] / n) ** 2
    out[1:] = second[:steps]
    # Window t + 1 belongs to group t // span (window 0 is group 0's seed).
    lossy = second.reshape(groups, span) < limit[:, None]
    if lossy.any() or out[0] < limit[0]:
        redo = np.flatnonzero(lossy) + 1
        redo = redo[redo < out.size]
        if out[0] < limit[0]:
            redo = np.append(0, redo)
        out[redo] = _direct_variance(x[redo[:, None] + np.arange(n)])
    return True


def _window_group(n: int) -> tuple[int, int]:
    """Blocks per group of the window variance, and windows per group (about 8 n: the shift
    stays close to the prices, and the sums are reseeded often enough)."""
    group = -(-n // 2) * (16 // _WINDOW_BLOCK)
    return group, group * _WINDOW_BLOCK


def _carried(seeds: FloatArray, increments: FloatArray, group: int) -> FloatArray:
    """Per block: its group's seed plus the increments of the earlier blocks of the group
    (``increments[k]`` leads from block k to block k + 1)."""
    blocks_count = increments.size + 1
    steps = np.zeros(seeds.size * group)
    steps[1:blocks_count] = increments
    grid = steps.reshape(seeds.size, group)
    grid[:, 0] = seeds
    return (grid @ _prefix_kernel(group)).reshape(-1)[:blocks_count]


@functools.lru_cache(maxsize=64)
def _prefix_kernel(size: int) -> FloatArray:
    """``rows @ kernel`` is the running sum along each row."""
    kernel = np.triu(np.ones((size, size)))
    kernel.flags.writeable = False
    return kernel


def _direct_variance(windows: FloatArray) -> FloatArray:
    """Population variance of each row from its deviations from the row mean, with TA-Lib's
    floor that turns the rounding noise of a flat window into 0."""
    deviations = windows - windows.mean(axis=1, keepdims=True)
    centred = deviations.mean(axis=1)
    mean_square = np.mean(deviations * deviations, axis=1)
    variance = mean_square - centred * centred
    variance[variance < _FLAT_FLOOR * mean_square] = 0.0
    return variance


def _sma_into(x: FloatArray, n: int, out: FloatArray) -> None:
    """Window means of ``x`` (a series starting with a number) into ``out``."""
    if n == 1:
        out[:] = x
        return
    _windowed(x, n, _mean_fill, (out,))


def _moments_into(
    x: FloatArray, n: int, variance: FloatArray, mean: FloatArray | None, finish: Any = None
) -> None:
    """Window variances (and means) of ``x`` (a series starting with a number); ``finish`` as
    in ``_windowed``."""
    if n == 1:
        variance[:] = np.where(np.isfinite(x), 0.0, np.nan)
        if mean is not None:
            mean[:] = x
        if finish is not None:
            finish(0, x.size)
        return
    span = _window_group(n)[1]
    rows = -(-min(x.size - n + 1, _WINDOW_SEGMENT) // span) * span
    scratch = np.empty((4, rows))

    def fill(part: FloatArray, n: int, out: FloatArray, part_mean: FloatArray | None) -> bool:
        padded = -(-(out.size - 1) // span) * span or span
        work = scratch if padded == rows else np.empty((4, padded))
        return _variance_fill(part, n, out, part_mean, work)

    _windowed(x, n, fill, (variance, mean), finish)


# --------------------------------------------------------------------------- indicators


def sma(close: ArrayLike, n: int) -> FloatArray:
    """Simple moving average of the last ``n`` values (TA-Lib ``SMA``)."""
    x = _as_series(close, "close")
    n = _check_period(n, "n")
    start = _first_valid(x)
    out = _output(x.size, start + n - 1)
    if x.size - start >= n:
        _sma_into(x[start:], n, out[start + n - 1 :])
    return out


def stddev(close: ArrayLike, n: int) -> FloatArray:
    """Population standard deviation of the last ``n`` values (TA-Lib ``STDDEV`` with
    ``nbdev=1``); exactly 0 for a window of equal values."""
    x = _as_series(close, "close")
    n = _check_period(n, "n")
    start = _first_valid(x)
    out = _output(x.size, start + n - 1)
    if x.size - start >= n:
        deviation = out[start + n - 1 :]

        def finish(begin: int, end: int) -> None:
            np.sqrt(deviation[begin:end], out=deviation[begin:end])

        _moments_into(x[start:], n, deviation, None, finish)
    return out


def bollinger_bands(
    close: ArrayLike, n: int = 20, k: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands ``(upper, middle, lower)``: the SMA of the last ``n`` values plus and
    minus ``k`` population standard deviations (TA-Lib ``BBANDS`` with ``matype=0`` and
    ``nbdevup = nbdevdn = k``)."""
    x = _as_series(close, "close")
    n = _check_period(n, "n")
    k = _check_multiplier(k, "k")
    start = _first_valid(x)
    warmup = start + n - 1
    upper, middle, lower = (_output(x.size, warmup) for _ in range(3))
    if x.size - start < n:
        return upper, middle, lower
    width, mean, top = lower[warmup:], middle[warmup:], upper[warmup:]

    def finish(begin: int, end: int) -> None:
        # The variance is in the lower band's place: turn it into k * stddev, then the bands.
        band = width[begin:end]
        np.sqrt(band, out=band)
        band *= k
        np.add(mean[begin:end], band, out=top[begin:end])
        np.subtract(mean[begin:end], band, out=band)

    _moments_into(x[start:], n, width, mean, finish)
    return upper, middle, lower


def ema(close: ArrayLike, n: int) -> FloatArray:
    """Exponential moving average with ``k = 2 / (n + 1)``, seeded with the SMA of the first
    ``n`` values (TA-Lib ``EMA``)."""
    x = _as_series(close, "close")
    n = _check_period(n, "n")
    start = _first_valid(x)
    out = _output(x.size, start + n - 1)
    if x.size - start >= n:
        _ema_into(x[start:], n, out[start + n - 1 :])
    return out


def _ema_into(x: FloatArray, n: int, out: FloatArray) -> None:
    """Write the EMA of ``x`` from index ``n - 1`` on into ``out`` (``len(x) - n + 1``)."""
    k = 2.0 / (n + 1)
    out[0] = float(x[:n].sum()) / n
    _smooth_into(x[n:], 1.0 - k, k, float(out[0]), out[1:])


def rsi(close: ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's relative strength index (TA-Lib ``RSI``): 0 to 100, first value at index
    ``n``; 0 when neither a gain nor a loss is left in the averages."""
    x = _as_series(close, "close")
    n = _check_period(n, "n")
    start = _first_valid(x)
    out = _output(x.size, start + n)
    body = x[start:]
    if body.size <= n:
        return out
    first_changes = body[1 : n + 1] - body[:n]
    gain = float(np.maximum(first_changes, 0.0).sum()) / n
    loss = float(np.maximum(-first_changes, 0.0).sum()) / n
    total = gain + loss
    out[start + n] = 100.0 * (gain / total) if total != 0.0 else 0.0

    later = out[start + n + 1 :]  # one value per price change after the first n
    a, b = (n - 1) / n, 1.0 / n
    buffers = np.empty((4, min(later.size, _SEGMENT)))
    for begin, end in _spans(later.size):
        change, gains, average_gain, average_loss = buffers[:, : end - begin]
        result = later[begin:end]
        np.subtract(body[n + 1 + begin : n + 1 + end], body[n + begin : n + end], out=change)
        np.maximum(change, 0.0, out=gains)
        losses = np.subtract(gains, change, out=change)
        _recurrence(gains, a, b, gain, average_gain)
        _recurrence(losses, a, b, loss, average_loss)
        gain, loss = float(average_gain[-1]), float(average_loss[-1])
        total_average = np.add(average_gain, average_loss, out=average_loss)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(average_gain, total_average, out=result)
        result *= 100.0
        flat = total_average == 0.0
        if flat.any():
            result[flat] = 0.0
    return out


def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> FloatArray:
    """True range (TA-Lib ``TRANGE``): ``max(high - low, |prev_close - high|,
    |prev_close - low|)``, from the second bar on."""
    h, lo, c = _as_series(high, "high"), _as_series(low, "low"), _as_series(close, "close")
    size = _same_length(high=h, low=lo, close=c)
    start = _first_valid(h, lo, c)
    out = _output(size, start + 1)
    bars = size - start - 1
    if bars < 1:
        return out
    work = np.empty(min(bars, _SEGMENT))
    first = start + 1
    for begin, end in _spans(bars):
        now = slice(first + begin, first + end)
        before = slice(first - 1 + begin, first - 1 + end)
        _true_range_into(h[now], lo[now], c[before], out[now], work[: end - begin])
    return out


def _true_range_into(
    high: FloatArray, low: FloatArray, prev_close: FloatArray, out: FloatArray, work: FloatArray
) -> None:
    """True range of bars from their high, low and the previous close, into ``out``."""
    # fmax/fmin skip a missing previous close, leaving high - low as TA-Lib does; with
    # high >= low everywhere (which also rules out a missing high or low) this is bit for bit
    # TA-Lib's three-way maximum.
    np.fmax(high, prev_close, out=out)
    out -= np.fmin(low, prev_close, out=work)
    if not np.greater_equal(high, low).all():
        _exact_true_range_into(high, low, prev_close, out, work)


def _exact_true_range_into(
    high: FloatArray, low: FloatArray, prev_close: FloatArray, out: FloatArray, work: FloatArray
) -> None:
    """TA-Lib's own formula and NaN rules: a missing previous close leaves high - low, a
    missing high or low gives NaN."""
    np.subtract(high, low, out=work)
    np.fmax(work, np.abs(prev_close - high), out=out)
    np.fmax(out, np.abs(prev_close - low), out=out)
    np.maximum(out, work, out=out)


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> FloatArray:
    """Average true range with Wilder's smoothing (TA-Lib ``ATR``), first value at index
    ``n``."""
    h, lo, c = _as_series(high, "high"), _as_series(low, "low"), _as_series(close, "close")
    size = _same_length(high=h, low=lo, close=c)
    n = _check_period(n, "n")
    start = _first_valid(h, lo, c)
    out = _output(size, start + n)
    if size - start <= n:
        return out
    seed = np.empty(n)
    now = slice(start + 1, start + n + 1)
    _true_range_into(h[now], lo[now], c[start : start + n], seed, np.empty(n))
    state = float(seed.sum()) / n
    out[start + n] = state

    later = out[start + n + 1 :]  # one value per bar after the seed
    a, b = (n - 1) / n, 1.0 / n
    buffers = np.empty((2, min(later.size, _SEGMENT)))
    first = start + n + 1
    for begin, end in _spans(later.size):
        ranges, work = buffers[:, : end - begin]
        now = slice(first + begin, first + end)
        before = slice(first - 1 + begin, first - 1 + end)
        _true_range_into(h[now], lo[now], c[before], ranges, work)
        _recurrence(ranges, a, b, state, later[begin:end])
        state = float(later[end - 1])
    return out


def macd(
    close: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD ``(macd, signal, hist)`` as TA-Lib ``MACD``: EMA(fast) - EMA(slow) with both EMAs
    starting at index ``slow - 1``, its EMA(signal), and their difference; all three start at
    index ``slow + signal - 2``."""
    x = _as_series(close, "close")
    fast = _check_period(fast, "fast")
    slow = _check_period(slow, "slow")
    signal = _check_period(signal, "signal")
    if slow < fast:  # TA-Lib swaps them rather than refusing
        fast, slow = slow, fast
    start = _first_valid(x)
    first = start + slow + signal - 2
    line, trigger, hist = (_output(x.size, first) for _ in range(3))
    body = x[start:]
    if body.size <= slow + signal - 2:
        return line, trigger, hist

    # Both EMAs run from index slow - 1 of the body; the fast one is seeded with the SMA of
    # the `fast` values ending there (TA-Lib moves its start up to the slow EMA's). The spread
    # is built in the MACD output, whose warm-up is set back to NaN at the end. The signal
    # line (seeded with the SMA of the first `signal` spreads) and the histogram follow each
    # segment while it is in cache.
    spread = line[start + slow - 1 :]
    signal_line, histogram = trigger[first:], hist[first:]  # [j] is spread[signal - 1 + j]
    slow_k, fast_k, signal_k = 2.0 / (slow + 1), 2.0 / (fast + 1), 2.0 / (signal + 1)
    slow_state = float(body[:slow].sum()) / slow
    fast_state = float(body[slow - fast : slow].sum()) / fast
    spread[0] = fast_state - slow_state
    rest = body[slow:]
    fast_recursion, slow_recursion = (1.0 - fast_k, fast_k), (1.0 - slow_k, slow_k)
    states = (fast_state, slow_state)
    signal_state = math.nan
    done = 0  # signal values written so far
    work = np.empty(min(rest.size + 1, _SEGMENT))
    for begin, end in _spans(rest.size):
        states = _spread_into(
            rest[begin:end], fast_recursion, slow_recursion, states, spread[1 + begin : 1 + end]
        )
        known = 2 + end - signal  # signal values computable from the spreads so far
        if known <= done:
            continue
        previous = done
        if done == 0:
            signal_state = float(spread[:signal].sum()) / signal
            signal_line[0] = signal_state
            done = 1
        if known > done:
            u = work[: known - done]
            u[:] = spread[signal - 1 + done : signal - 1 + known]
            _recurrence(u, 1.0 - signal_k, signal_k, signal_state, signal_line[done:known])
            signal_state = float(signal_line[known - 1])
        np.subtract(
            spread[signal - 1 + previous : signal - 1 + known],
            signal_line[previous:known],
            out=histogram[previous:known],
        )
        done = known
    line[start + slow - 1 : first] = np.nan
    return line, trigger, hist


def vwap(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    volume: ArrayLike,
    session: ArrayLike | None = None,
) -> FloatArray:
    """Volume-weighted average price: cumulative sum of typical price ``(h + l + c) / 3`` times
    volume over cumulative volume.

    ``session`` (optional, one key per bar: ints, dates, datetime64...) restarts the cumulation
    whenever the key differs from the previous bar's, e.g. one key per trading day. Bars with a
    missing price or volume are left out (NaN output); before any volume has traded in a
    session the VWAP is NaN. Volumes must not be negative.
    """
    h, lo, c = _as_series(high, "high"), _as_series(low, "low"), _as_series(close, "close")
    v = _as_series(volume, "volume")
    size = _same_length(high=h, low=lo, close=c, volume=v)
    if (v < 0).any():
        raise ValueError("volume must not be negative")
    starts = None
    if session is not None:
        keys = np.asarray(session)
        if keys.ndim != 1 or keys.size != size:
            raise ValueError(f"session must be one key per bar ({size}), got shape {keys.shape}")
        starts = np.zeros(size, dtype=bool)
        starts[1:] = np.asarray(keys[1:] != keys[:-1], dtype=bool)

    out = np.empty(size)
    value_state = volume_state = 0.0  # totals of the session in progress
    for begin, end in _spans(size):
        bars = slice(begin, end)
        value = h[bars] + lo[bars]
        value += c[bars]
        value /= 3.0
        value *= v[bars]
        traded = v[bars]
        missing = np.isnan(value)
        if missing.any():
            value[missing] = 0.0
            traded = np.where(missing, 0.0, traded)
        restarts = None if starts is None else np.flatnonzero(starts[bars])
        value, value_state = _session_sums(value, restarts, value_state)
        traded, volume_state = _session_sums(traded, restarts, volume_state)
        result = out[bars]
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(value, traded, out=result)
        result[(traded <= 0.0) | missing] = np.nan
    return out


def _session_sums(
    values: FloatArray, restarts: NDArray[np.intp] | None, carry: float
) -> tuple[FloatArray, float]:
    """Running sums of ``values``, starting from ``carry`` and restarting from 0 at each index
    in ``restarts``; returns them and the final sum."""
    sums = np.empty(values.size)
    if restarts is None or restarts.size == 0:
        _recurrence(values.copy(), 1.0, 1.0, carry, sums)
        return sums, float(sums[-1])
    # A session's sum as the difference of two running sums would lose the digits of the
    # earlier sessions. Split each value into a part on a coarse binary grid, whose running
    # sum is exact (integers below 2**53 in grid units), and a remainder too small to matter.
    total = float(np.abs(values).sum())
    exponent = min(max(51 - math.frexp(total)[1], -1000), 1000) if total else 0
    coarse = np.rint(np.ldexp(values, exponent))
    fine = values - np.ldexp(coarse, -exponent)
    coarse_sums = np.empty(values.size)
    _recurrence(coarse, 1.0, 1.0, 0.0, coarse_sums)
    fine_sums = np.empty(values.size)
    _recurrence(fine, 1.0, 1.0, 0.0, fine_sums)
    # Subtract the running sums just before each session (the first piece continues `carry`).
    lengths = np.diff(restarts, prepend=0, append=values.size)
    previous = np.maximum(restarts - 1, 0)
    coarse_before = np.where(restarts > 0, coarse_sums[previous], 0.0)
    fine_before = np.where(restarts > 0, fine_sums[previous], 0.0)
    coarse_sums -= np.repeat(np.concatenate(([0.0], coarse_before)), lengths)
    np.ldexp(coarse_sums, -exponent, out=sums)  # exact: integers in grid units
    fine_sums -= np.repeat(np.concatenate(([0.0], fine_before)), lengths)
    sums += fine_sums
    sums[: restarts[0]] += carry
    return sums, float(sums[-1])
