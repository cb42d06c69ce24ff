"""The pages through Django's test client, as the browser and its HTMX calls use them: the
header bell and dropdown, the notification centre (filters, read marks, open the related
object), the preferences page. A user never sees another user's notifications."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from apps.notifications import services
from apps.notifications.models import Notification, NotificationPreference, PushSubscription

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
CENTRE = "/notifications/"
PREFS = "/notifications/preferences/"


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def notes(user, other_user):
    made = [
        services.notify(user=user, type="order_filled", title="Bought 10 AAPL",
                        link="/trading/orders/12/"),
        services.notify(user=user, type="risk_breach", title="Daily loss limit breached",
                        body="Trading halted."),
        services.notify(user=user, type="backtest_finished", title="Backtest done"),
    ]  # fmt: skip
    services.notify(user=other_user, type="order_filled", title="Mallory secret fill")
    return made


def html(response) -> str:
    return response.content.decode()


def triggers(response) -> dict:
    return json.loads(response.get("HX-Trigger") or "{}")


def test_every_page_has_the_bell_with_the_unread_badge(browser, notes):
    text = html(browser.get("/"))
    badge = re.search(r'<span id="notif-badge"[^>]*data-count="(\d+)"[^>]*>([^<]*)<', text)
    assert badge and badge.groups() == ("3", "3")
    assert 'hx-get="/notifications/dropdown/"' in text
    assert re.search(r'<a href="/notifications/">.{0,600}?<span>Notifications</span>', text, re.S)


def test_the_badge_is_hidden_with_nothing_unread(browser, user):
    text = html(browser.get("/notifications/"))
    assert re.search(r'<span id="notif-badge"[^>]*data-count="0"[^>]*hidden', text)


def test_dropdown_lists_the_latest_mine_only(browser, notes):
    response = browser.get("/notifications/dropdown/", **HX)
    text = html(response)
    assert response.status_code == 200 and "3 unread" in text
    assert text.index("Backtest done") < text.index("Bought 10 AAPL")
    assert f'href="/notifications/{notes[0].pk}/open/"' in text
    assert "Mallory" not in text


def test_centre_lists_filters_and_paginates(browser, notes):
    text = html(browser.get(CENTRE))
    assert all(n.title in text for n in notes) and "Mallory" not in text
    assert 'class="active"' in text and 'data-testid="notification-filters"' in text
    response = browser.get(CENTRE, {"type": "risk_breach"}, **HX)
    text = html(response)
    assert "Daily loss limit breached" in text and "Bought 10 AAPL" not in text
    assert 'id="notifications-list"' in text and "<html" not in text  # the partial only
    unread = html(browser.get(CENTRE, {"status": "unread", "severity": "success"}))
    assert "Bought 10 AAPL" in unread and "Backtest done" not in unread
    searched = html(browser.get(CENTRE, {"q": "halted"}))
    assert "Daily loss limit breached" in searched and "Backtest done" not in searched


def test_mark_read_and_unread_over_htmx(browser, notes):
    target = notes[1]
    response = browser.post(f"/notifications/{target.pk}/read/", **HX)
    assert response.status_code == 200
    assert 'data-read="true"' in html(response) and "Mark unread" in html(response)
    assert "notifications-changed" in triggers(response)
    target.refresh_from_db()
    assert target.read_at is not None
    response = browser.post(f"/notifications/{target.pk}/unread/", **HX)
    assert 'data-read="false"' in html(response)
    target.refresh_from_db()
    assert target.read_at is None


def test_mark_all_read(browser, notes, other_user):
    response = browser.post("/notifications/read-all/", **HX)
    assert response.status_code == 204
    assert triggers(response)["toast"]["message"] == "3 notifications marked read."
    assert not Notification.objects.filter(user=notes[0].user, read_at__isnull=True).exists()
    assert Notification.objects.filter(user=other_user, read_at__isnull=True).count() == 1
    # Without HTMX: back to the centre with a message.
    response = browser.post("/notifications/read-all/")
    assert response.status_code == 302 and response["Location"] == CENTRE


def test_open_marks_read_and_goes_to_the_related_object(browser, notes):
    response = browser.get(f"/notifications/{notes[0].pk}/open/")
    assert response.status_code == 302 and response["Location"] == "/trading/orders/12/"
    notes[0].refresh_from_db()
    assert notes[0].read_at is not None
    # No link: the centre, at the notification.
    response = browser.get(f"/notifications/{notes[1].pk}/open/")
    assert response["Location"] == f"/notifications/#notification-{notes[1].pk}"


def test_open_never_redirects_off_site(browser, user):
    n = services.notify(user=user, type="system_alert", title="x", link="https://evil.example/")
    response = browser.get(f"/notifications/{n.pk}/open/")
    assert response["Location"] == f"/notifications/#notification-{n.pk}"


def test_another_users_notification_is_a_404_on_every_page(browser, other_user, notes):
    foreign = Notification.objects.get(user=other_user)
    for method, path in [
        ("get", f"/notifications/{foreign.pk}/open/"),
        ("post", f"/notifications/{foreign.pk}/read/"),
        ("post", f"/notifications/{foreign.pk}/unread/"),
    ]:
        assert getattr(browser, method)(path).status_code == 404, path
    foreign.refresh_from_db()
    assert foreign.read_at is None


def test_pages_need_a_login(client):
    for path in (CENTRE, PREFS, "/notifications/dropdown/"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- preferences --------------------------------------------------------------------------------


def test_preferences_page_shows_settings_matrix_tests_and_push(browser, user):
    text = html(browser.get(PREFS))
    assert 'data-testid="settings-form"' in text and 'data-testid="channel-matrix"' in text
    assert 'name="pref__order_filled__email" aria-label="Order filled: email" checked' in text
    assert 'name="pref__strategy_signal__email"' in text
    assert not re.search(r'name="pref__strategy_signal__email"[^>]*checked', text)
    for channel in ("in_app", "email", "push", "webhook"):
        assert f'data-testid="test-{channel}"' in text
    assert 'data-push-available="true"' in text and "notifications/push.js" in text
    assert 'data-testid="email-effective">alice@example.com<' in text


def test_save_settings_over_htmx_and_refuse_bad_input(browser, user, settings):
    data = {
        "email": "desk@example.org",
        "webhook_url": "https://hooks.example.com/x",
        "webhook_format": "discord",
        "quiet_hours_enabled": "on",
        "quiet_start": "22:00",
        "quiet_end": "06:30",
        "daily_summary_time": "18:00",
    }
    settings.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE = False
    response = browser.post(PREFS, data, **HX)
    assert response.status_code == 200, html(response)
    assert triggers(response)["toast"]["message"] == "Notification settings saved."
    row = user.notification_settings
    assert (row.email, row.webhook_format, row.quiet_hours_enabled) == (
        "desk@example.org",
        "discord",
        True,
    )
    assert row.daily_summary_enabled is False and row.webhook_secret
    bad = browser.post(PREFS, {**data, "email": "nope", "quiet_start": "25:00"}, **HX)
    assert bad.status_code == 422
    assert 'data-error-for="email"' in html(bad) and 'data-error-for="quiet_start"' in html(bad)
    internal = browser.post(PREFS, {**data, "webhook_url": "http://10.1.2.3/hook"}, **HX)
    assert internal.status_code == 422 and "internal address" in html(internal)


def test_save_the_channel_matrix(browser, user):
    response = browser.post(
        "/notifications/preferences/channels/",
        {"pref__order_filled__in_app": "on", "pref__strategy_signal__webhook": "on"},
        **HX,
    )
    assert response.status_code == 200
    assert triggers(response)["toast"]["message"] == "Channels saved."
    prefs = {(p.type, p.channel): p.enabled for p in NotificationPreference.objects.all()}
    assert prefs[("order_filled", "email")] is False
    assert prefs[("risk_breach", "in_app")] is False  # unticked: off
    assert ("strategy_signal", "webhook") not in prefs  # ticked and on by default: no row
    assert 'name="pref__order_filled__email" aria-label="Order filled: email">' in html(response)


def test_test_send_buttons(browser, user, smtp_server):
    response = browser.post("/notifications/preferences/test/", {"channel": "email"}, **HX)
    assert response.status_code == 204
    assert triggers(response)["toast"] == {
        "message": "Test message sent to E-mail.",
        "level": "success",
    }
    n = Notification.objects.get(type="test")
    assert list(n.deliveries.values_list("channel", flat=True)) == ["email"]
    response = browser.post("/notifications/preferences/test/", {"channel": "push"}, **HX)
    assert triggers(response)["toast"]["level"] == "error"
    assert "Enable web push" in triggers(response)["toast"]["message"]
    assert browser.post("/notifications/preferences/test/", {"channel": "fax"}).status_code == 404


def test_remove_a_push_device_only_mine(browser, user, other_user):
    mine = PushSubscription.objects.create(
        user=user, endpoint="https://push.example/a", p256dh="k", auth="a", user_agent="Firefox"
    )
    theirs = PushSubscription.objects.create(
        user=other_user, endpoint="https://push.example/b", p256dh="k", auth="a"
    )
    assert "Firefox" in html(browser.get(PREFS))
    assert browser.post(f"/notifications/preferences/push/{theirs.pk}/delete/").status_code == 404
    response = browser.post(f"/notifications/preferences/push/{mine.pk}/delete/", **HX)
    assert response.status_code == 200 and "No browser is subscribed." in html(response)
    assert list(PushSubscription.objects.all()) == [theirs]


def test_rotate_webhook_secret_page(browser, user):
    services.notification_settings_update(user=user, webhook_url="https://hooks.example.com/x")
    from apps.apikeys.fields import reveal

    before = reveal(user.notification_settings, "webhook_secret")
    assert before in html(browser.get(PREFS))
    response = browser.post("/notifications/preferences/webhook-secret/", **HX)
    user.notification_settings.refresh_from_db()
    after = reveal(user.notification_settings, "webhook_secret")
    assert after != before and after in html(response)


def test_the_service_worker_is_served(client):
    response = client.get("/notifications/sw.js")
    assert response.status_code == 200 and response["Content-Type"] == "text/javascript"
    assert "showNotification" in html(response)


def test_another_user_sees_nothing_of_mine(notes, other_user):
    other = Client()
    other.force_login(other_user)
    for path in (CENTRE, "/notifications/dropdown/"):
        text = html(other.get(path))
        assert "Mallory secret fill" in text
        assert all(n.title not in text for n in notes)
