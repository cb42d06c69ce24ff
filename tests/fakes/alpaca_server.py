"""A fake Alpaca Trading API (v2) on 127.0.0.1, for tests that go through alpaca-py.

It speaks the real REST shapes: ``GET /v2/account`` answers the account JSON with Alpaca's
fields, orders are created, listed, read (by id and by client order id), replaced and cancelled
under ``/v2/orders``, ``GET /v2/positions`` lists the positions its fills built, credentials travel
in the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers and a wrong pair answers
``401 {"code": 40110000, "message": "request is not authorized"}``. Tests can inject faults
(429, 5xx, slow answers; before or *after* the request took effect), hold requests in flight,
and read every request received.

    with FakeAlpaca() as alpaca:                    # or the ``fake_alpaca`` pytest fixture
        alpaca.add_key("PKTEST...", "secret...")
        settings.ALPACA_PAPER_URL = alpaca.url
        alpaca.fail_next(429)
        alpaca.fail_next(500, path="/v2/orders", after=True)   # stores the order, then 500
        alpaca.slow_next(3, path="/v2/orders", after=True)     # stores it, answers too late
        with alpaca.hold("POST", "/v2/orders") as gate:
            ...                                     # gate.entered.wait(); gate.release()

Orders behave like Alpaca's: the POST answer says ``accepted`` and the order is routed (``new``)
right after. What happens next is scripted: ``plan_next_order(fill_price=..., fill_qty=...,
in_answer=...)`` for the next submission, ``auto_fill(price)`` for every one, or ``fill(order_id,
qty, price)``, ``set_status(order_id, "expired")`` at any time.

The trade-updates stream (``stream_url``, started on first use) is a websocket that speaks the
protocol of ``wss://paper-api.alpaca.markets/stream``: ``authenticate`` with the key pair, then
``listen`` to ``trade_updates``; updates go out as JSON in binary frames, in order, to every
listening connection of the order's account (none listening: the update is lost, as it is at
Alpaca). ``push(...)`` sends any update (duplicates, out of order) and ``drop_streams()`` cuts
every connection.

Extend it with more endpoints through ``route``::

    @alpaca.route("GET", r"/v2/assets")
    def assets(fake, request, match):
        return 200, []

Handlers run after authentication, with ``request.credential`` (the key that was used).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
FORBIDDEN = {"code": 40310000, "message": "forbidden"}
INSUFFICIENT_BUYING_POWER = {"code": 40310000, "message": "insufficient buying power"}
RATE_LIMITED = {"code": 42910000, "message": "rate limit exceeded"}
SERVER_ERROR = {"code": 50010000, "message": "internal server error"}
NOT_FOUND = {"code": 40410000, "message": "resource not found"}
DUPLICATE_CLIENT_ORDER_ID = {"code": 40010001, "message": "client_order_id must be unique"}

# Alpaca's order statuses after which nothing more happens to an order.
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
# "Order cannot be replaced when the status is accepted, pending_new, pending_cancel or
# pending_replace" (Alpaca's documentation of PATCH /v2/orders/{order_id}).
NOT_REPLACEABLE = frozenset({"accepted", "pending_new", "pending_cancel", "pending_replace"})


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _num(value: Any) -> str:
    """Alpaca's decimal strings: no exponent, no trailing zeros."""
    text = format(Decimal(str(value)).normalize(), "f")
    return text


@dataclass
class FakeAccount:
    """An Alpaca brokerage account as ``GET /v2/account`` returns it."""

    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    account_number: str = field(default_factory=lambda: "PA3" + uuid.uuid4().hex[:9].upper())
    status: str = "ACTIVE"
    currency: str = "USD"
    cash: str = "100000"
    equity: str = "100000"
    buying_power: str = "200000"
    trading_blocked: bool = False
    account_blocked: bool = False
    created_at: str = field(default_factory=_now)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_number": self.account_number,
            "status": self.status,
            "crypto_status": "ACTIVE",
            "currency": self.currency,
            "buying_power": self.buying_power,
            "regt_buying_power": self.buying_power,
            "daytrading_buying_power": "0",
            "effective_buying_power": self.buying_power,
            "non_marginable_buying_power": self.cash,
            "options_buying_power": self.cash,
            "bod_dtbp": "0",
            "cash": self.cash,
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": self.equity,
            "pattern_day_trader": False,
            "trading_blocked": self.trading_blocked,
            "transfers_blocked": False,
            "account_blocked": self.account_blocked,
            "created_at": self.created_at,
            "trade_suspended_by_user": False,
            "multiplier": "2",
            "shorting_enabled": True,
            "equity": self.equity,
            "last_equity": self.equity,
            "long_market_value": "0",
            "short_market_value": "0",
            "position_market_value": "0",
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "balance_asof": self.created_at[:10],
            "crypto_tier": 1,
            "options_approved_level": 0,
            "options_trading_level": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }


