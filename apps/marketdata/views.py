"""Market pages: the instrument list and one instrument's candlestick chart."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from apps.core.templatetags.trading import user_tz
from apps.core.views import render_page
from apps.marketdata.forms import ChartForm, InstrumentFilterForm
from apps.marketdata.models import Instrument, Timeframe
from apps.marketdata.selectors import bars_frame, instrument_sectors, instruments_search

INSTRUMENTS_PER_PAGE = 50
INTRADAY_FORMAT = "%Y-%m-%d %H:%M"
DAILY_FORMAT = "%Y-%m-%d"
BAR_CHOICES = (100, 200, 500, 1000)


@login_required
@require_GET
def instruments(request: HttpRequest) -> HttpResponse:
    form = InstrumentFilterForm(request.GET or None, sectors=instrument_sectors())
    filters = form.filters() if form.is_bound else {}
    page_obj = Paginator(instruments_search(**filters), INSTRUMENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "filter_form": form,
        "page_obj": page_obj,
        "instruments": page_obj.object_list,
        "filtered": any(value is not None for value in filters.values()),
    }
    return render_page(
        request,
        "marketdata/instrument_list.html",
        "marketdata/partials/_instruments_table.html",
        context,
    )


@login_required
@require_GET
def instrument_detail(request: HttpRequest, symbol: str) -> HttpResponse:
    symbol = symbol.strip().upper()
    if "\x00" in symbol or len(symbol) > 32:  # PostgreSQL refuses NUL in text: not a symbol
        raise Http404("No such instrument.")
    instrument = get_object_or_404(Instrument, symbol=symbol)
    form = ChartForm(request.GET or None)
    timeframe, count = form.chart()
    frame = bars_frame(instrument=instrument, timeframe=timeframe, last=count)
    # Daily bars are stamped at 00:00 UTC of their date; intraday bars show the trader's clock.
    if timeframe == Timeframe.D1:
        labels = [ts.strftime(DAILY_FORMAT) for ts in frame.index]
    else:
        zone = user_tz(request.user)
        labels = [ts.strftime(INTRADAY_FORMAT) for ts in frame.index.tz_convert(zone)]
    chart = {
        "symbol": instrument.symbol,
        "timeframe": timeframe,
        "x": labels,
        **{column: [round(v, 6) for v in frame[column].tolist()] for column in frame.columns},
    }
    recent = frame.tail(10).iloc[::-1]
    context = {
        "instrument": instrument,
        "form": form,
        "timeframe": timeframe,
        "bar_count": count,
        "timeframes": Timeframe.choices,
        "bar_choices": BAR_CHOICES,
        "chart": chart,
        "has_bars": not frame.empty,
        "recent_bars": [
            {"ts": ts.to_pydatetime(), **row}
            for ts, row in zip(recent.index, recent.to_dict("records"), strict=True)
        ],
        "change": _change(frame),
    }
    return render_page(
        request, "marketdata/instrument_detail.html", "marketdata/partials/_chart.html", context
    )


def _change(frame) -> dict | None:
    """Change of the last close against the first one shown, for the header."""
    if len(frame) < 2:
        return None
    first, last = float(frame["close"].iloc[0]), float(frame["close"].iloc[-1])
    return {"abs": last - first, "pct": (last / first - 1) * 100 if first else None}
