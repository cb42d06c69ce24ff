"""Talking to Alpaca with a stored key: the credentials object the execution path receives, a
configured alpaca-py client, and the account check that verification runs.

Base URLs come from settings (``ALPACA_PAPER_URL`` / ``ALPACA_LIVE_URL``), so tests point them
at the fake server and the execution broker reuses the same client factory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from django.conf import settings
from pydantic import ValidationError

from apps.apikeys.crypto import mask


@dataclass(frozen=True, repr=False, eq=False)
class AlpacaCredentials:
    """Decrypted credentials of one key, for one use. ``repr`` shows masks only, and the object
    refuses to be pickled: pass the trading account's id to tasks, never credentials."""

    api_key_id: int
    environment: str
    base_url: str
    fingerprint: str
    key_id: str = field(repr=False)
    secret_key: str = field(repr=False)

    @property
    def paper(self) -> bool:
        return self.environment == "paper"

    def __repr__(self) -> str:
        return (
            f"AlpacaCredentials(api_key_id={self.api_key_id}, environment={self.environment!r}, "
            f"key_id={mask(self.key_id)!r}, fingerprint={self.fingerprint[:12]!r})"
        )

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Credentials are never pickled.")


def alpaca_base_url(environment: str) -> str:
    return settings.ALPACA_PAPER_URL if environment == "paper" else settings.ALPACA_LIVE_URL


class _TimeoutSession(requests.Session):
    """alpaca-py sends without a timeout; a hung broker must not hang a request or a worker."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)


def alpaca_trading_client(
    credentials: AlpacaCredentials, *, timeout: float | None = None, retries: int = 0
) -> TradingClient:
    """An alpaca-py ``TradingClient`` for these credentials against the configured base URL.

    alpaca-py retries 429/504 three times, three seconds apart, and never times out; here the
    timeout comes from ``ALPACA_TIMEOUT_SECONDS`` and retries are the caller's choice (none by
    default: an interactive verification should answer at once). Those two knobs are private
    attributes of alpaca-py's ``RESTClient``; they are set here and nowhere else.
    """
    client = TradingClient(
        api_key=credentials.key_id,
        secret_key=credentials.secret_key,
        paper=credentials.paper,
        url_override=credentials.base_url,
    )
    client._session = _TimeoutSession(timeout or settings.ALPACA_TIMEOUT_SECONDS)
    client._retry = max(0, retries)
    return client


@dataclass(frozen=True)
class AccountCheck:
    """What the broker said about the credentials. ``ok`` False with ``rejected`` True means
    the broker refused them (401/403): the key is invalid. ``rejected`` False: the broker could
    not be asked (rate limit, outage, network); nothing is known about the key."""

    ok: bool
    rejected: bool = False
    http_status: int | None = None
    message: str = ""
    account_id: str = ""
    account_status: str = ""
    trading_blocked: bool = False


def _broker_message(exc: APIError) -> str:
    try:
        return str(json.loads(str(exc))["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return ""


def alpaca_account_check(credentials: AlpacaCredentials) -> AccountCheck:
    """``GET /v2/account`` with the credentials; never raises for broker or network trouble."""
    client = alpaca_trading_client(credentials)
    try:
        account = client.get_account()
    except APIError as exc:
        status = exc.status_code
        detail = _broker_message(exc)
        said = f"{status}: {detail}" if detail else f"{status}"
        if status in (401, 403):
            return AccountCheck(
                ok=False,
                rejected=True,
                http_status=status,
                message=f"Alpaca refused the credentials ({said}).",
            )
        if status == 429:
            text = "Alpaca is rate limiting requests (429); try again in a minute."
        elif status is not None and status >= 500:
            text = f"Alpaca is unavailable ({status}); try again later."
        else:
            text = f"Alpaca answered {said}."
        return AccountCheck(ok=False, http_status=status, message=text)
    except requests.Timeout:
        return AccountCheck(ok=False, message="Alpaca did not answer in time.")
    except requests.RequestException as exc:
        return AccountCheck(
            ok=False, message=f"Alpaca could not be reached ({type(exc).__name__})."
        )
    except (ValidationError, ValueError):
        return AccountCheck(ok=False, message="Alpaca answered with an unexpected account shape.")
    status = getattr(account.status, "value", str(account.status))
    blocked = bool(account.trading_blocked or account.account_blocked)
    return AccountCheck(
        ok=True,
        http_status=200,
        message=f"Alpaca account {status.lower()}" + (", trading blocked" if blocked else "") + ".",
        account_id=str(account.id),
        account_status=status,
        trading_blocked=blocked,
    )