@dataclass
class FakeCredential:
    key_id: str
    secret: str
    account: FakeAccount
    enabled: bool = True


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float
    credential: FakeCredential | None = None
    status: int | None = None

    @property
    def key_id(self) -> str | None:
        return self.headers.get("apca-api-key-id")

    @property
    def secret(self) -> str | None:
        return self.headers.get("apca-api-secret-key")

    @property
    def authorized(self) -> bool:
        return self.credential is not None


@dataclass
class _Fault:
    status: int
    body: Any
    method: str | None
    path: str | None
    delay: float
    times: int
    # After: the request takes effect first (an order is stored), then the fault answers.
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )


@dataclass
class Hold:
    """Requests matching (method, path) wait in the server until ``release()``."""

    method: str
    path: str
    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    count: int = 0

    def release(self) -> None:
        self.released.set()


@dataclass
class OrderPlan:
    """What happens to a submitted order after it is stored.

    ``fill_price`` fills ``fill_qty`` (default: all) at that price: in the POST answer when
    ``in_answer``, else on the stream ``delay`` seconds after the answer. ``reject`` rejects the
    order on the stream after the answer (Alpaca accepts first, rejects later)."""

    fill_price: Decimal | str | float | None = None
    fill_qty: Decimal | str | float | None = None
    in_answer: bool = True
    delay: float = 0.05
    reject: str | None = None


@dataclass
class FakePosition:
    quantity: Decimal = Decimal("0")  # signed
    average_price: Decimal = Decimal("0")


Handler = Callable[["FakeAlpaca", RecordedRequest, re.Match], tuple[int, Any]]


