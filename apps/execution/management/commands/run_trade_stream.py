"""``manage.py run_trade_stream [--account ID ...]``: follow Alpaca's trade updates.

One alpaca-py ``TradingStream`` per Alpaca account with a usable API key, each in its own
thread, connected to ``ALPACA_PAPER_STREAM_URL`` / ``ALPACA_LIVE_STREAM_URL`` by the key's
environment. Every update goes to ``trade_updates.trade_update_apply`` (the same lifecycle as
everything else; idempotent, so duplicates and reordering are harmless). alpaca-py reconnects
after a dropped connection; around it this command takes fresh credentials and starts again
after any other failure. Each (re)connection queues a reconciliation of the account, which
books whatever happened while nobody was listening.

    run_trade_stream                 # every Alpaca account with an active key
    run_trade_stream --account 7     # just these accounts
    run_trade_stream --seconds 60    # stop after a minute (tests, smoke checks)
    run_trade_stream --no-reconcile-on-connect   # leave catching up to the beat
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

from alpaca.trading.stream import TradingStream
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connections

from apps.execution.trade_updates import TradeUpdate, trade_stream_account_ids, trade_update_apply

logger = logging.getLogger(__name__)


class _TradingStream(TradingStream):
    """alpaca-py's stream, telling its owner each time it has (re)connected and listens."""

    def __init__(self, *args: Any, on_connect, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_connect = on_connect

    async def _start_ws(self) -> None:
        await super()._start_ws()
        await sync_to_async(self._on_connect, thread_sensitive=True)()


def stream_url(*, paper: bool) -> str:
    return settings.ALPACA_PAPER_STREAM_URL if paper else settings.ALPACA_LIVE_STREAM_URL


class AccountStream:
    """The trade updates of one account, in a thread, until ``stop()``."""

    def __init__(
        self,
        account_id: int,
        *,
        reconcile_on_connect: bool = True,
        retry_delay: float = 5.0,
    ) -> None:
        self.account_id = account_id
        self.reconcile_on_connect = reconcile_on_connect
        self.retry_delay = retry_delay
        self.connections = 0
        self._stopping = threading.Event()
        self._stream: _TradingStream | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> AccountStream:
        self._thread = threading.Thread(
            target=self._run, name=f"trade-stream-{self.account_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None and stream._loop is not None and stream._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(stream), stream._loop)
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    async def _shutdown(stream: _TradingStream) -> None:
        await stream.stop_ws()
        await stream.close()  # wakes the reader at once instead of at its next 5 s poll

    def _run(self) -> None:
        from apps.accounts.models import TradingAccount
        from apps.apikeys.services import CredentialsUnavailable, api_key_credentials_for_use

        while not self._stopping.is_set():
            try:
                account = TradingAccount.objects.get(pk=self.account_id)
                credentials = api_key_credentials_for_use(account=account, purpose="trade_stream")
            except (CredentialsUnavailable, TradingAccount.DoesNotExist) as exc:
                logger.warning("trade stream of account %s waits: %s", self.account_id, exc)
                self._stopping.wait(self.retry_delay * 6)
                continue
            finally:
                connections.close_all()
            stream = _TradingStream(
                credentials.key_id,
                credentials.secret_key,
                paper=credentials.paper,
                url_override=stream_url(paper=credentials.paper),
                on_connect=self._connected,
            )
            del credentials
            stream.subscribe_trade_updates(self._handle)
            self._stream = stream
            try:
                stream.run()
            except Exception:
                logger.exception("trade stream of account %s failed", self.account_id)
            finally:
                self._stream = None
            self._stopping.wait(self.retry_delay)

    def _connected(self) -> None:
        self.connections += 1
        logger.info("trade stream of account %s listening", self.account_id)
        if self._stopping.is_set() and self._stream is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(self._stream), self._stream._loop)
            return
        if self.reconcile_on_connect:
            from apps.execution.tasks import reconcile_account

            try:
                reconcile_account.delay(self.account_id)
            except Exception:
                logger.exception("could not queue the reconciliation of %s", self.account_id)
            finally:
                connections.close_all()

    async def _handle(self, update: Any) -> None:
        await sync_to_async(self.apply, thread_sensitive=True)(update)

    def apply(self, update: Any) -> None:
        """One update, through the service; a failure is logged and left to reconciliation."""
        close_old_connections()
        try:
            trade_update_apply(account_id=self.account_id, update=TradeUpdate.from_alpaca(update))
        except Exception:
            logger.exception(
                "trade update %s of account %s could not be applied; reconciliation will",
                getattr(update, "event", "?"),
                self.account_id,
            )
        finally:
            # Updates are few; a fresh connection each time never leaves a stale one behind.
            connections.close_all()


class Command(BaseCommand):
    help = "Follow Alpaca's trade updates of every Alpaca account with a usable API key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--account",
            type=int,
            action="append",
            dest="accounts",
            help="Only this trading account (repeat for more).",
        )
        parser.add_argument(
            "--seconds", type=float, default=0.0, help="Stop after this long (0: until stopped)."
        )
        parser.add_argument(
            "--no-reconcile-on-connect",
            action="store_false",
            dest="reconcile_on_connect",
            help="Do not queue a reconciliation of the account at each (re)connection.",
        )

    def handle(
        self,
        *args,
        accounts: list[int] | None,
        seconds: float,
        reconcile_on_connect: bool = True,
        **options,
    ) -> None:
        if seconds < 0:
            raise CommandError("--seconds cannot be negative.")
        account_ids = trade_stream_account_ids(account_ids=accounts)
        if not account_ids:
            raise CommandError("No Alpaca account with a usable API key to follow.")
        missing = sorted(set(accounts or []) - set(account_ids))
        if missing:
            self.stderr.write(f"Skipped (not Alpaca, or no usable key): {missing}")
        streams = [
            AccountStream(account_id, reconcile_on_connect=reconcile_on_connect).start()
            for account_id in account_ids
        ]
        self.stdout.write(f"Following trade updates of account(s) {account_ids}.")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait(seconds or None)
        for stream in streams:
            stream.stop()
        self.stdout.write("Stopped.")
