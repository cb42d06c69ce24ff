"""Browser tests: Playwright (sync API) driving Debian's Chromium against a real ASGI server.

How the app is served
---------------------
pytest-django's ``live_server`` speaks WSGI only (and ``WSGI_APPLICATION`` is None here), and
channels' ``ChannelsLiveServerTestCase`` runs daphne in another *process*, where the in-memory
channel layer is a different object, so a live update started by the test would never reach
the page. Instead ``asgi_server`` runs daphne in a thread of the test process, serving
``tradeplatform.asgi.application`` (HTTP and /ws/events/) on a free port:

* Database: tests use ``transactional_db``, so what a test writes is committed and visible to
  the server's threads (each opens its own connection to the same test database). Connections
  are not kept between requests (CONN_MAX_AGE=0 for the run), so none is left open when
  pytest-django flushes or drops the database.
* Channel layer: with REDIS_URL set, the Redis layer (shared by nature). Otherwise the
  in-memory layer, which is one object for the test and the server but is bound to the event
  loop its consumers wait on; ``CrossThreadInMemoryChannelLayer`` hands a send made from
  another loop (a test applying a fill in a worker thread) over to the server's loop.
* Twisted's reactor cannot be restarted, so the server lives for the whole session; the
  browser only for the e2e package.

Playwright's sync API keeps an asyncio loop "running" in the main thread. Django refuses ORM
calls there (SynchronousOnlyOperation) and asgiref refuses ``async_to_sync`` (the services'
``broadcast``), so while the browser is up DJANGO_ALLOW_ASYNC_UNSAFE is set for the ORM, and
anything that broadcasts runs through ``in_thread``, as another process would.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from django.conf import settings
from django.db import connections
from django.test.utils import override_settings

from tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 10_000


class CrossThreadInMemoryChannelLayer(InMemoryChannelLayer):
    """The in-memory layer, plus: a send from another event loop runs on the consumers' loop.

    Its asyncio queues wake their readers only from the loop they wait in; a plain send from a
    test's worker thread would sit unnoticed until that loop woke for another reason.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._home: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel: str) -> dict:
        self._home = asyncio.get_running_loop()
        return await super().receive(channel)

    async def _at_home(self, method: Callable, *args: Any) -> Any:
        home = self._home
        if home is None or home.is_closed() or home is asyncio.get_running_loop():
            return await method(*args)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(method(*args), home))

    async def send(self, channel: str, message: dict) -> None:
        await self._at_home(super().send, channel, message)

    async def group_send(self, group: str, message: dict) -> None:
        await self._at_home(super().group_send, group, message)


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a fresh thread (like another process would) and return its result.

    Use it for services that broadcast live events: ``async_to_sync`` cannot run in the thread
    where Playwright's loop lives. The thread's database connection is closed afterwards.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="e2e-worker")
    thread.start()
    thread.join(60)
    if thread.is_alive():
        raise TimeoutError(f"{fn!r} did not finish")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@contextmanager
def htmx_swap(page: Any, selector: str) -> Iterator[None]:
    """Wait, after the block, until an HTMX swap has settled with ``selector`` on the page.

    HTMX inserts swapped content at once but wires its ``hx-*`` attributes only when the swap
    settles (a few milliseconds later). A test that uses a control of that content straight
    away (a ``select`` whose ``change`` fetches more fields) can beat HTMX to it, and the event
    goes unheard. A person cannot click that fast; a browser test can.
    """
    page.evaluate(
        """({selector, timeout}) => {
            window.__htmxSwap = new Promise((resolve, reject) => {
                const settled = () => {
                    if (!document.querySelector(selector)) return;
                    document.body.removeEventListener("htmx:afterSettle", settled);
                    resolve(true);
                };
                document.body.addEventListener("htmx:afterSettle", settled);
                setTimeout(() => reject(new Error("no HTMX swap settled with " + selector)),
                           timeout);
            });
        }""",
        {"selector": selector, "timeout": TIMEOUT_MS},
    )
    yield
    page.evaluate("() => window.__htmxSwap")


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Daphne in a thread of this process; yields its base URL."""
    from daphne.server import Server  # daphne installed Twisted's asyncio reactor at startup
    from twisted.internet import reactor

    from tradeplatform.asgi import application

    overrides = []
    if not settings.REDIS_URL:
        backend = f"{CrossThreadInMemoryChannelLayer.__module__}.CrossThreadInMemoryChannelLayer"
        overrides.append(override_settings(CHANNEL_LAYERS={"default": {"BACKEND": backend}}))
    for override in overrides:
        override.enable()  # setting_changed makes channels rebuild its layer
    database = connections.settings["default"]  # the dict every thread's connection is built from
    max_age = database.get("CONN_MAX_AGE", 0)
    database["CONN_MAX_AGE"] = 0

    server = Server(
        application=application,
        endpoints=["tcp:port=0:interface=127.0.0.1"],
        signal_handlers=False,
        verbosity=0,
    )
    thread = threading.Thread(target=server.run, name="daphne", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not getattr(server, "listening_addresses", None):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("daphne did not start listening")
        time.sleep(0.05)
    host, port = server.listening_addresses[0]
    try:
        yield f"http://{host}:{port}"
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(15)
        database["CONN_MAX_AGE"] = max_age
        for override in reversed(overrides):
            override.disable()


@pytest.fixture(scope="package")
def browser(asgi_server) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def base_url(asgi_server) -> str:
    return asgi_server


@pytest.fixture
def page(browser, transactional_db, base_url) -> Iterator[Any]:
    """A fresh browser context per test; fails the test on any JavaScript error."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def login(page) -> Callable[[Any], Any]:
    """Sign in through the login page, as a person would; lands on the dashboard."""

    def sign_in(user) -> Any:
        page.goto("/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/")
        return page

    return sign_in