class FakeAlpaca:
    def __init__(self, *, unauthorized_status: int = 401) -> None:
        self.unauthorized_status = unauthorized_status
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stream: _StreamServer | None = None
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        self.reset()
        self.route("GET", r"/v2/account")(_get_account)
        self.route("POST", r"/v2/orders")(_post_order)
        self.route("GET", r"/v2/orders")(_list_orders)
        self.route("GET", r"/v2/orders/(?P<order_id>[^/]+)")(_get_order)
        self.route("GET", r"/v2/orders:by_client_order_id")(_get_order_by_client_id)
        self.route("PATCH", r"/v2/orders/(?P<order_id>[^/]+)")(_replace_order)
        self.route("DELETE", r"/v2/orders/(?P<order_id>[^/]+)")(_cancel_order)
        self.route("GET", r"/v2/positions")(_list_positions)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeAlpaca:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._handle(self)

            do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

            def log_message(self, format: str, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-alpaca", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for hold in self._holds:
                hold.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def stream_url(self) -> str:
        """The trade-updates websocket (started on first use)."""
        with self._lock:
            if self._stream is None:
                self._stream = _StreamServer(self)
                self._stream.start()
            return self._stream.url

    def reset(self) -> None:
        """Forget keys, accounts, orders, fills, positions, plans, faults, holds and recorded
        requests (open stream connections stay; their updates stop matching any account)."""
        with self._lock:
            for hold in getattr(self, "_holds", []):
                hold.release()
            self.credentials: dict[str, FakeCredential] = {}
            self.requests: list[RecordedRequest] = []
            self.orders: dict[str, dict[str, Any]] = {}
            self.executions: list[dict[str, Any]] = []
            self.pushed: list[dict[str, Any]] = []
            self.positions: dict[str, dict[str, FakePosition]] = {}
            self._faults: list[_Fault] = []
            self._holds: list[Hold] = []
            self._plans: deque[OrderPlan] = deque()
            self._default_plan: OrderPlan | None = None
            # Routed orders move from "accepted" to "new" right after the POST answer.
            self.auto_route = True
            # A cancel answers 204 and leaves the order "pending_cancel" until confirm_cancel().
            self.cancel_leaves_pending = False

    # --- set-up --------------------------------------------------------------------------------

    def add_key(
        self, key_id: str, secret: str, *, account: FakeAccount | None = None
    ) -> FakeCredential:
        """Accept this pair from now on, for ``account`` (a new one when None)."""
        with self._lock:
            credential = FakeCredential(key_id, secret, account or FakeAccount())
            self.credentials[key_id] = credential
            return credential

    def disable_key(self, key_id: str) -> None:
        """The pair is refused from now on (the trader deleted it at Alpaca)."""
        with self._lock:
            self.credentials[key_id].enabled = False

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            with self._lock:
                # Newest first, so an extension can override a built-in endpoint.
                self._routes.insert(0, (method.upper(), re.compile(f"^{pattern}$"), handler))
            return handler

        return register

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        body: Any = None,
        delay: float = 0.0,
        after: bool = False,
    ) -> None:
        """The next ``times`` matching requests answer ``status`` (429, 500, 503, ...).

        ``after``: the request is carried out first (an order is stored), then answered with the
        fault, as when the broker took the order and its answer was lost."""
        if body is None:
            body = RATE_LIMITED if status == 429 else SERVER_ERROR if status >= 500 else {}
        with self._lock:
            self._faults.append(
                _Fault(status, body, method and method.upper(), path, delay, times, after)
            )

    def slow_next(
        self, seconds: float, *, times: int = 1, path: str | None = None, after: bool = False
    ) -> None:
        """The next matching requests are answered normally, ``seconds`` late (``after``: the
        request takes effect at once and only the answer is late)."""
        with self._lock:
            self._faults.append(_Fault(0, None, None, path, seconds, times, after))

    @contextmanager
    def hold(self, method: str, path: str):
        """Requests matching wait until ``gate.release()`` (released at the latest on exit)."""
        gate = Hold(method.upper(), path)
        with self._lock:
            self._holds.append(gate)
        try:
            yield gate
        finally:
            gate.release()
            with self._lock:
                self._holds.remove(gate)

    def plan_next_order(self, **plan: Any) -> None:
        """Script the next submission (see ``OrderPlan``)."""
        with self._lock:
            self._plans.append(OrderPlan(**plan))

    def auto_fill(self, price: Any, *, in_answer: bool = False, delay: float = 0.05) -> None:
        """Fill every submission not otherwise planned, completely, at ``price``."""
        with self._lock:
            self._default_plan = OrderPlan(fill_price=price, in_answer=in_answer, delay=delay)

    def set_position(self, account: FakeAccount, symbol: str, quantity: Any, price: Any) -> None:
        """Overwrite a position (as if traded outside the platform)."""
        with self._lock:
            self.positions.setdefault(account.id, {})[symbol] = FakePosition(
                Decimal(str(quantity)), Decimal(str(price))
            )

    # --- what happens to orders ----------------------------------------------------------------

    def fill(
        self, order_id: str, qty: Any = None, price: Any = "100", *, push: bool = True
    ) -> dict[str, Any]:
        """Execute ``qty`` (default: all that is left) of the order at ``price``; returns the
        trade update (pushed to the stream unless ``push`` is False)."""
        with self._lock:
            order = self.orders[order_id]
            quantity = Decimal(order["qty"])
            filled = Decimal(order["filled_qty"])
            take = Decimal(str(qty)) if qty is not None else quantity - filled
            assert 0 < take <= quantity - filled, "the fake never over-fills"
            price_d = Decimal(str(price))
            average = Decimal(order["filled_avg_price"] or "0")
            now_filled = filled + take
            order["filled_avg_price"] = _num(
                ((average * filled + price_d * take) / now_filled).quantize(Decimal("0.0001"))
                if now_filled != take
                else price_d
            )
            order["filled_qty"] = _num(now_filled)
            now = _now()
            order["updated_at"] = now
            done = now_filled == quantity
            order["status"] = "filled" if done else "partially_filled"
            if done:
                order["filled_at"] = now
            position = self._position_apply(order, take, price_d)
            execution = {
                "event": "fill" if done else "partial_fill",
                "execution_id": str(uuid.uuid4()),
                "order": _public(order),
                "timestamp": now,
                "price": _num(price_d),
                "qty": _num(take),
                "position_qty": _num(position.quantity),
            }
            self.executions.append(execution)
        if push:
            self.push(execution, account_id=order["_account"])
        return execution

    def set_status(
        self, order_id: str, status: str, *, event: str | None = None, push: bool = True
    ) -> dict:
        """Move the order to ``status`` (``canceled``, ``expired``, ``rejected``,
        ``done_for_day``, ``new`` ...); returns the matching trade update (pushed to the stream
        unless ``push`` is False)."""
        with self._lock:
            order = self.orders[order_id]
            order["status"] = status
            now = _now()
            order["updated_at"] = now
            stamp = {"canceled": "canceled_at", "expired": "expired_at", "rejected": "failed_at"}
            if status in stamp:
                order[stamp[status]] = now
            update = {"event": event or status, "order": _public(order), "timestamp": now}
        if push:
            self.push(update, account_id=order["_account"])
        return update

    def confirm_cancel(self, order_id: str) -> dict:
        return self.set_status(order_id, "canceled")

    def order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None:
        with self._lock:
            for order in self.orders.values():
                if order["client_order_id"] == client_order_id:
                    return order
        return None

    def _position_apply(self, order: dict, quantity: Decimal, price: Decimal) -> FakePosition:
        book = self.positions.setdefault(order["_account"], {})
        position = book.setdefault(order["symbol"], FakePosition())
        signed = quantity if order["side"] == "buy" else -quantity
        old = position.quantity
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            position.average_price = (abs(old) * position.average_price + quantity * price) / abs(
                new
            )
        elif new != 0 and (new > 0) != (old > 0):
            position.average_price = price
        position.quantity = new
        if new == 0:
            position.average_price = Decimal("0")
        return position

    # --- the stream ----------------------------------------------------------------------------

    def push(self, update: dict[str, Any], *, account_id: str | None = None) -> int:
        """Send a trade update to every listening connection of the account (the order's
        account when not given); returns how many connections it went to."""
        account_id = account_id or self._account_of(update)
        with self._lock:
            self.pushed.append(update)
            stream = self._stream
        if stream is None or account_id is None:
            return 0
        return stream.send(account_id, {"stream": "trade_updates", "data": update})

    def _account_of(self, update: dict[str, Any]) -> str | None:
        order_id = (update.get("order") or {}).get("id")
        with self._lock:
            order = self.orders.get(order_id)
        return order["_account"] if order else None

    def wait_for_listeners(self, count: int = 1, *, timeout: float = 10.0) -> bool:
        """Wait until ``count`` connections listen to trade updates."""
        if self._stream is None:
            self.stream_url  # noqa: B018 - starts it
        assert self._stream is not None
        return self._stream.wait_for(count, timeout)

    def drop_streams(self) -> None:
        """Cut every stream connection (clients are expected to reconnect)."""
        if self._stream is not None:
            self._stream.drop_all()

    @property
    def listeners(self) -> int:
        return self._stream.listening_count() if self._stream is not None else 0

    @property
    def stream_messages(self) -> list[dict[str, Any]]:
        """Every message clients sent on the stream (authenticate, listen)."""
        return list(self._stream.received) if self._stream is not None else []

    # --- inspection ---------------------------------------------------------------------------

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method.upper())
            ]

    # --- serving ------------------------------------------------------------------------------

    def _authenticate(self, headers: dict[str, str]) -> FakeCredential | None:
        key_id = headers.get("apca-api-key-id", "")
        secret = headers.get("apca-api-secret-key", "")
        with self._lock:
            credential = self.credentials.get(key_id)
        if credential is None or not credential.enabled:
            return None
        if not hmac.compare_digest(credential.secret.encode(), (secret or "").encode()):
            return None
        return credential

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = RecordedRequest(
            method=http.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=body,
            at=time.time(),
        )
        with self._lock:
            self.requests.append(request)
            holds = [
                h for h in self._holds if h.method == request.method and h.path == request.path
            ]
        for gate in holds:
            gate.count += 1
            gate.entered.set()
            gate.released.wait(timeout=30)

        status, payload = self._respond(request)
        request.status = status
        data = b"" if payload is None else json.dumps(payload).encode()
        # The client may have given up (a timeout test): a late answer goes nowhere.
        with suppress(OSError):
            http.send_response(status)
            http.send_header("Content-Type", "application/json; charset=UTF-8")
            http.send_header("Content-Length", str(len(data)))
            http.end_headers()
            http.wfile.write(data)

    def _respond(self, request: RecordedRequest) -> tuple[int, Any]:
        fault = self._take_fault(request.method, request.path)
        if fault is not None and not fault.after:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status:
                return fault.status, fault.body
        request.credential = self._authenticate(request.headers)
        if request.credential is None:
            return self.unauthorized_status, UNAUTHORIZED
        with self._lock:
            routes = list(self._routes)
        answer: tuple[int, Any] = (404, NOT_FOUND)
        for method, pattern, handler in routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                answer = handler(self, request, match)
                break
        if fault is not None and fault.after:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status:
                return fault.status, fault.body
        return answer

    def _next_plan(self) -> OrderPlan | None:
        with self._lock:
            return self._plans.popleft() if self._plans else self._default_plan

    def _after_answer(self, order_id: str, plan: OrderPlan | None) -> None:
        """Routing and the scripted outcome, a moment after the POST answered."""

        def run() -> None:
            with self._lock:
                order = self.orders.get(order_id)
                if order is None:
                    return
                routed = self.auto_route and order["status"] == "accepted"
            if routed:
                self.set_status(order_id, "new")
            if plan is None:
                return
            if plan.reject:
                self.set_status(order_id, "rejected")
                return
            if plan.fill_price is not None and not plan.in_answer:
                self.fill(order_id, plan.fill_qty, plan.fill_price)

        delay = plan.delay if plan is not None else 0.0
        timer = threading.Timer(delay, run)
        timer.daemon = True
        timer.start()


