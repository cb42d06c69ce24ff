"""Template context shared by every page: the navigation of the product's areas."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse

# (label, url name, path prefix that marks the entry active, icon). The dashboard lives at "/",
# so it is active on that exact path only.
NAVIGATION = (
    ("Dashboard", "dashboard", "", "dashboard"),
    ("Markets", "marketdata:instruments", "/markets/", "markets"),
    ("Strategies", "strategies:list", "/strategies/", "strategies"),
    ("Orders", "execution:orders", "/trading/orders", "orders"),
    ("Positions", "execution:positions", "/trading/positions", "positions"),
    ("Journal", "execution:journal", "/trading/journal", "journal"),
    ("Signals", "execution:signals", "/trading/signals", "strategies"),
    ("Risk", "risk:dashboard", "/risk/", "risk"),
    ("Accounts", "accounts:list", "/accounts/", "accounts"),
    ("API keys", "apikeys:list", "/api-keys/", "api"),
    ("Notifications", "notifications:centre", "/notifications/", "notifications"),
)

# Pages under /accounts/ that are not the account list (they live in the user menu).
_USER_MENU_PATHS = ("/accounts/login", "/accounts/logout", "/accounts/password")


def navigation(request: HttpRequest) -> dict:
    path = request.path
    items = []
    for label, url_name, prefix, icon in NAVIGATION:
        url = reverse(url_name)
        if prefix:
            active = path.startswith(prefix) and not path.startswith(_USER_MENU_PATHS)
        else:
            active = path == url
        items.append({"label": label, "url": url, "active": active, "icon": icon})
    return {"nav_items": items}
