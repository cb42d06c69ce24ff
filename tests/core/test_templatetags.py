"""Formatting filters of the trading pages."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.template import Context, Template

from apps.core.templatetags import trading


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1234.5"), "1,234.50"),
        (Decimal("-0.001"), "0.00"),
        (Decimal("0.005"), "0.01"),
        (12, "12.00"),
        (None, "\u2014"),
        ("junk", "\u2014"),
        (float("nan"), "\u2014"),
    ],
)
def test_money(value, expected):
    assert trading.money(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.3"), "+12.30"),
        (Decimal("-4"), "-4.00"),
        (Decimal("0"), "0.00"),
        (None, "\u2014"),
    ],
)
def test_signed_money(value, expected):
    assert trading.signed_money(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("100.00000000"), "100.00"),
        (Decimal("100.5"), "100.50"),
        (Decimal("0.00012345"), "0.00012345"),
        (Decimal("1234.125"), "1,234.125"),
        (101.25, "101.25"),
    ],
)
def test_price(value, expected):
    assert trading.price(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("10.00000000"), "10"),
        (Decimal("0.5"), "0.5"),
        (Decimal("1500"), "1,500"),
        (Decimal("0"), "0"),
    ],
)
def test_qty(value, expected):
    assert trading.qty(value) == expected


def test_pnl_class_and_percentages():
    assert trading.pnl_class(Decimal("1")) == "pos"
    assert trading.pnl_class(Decimal("-1")) == "neg"
    assert trading.pnl_class(Decimal("0")) == "flat"
    assert trading.pnl_class(None) == "flat"
    assert trading.signed_pct(Decimal("1.5")) == "+1.50%"
    assert trading.pct(None) == "\u2014"
    assert trading.percent_of(Decimal("5"), Decimal("200")) == Decimal("2.5")
    assert trading.percent_of(Decimal("5"), Decimal("0")) is None


def test_badge_escapes_and_tones():
    html = Template("{% load trading %}{% badge status %}").render(
        Context({"status": "partially_filled"})
    )
    assert html == '<span class="badge badge-info">Partially filled</span>'
    html = Template("{% load trading %}{% badge s label %}").render(
        Context({"s": "filled", "label": "<b>"})
    )
    assert "&lt;b&gt;" in html


def test_user_tz_falls_back_to_utc():
    assert str(trading.user_tz(SimpleNamespace(time_zone="Europe/Paris"))) == "Europe/Paris"
    assert str(trading.user_tz(SimpleNamespace(time_zone="Not/AZone"))) == "UTC"
    assert str(trading.user_tz(SimpleNamespace(time_zone="../../etc"))) == "UTC"
    assert str(trading.user_tz(None)) == "UTC"