# --- built-in endpoints -------------------------------------------------------------------------


def _get_account(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    return 200, request.credential.account.as_json()


def _new_order(data: dict[str, Any], account_id: str, client_order_id: str) -> dict[str, Any]:
    now = _now()
    order_type = data.get("type", "market")
    return {
        "id": str(uuid.uuid4()),
        "client_order_id": client_order_id,
        "created_at": now,
        "updated_at": now,
        "submitted_at": now,
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, str(data.get("symbol", "")))),
        "symbol": data.get("symbol"),
        "asset_class": "us_equity",
        "notional": data.get("notional"),
        "qty": _num(data["qty"]) if data.get("qty") is not None else None,
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": data.get("order_class") or "simple",
        "order_type": order_type,
        "type": order_type,
        "side": data.get("side"),
        "time_in_force": data.get("time_in_force", "day"),
        "limit_price": _num(data["limit_price"]) if data.get("limit_price") else None,
        "stop_price": _num(data["stop_price"]) if data.get("stop_price") else None,
        "status": "accepted",
        "extended_hours": bool(data.get("extended_hours", False)),
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "_account": account_id,
    }


def _client_id_taken(fake: FakeAlpaca, account_id: str, client_order_id: str) -> bool:
    return any(
        o["client_order_id"] == client_order_id and o["_account"] == account_id
        for o in fake.orders.values()
    )


def _post_order(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    data = request.body if isinstance(request.body, dict) else {}
    account_id = request.credential.account.id
    client_order_id = data.get("client_order_id") or str(uuid.uuid4())
    with fake._lock:
        if _client_id_taken(fake, account_id, client_order_id):
            return 422, DUPLICATE_CLIENT_ORDER_ID
        order = _new_order(data, account_id, client_order_id)
        fake.orders[order["id"]] = order
        plan = fake._next_plan()
        if plan is not None and plan.fill_price is not None and plan.in_answer:
            fake.fill(order["id"], plan.fill_qty, plan.fill_price)
        answer = _public(order)
    fake._after_answer(order["id"], plan)
    return 200, answer


def _public(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if not k.startswith("_")}


def _list_orders(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    account_id = request.credential.account.id
    query = {k: v[-1] for k, v in request.query.items()}
    status = query.get("status", "open")
    limit = min(int(query.get("limit", 50)), 500)
    after = query.get("after")
    after_dt = datetime.fromisoformat(after.replace("Z", "+00:00")) if after else None
    with fake._lock:
        orders = [o for o in fake.orders.values() if o["_account"] == account_id]
    if status == "open":
        orders = [o for o in orders if o["status"] not in CLOSED_STATUSES]
    elif status == "closed":
        orders = [o for o in orders if o["status"] in CLOSED_STATUSES]
    if after_dt is not None:
        orders = [
            o
            for o in orders
            if datetime.fromisoformat(o["submitted_at"].replace("Z", "+00:00")) > after_dt
        ]
    orders.sort(key=lambda o: o["submitted_at"], reverse=query.get("direction", "desc") == "desc")
    return 200, [_public(o) for o in orders[:limit]]


def _get_order(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    with fake._lock:
        order = fake.orders.get(match.group("order_id"))
    if order is None or order["_account"] != request.credential.account.id:
        return 404, {"code": 40410000, "message": "order not found"}
    return 200, _public(order)


def _get_order_by_client_id(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    client_order_id = (request.query.get("client_order_id") or [""])[-1]
    account_id = request.credential.account.id
    with fake._lock:
        for order in fake.orders.values():
            if order["client_order_id"] == client_order_id and order["_account"] == account_id:
                return 200, _public(order)
    return 404, {"code": 40410000, "message": f"order not found for {client_order_id}"}


def _replace_order(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    data = request.body if isinstance(request.body, dict) else {}
    account_id = request.credential.account.id
    with fake._lock:
        old = fake.orders.get(match.group("order_id"))
        if old is None or old["_account"] != account_id:
            return 404, {"code": 40410000, "message": "order not found"}
        if old["status"] in CLOSED_STATUSES or old["status"] in NOT_REPLACEABLE:
            return 422, {"code": 42210000, "message": f"order is {old['status']}, not replaceable"}
        client_order_id = data.get("client_order_id") or str(uuid.uuid4())
        if _client_id_taken(fake, account_id, client_order_id):
            return 422, DUPLICATE_CLIENT_ORDER_ID
        # Like Alpaca: the replacement is a new order; without a qty it takes the old order's
        # full qty (not what is left of it).
        terms = {
            "symbol": old["symbol"],
            "side": old["side"],
            "type": old["type"],
            "qty": data.get("qty") or old["qty"],
            "time_in_force": data.get("time_in_force") or old["time_in_force"],
            "limit_price": data.get("limit_price") or old["limit_price"],
            "stop_price": data.get("stop_price") or old["stop_price"],
        }
        new = _new_order(terms, account_id, client_order_id)
        new["replaces"] = old["id"]
        fake.orders[new["id"]] = new
        now = _now()
        old.update(status="replaced", replaced_by=new["id"], replaced_at=now, updated_at=now)
        replaced = {"event": "replaced", "order": _public(old), "timestamp": now}
        answer = _public(new)
    fake.push(replaced, account_id=account_id)
    fake._after_answer(new["id"], None)
    return 200, answer


def _cancel_order(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    order_id = match.group("order_id")
    with fake._lock:
        order = fake.orders.get(order_id)
        if order is None or order["_account"] != request.credential.account.id:
            return 404, {"code": 40410000, "message": "order not found"}
        if order["status"] in CLOSED_STATUSES:
            return 422, {"code": 42210000, "message": f"order is {order['status']}, not cancelable"}
    if fake.cancel_leaves_pending:
        fake.set_status(order_id, "pending_cancel")
    else:
        fake.set_status(order_id, "canceled")
    return 204, None


def _list_positions(fake: FakeAlpaca, request: RecordedRequest, match: re.Match):
    account_id = request.credential.account.id
    with fake._lock:
        book = dict(fake.positions.get(account_id, {}))
    rows = []
    for symbol, position in sorted(book.items()):
        if position.quantity == 0:
            continue
        value = position.quantity * position.average_price
        rows.append(
            {
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
                "symbol": symbol,
                "exchange": "NASDAQ",
                "asset_class": "us_equity",
                "asset_marginable": True,
                "avg_entry_price": _num(position.average_price),
                "qty": _num(position.quantity),
                "side": "long" if position.quantity > 0 else "short",
                "market_value": _num(value),
                "cost_basis": _num(value),
                "unrealized_pl": "0",
                "unrealized_plpc": "0",
                "unrealized_intraday_pl": "0",
                "unrealized_intraday_plpc": "0",
                "current_price": _num(position.average_price),
                "lastday_price": _num(position.average_price),
                "change_today": "0",
                "qty_available": _num(abs(position.quantity)),
            }
        )
    return 200, rows


# --- the trade-updates websocket ----------------------------------------------------------------


@dataclass(eq=False)
class _StreamClient:
    connection: Any
    queue: asyncio.Queue
    account_id: str | None = None
    listening: bool = False


class _StreamServer:
    """``websockets`` on its own event loop in a thread; one writer task per connection keeps
    every client's updates in the order they were pushed."""

    def __init__(self, fake: FakeAlpaca) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.clients: set[_StreamClient] = set()
        self.received: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self._server = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/stream"

    def start(self) -> None:
        from websockets.asyncio.server import serve

        ready = threading.Event()

        async def main() -> None:
            self._server = await serve(self._serve, "127.0.0.1", 0, ping_interval=None)
            self._port = self._server.sockets[0].getsockname()[1]
            ready.set()
            await self._server.wait_closed()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            with suppress(Exception):
                self.loop.run_until_complete(main())

        self._thread = threading.Thread(target=run, name="fake-alpaca-stream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake trade stream did not start")

    def stop(self) -> None:
        if self._server is not None:
            self.loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def _serve(self, connection) -> None:
        client = _StreamClient(connection, asyncio.Queue())
        self.clients.add(client)
        writer = asyncio.ensure_future(self._write(client))
        try:
            async for raw in connection:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                self.received.append(message)
                await self._on_message(client, message)
        except Exception:  # a dropped client is normal
            pass
        finally:
            writer.cancel()
            self.clients.discard(client)
            self._notify()

    async def _on_message(self, client: _StreamClient, message: dict[str, Any]) -> None:
        action = message.get("action")
        data = message.get("data") or {}
        if action in ("authenticate", "auth"):
            credential = self.fake._authenticate(
                {
                    "apca-api-key-id": data.get("key_id") or "",
                    "apca-api-secret-key": data.get("secret_key") or "",
                }
            )
            if credential is None:
                await client.queue.put(
                    {
                        "stream": "authorization",
                        "data": {
                            "action": "authenticate",
                            "status": "unauthorized",
                            "message": "access key verification failed",
                        },
                    }
                )
                return
            client.account_id = credential.account.id
            await client.queue.put(
                {
                    "stream": "authorization",
                    "data": {"action": "authenticate", "status": "authorized"},
                }
            )
        elif action == "listen":
            if client.account_id is None:
                await client.queue.put(
                    {
                        "stream": "authorization",
                        "data": {"action": "listen", "status": "unauthorized"},
                    }
                )
                return
            streams = [s for s in data.get("streams") or [] if s == "trade_updates"]
            await client.queue.put({"stream": "listening", "data": {"streams": streams}})
            client.listening = bool(streams)
            self._notify()

    async def _write(self, client: _StreamClient) -> None:
        while True:
            message = await client.queue.get()
            # Binary frames, as wss://paper-api.alpaca.markets/stream sends them.
            await client.connection.send(json.dumps(message).encode())

    def send(self, account_id: str, message: dict[str, Any]) -> int:
        targets = [c for c in list(self.clients) if c.listening and c.account_id == account_id]
        for client in targets:
            self.loop.call_soon_threadsafe(client.queue.put_nowait, message)
        return len(targets)

    def listening_count(self) -> int:
        return sum(1 for c in list(self.clients) if c.listening)

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.listening_count() < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.1))
        return True

    def drop_all(self) -> None:
        async def close_all() -> None:
            for client in list(self.clients):
                client.listening = False
                await client.connection.close(code=1012, reason="service restart")

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=5)
        self._notify()
