"""The REST API as a client uses it: paginated, filterable notifications, read marks, the
unread count and statistics, preferences, settings with test sends, push subscriptions. A user
never sees or changes another user's notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from apps.notifications import services
from apps.notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationPreference,
    PushSubscription,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/notifications/"


@pytest.fixture
def notes(user, other_user):
    start = datetime(2026, 1, 5, 12, tzinfo=UTC)
    made = []
    for i, (kind, title) in enumerate(
        [
            ("order_filled", "Bought 10 AAPL"),
            ("risk_breach", "Daily loss limit breached"),
            ("order_rejected", "Order rejected: insufficient buying power"),
            ("backtest_finished", "Backtest SMA 10/30 finished"),
        ]
    ):
        with time_machine.travel(start + timedelta(minutes=i), tick=False):
            made.append(services.notify(user=user, type=kind, title=title, body=f"body {i}"))
    services.notify(user=other_user, type="order_filled", title="Mallory's secret fill")
    return made


def test_list_is_newest_first_paginated_and_only_mine(api_client, notes):
    response = api_client.get(URL, {"page_size": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4 and len(body["results"]) == 3 and body["next"]
    titles = [n["title"] for n in body["results"]]
    assert titles == [
        "Backtest SMA 10/30 finished",
        "Order rejected: insufficient buying power",
        "Daily loss limit breached",
    ]
    first = body["results"][0]
    assert first["type"] == "backtest_finished" and first["type_label"] == "Backtest finished"
    assert first["is_read"] is False and first["read_at"] is None
    assert {d["channel"] for d in first["deliveries"]} == {"in_app", "email"}
    assert "Mallory" not in response.content.decode()


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ({"type": "risk_breach"}, ["Daily loss limit breached"]),
        ({"severity": "error"}, ["Order rejected: insufficient buying power"]),
        ({"search": "AAPL"}, ["Bought 10 AAPL"]),
        ({"created_before": "2026-01-05T12:01:00Z"}, ["Bought 10 AAPL"]),
        ({"created_after": "2026-01-05T12:03:00Z"}, ["Backtest SMA 10/30 finished"]),
    ],
)
def test_filters(api_client, notes, query, titles):
    response = api_client.get(URL, query)
    assert response.status_code == 200
    assert [n["title"] for n in response.json()["results"]] == titles


def test_bad_filters_are_a_400_not_a_500(api_client, notes):
    response = api_client.get(URL, {"type": "nonsense"})
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert "type" in response.json()["errors"]


def test_mark_one_read_and_unread_and_filter_by_read(api_client, notes):
    target = notes[0]
    response = api_client.post(f"{URL}{target.pk}/read/")
    assert response.status_code == 200 and response.json()["is_read"] is True
    target.refresh_from_db()
    assert target.read_at is not None
    read = api_client.get(URL, {"read": "true"}).json()["results"]
    unread = api_client.get(URL, {"read": "false"}).json()["results"]
    assert [n["id"] for n in read] == [target.pk]
    assert target.pk not in [n["id"] for n in unread] and len(unread) == 3
    assert api_client.get(f"{URL}unread-count/").json() == {"unread_count": 3}
    response = api_client.post(f"{URL}{target.pk}/unread/")
    assert response.json()["is_read"] is False
    assert api_client.get(f"{URL}unread-count/").json() == {"unread_count": 4}


def test_mark_many_ignores_other_users_ids(api_client, notes, other_user):
    foreign = Notification.objects.get(user=other_user)
    response = api_client.post(
        f"{URL}mark-read/", {"ids": [notes[0].pk, notes[1].pk, foreign.pk]}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"marked": 2, "unread_count": 2}
    foreign.refresh_from_db()
    assert foreign.read_at is None


def test_mark_many_validates(api_client, notes):
    response = api_client.post(f"{URL}mark-read/", {"ids": []}, format="json")
    assert response.status_code == 400 and "ids" in response.json()["errors"]


def test_mark_all_read(api_client, notes, other_user):
    response = api_client.post(f"{URL}mark-all-read/")
    assert response.json() == {"marked": 4, "unread_count": 0}
    assert Notification.objects.filter(user=other_user, read_at__isnull=True).count() == 1


def test_another_users_notification_is_a_404_everywhere(api_client, notes, other_user):
    foreign = Notification.objects.get(user=other_user)
    for method, path in [
        ("get", f"{URL}{foreign.pk}/"),
        ("post", f"{URL}{foreign.pk}/read/"),
        ("post", f"{URL}{foreign.pk}/unread/"),
    ]:
        response = getattr(api_client, method)(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    foreign.refresh_from_db()
    assert foreign.read_at is None


def test_stats_by_type_severity_channel_and_status(api_client, notes):
    Delivery.objects.filter(notification=notes[0], channel="email").update(
        status=DeliveryStatus.SENT
    )
    Delivery.objects.filter(notification=notes[1], channel="email").update(
        status=DeliveryStatus.FAILED_PERMANENT
    )
    services.notifications_mark_read(user=notes[0].user, ids=[notes[0].pk])
    stats = api_client.get(f"{URL}stats/").json()
    assert stats["total"] == 4 and stats["unread"] == 3
    assert stats["by_type"] == {
        "order_filled": 1,
        "risk_breach": 1,
        "order_rejected": 1,
        "backtest_finished": 1,
    }
    assert stats["by_severity"] == {"success": 1, "critical": 1, "error": 1, "info": 1}
    assert stats["deliveries"]["in_app"] == {"pending": 4}
    assert stats["deliveries"]["email"] == {"sent": 1, "failed_permanent": 1, "pending": 2}


def test_anonymous_requests_are_refused():
    response = APIClient().get(URL)
    assert response.status_code == 401


# --- preferences ------------------------------------------------------------------------------

PREFS = "/api/v1/notification-preferences/"


def test_preferences_crud(api_client, user, other_api_client):
    created = api_client.post(
        PREFS, {"type": "strategy_signal", "channel": "email", "enabled": True}, format="json"
    )
    assert created.status_code == 201
    pk = created.json()["id"]
    # Posting the same pair again updates the row instead of failing.
    again = api_client.post(
        PREFS, {"type": "strategy_signal", "channel": "email", "enabled": False}, format="json"
    )
    assert again.json()["id"] == pk and again.json()["enabled"] is False
    assert api_client.get(PREFS).json() == [
        {"id": pk, "type": "strategy_signal", "channel": "email", "enabled": False}
    ]
    patched = api_client.patch(f"{PREFS}{pk}/", {"enabled": True}, format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is True
    refused = api_client.patch(f"{PREFS}{pk}/", {"channel": "push"}, format="json")
    assert refused.status_code == 400 and "channel" in refused.json()["errors"]
    assert other_api_client.get(f"{PREFS}{pk}/").status_code == 404
    assert other_api_client.delete(f"{PREFS}{pk}/").status_code == 404
    assert api_client.delete(f"{PREFS}{pk}/").status_code == 204
    assert not NotificationPreference.objects.exists()


def test_preferences_validation_and_matrix(api_client):
    bad = api_client.post(PREFS, {"type": "test", "channel": "email", "enabled": True})
    assert bad.status_code == 400 and "type" in bad.json()["errors"]
    bad = api_client.post(PREFS, {"type": "order_filled", "channel": "fax", "enabled": True})
    assert bad.status_code == 400 and "channel" in bad.json()["errors"]
    api_client.post(PREFS, {"type": "order_filled", "channel": "email", "enabled": False})
    matrix = {row["type"]: row for row in api_client.get(f"{PREFS}matrix/").json()}
    assert "test" not in matrix and len(matrix) == 15
    cells = {c["channel"]: c for c in matrix["order_filled"]["cells"]}
    assert cells["email"] == {
        "type": "order_filled",
        "channel": "email",
        "enabled": False,
        "default": True,
    }
    assert matrix["risk_breach"]["severity"] == "critical"


# --- settings ----------------------------------------------------------------------------------

SETTINGS = "/api/v1/notification-settings/me/"


def test_settings_read_and_update(api_client, user, webhook_receiver):
    body = api_client.get(SETTINGS).json()
    assert body["email"] == "" and body["email_effective"] == "alice@example.com"
    assert body["quiet_hours_enabled"] is False and body["time_zone"] == "UTC"
    assert body["push_available"] is True and len(body["vapid_public_key"]) == 87
    response = api_client.patch(
        SETTINGS,
        {
            "email": "desk@example.org",
            "webhook_url": webhook_receiver.url,
            "webhook_format": "slack",
            "quiet_hours_enabled": True,
            "quiet_start": "21:30",
            "quiet_end": "06:45",
            "daily_summary_enabled": True,
            "daily_summary_time": "17:15",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["email_effective"] == "desk@example.org" and body["webhook_secret_set"] is True
    assert (body["quiet_start"], body["quiet_end"]) == ("21:30:00", "06:45:00")
    secret = api_client.get(f"{SETTINGS}webhook-secret/").json()["webhook_secret"]
    assert secret.startswith("whsec_")
    rotated = api_client.post(f"{SETTINGS}rotate-webhook-secret/").json()["webhook_secret"]
    assert rotated != secret
    assert api_client.get(f"{SETTINGS}webhook-secret/").json()["webhook_secret"] == rotated


def test_settings_refuse_bad_values_and_read_only_fields(api_client, settings):
    assert api_client.patch(SETTINGS, {"email": "nope"}, format="json").status_code == 400
    response = api_client.patch(SETTINGS, {"time_zone": "Asia/Tokyo"}, format="json")
    assert response.status_code == 400 and "time_zone" in response.json()["errors"]
    settings.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE = False
    response = api_client.patch(SETTINGS, {"webhook_url": "http://127.0.0.1:8000/x"}, format="json")
    assert response.status_code == 400 and "webhook_url" in response.json()["errors"]
    assert api_client.get("/api/v1/notification-settings/").status_code == 404
    assert api_client.get("/api/v1/notification-settings/42/").status_code == 404


def test_test_send_per_channel(api_client, user, smtp_server):
    response = api_client.post(f"{SETTINGS}test/", {"channel": "email"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["type"] == "test" and [d["channel"] for d in body["deliveries"]] == ["email"]
    from tests.notifications.conftest import deliver_due

    assert deliver_due() == ["sent"]
    assert smtp_server.wait_for(1)
    assert smtp_server.messages[0].subject == "[Trade Platform] Test message (E-mail)"
    refused = api_client.post(f"{SETTINGS}test/", {"channel": "webhook"}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "Set a webhook URL first.",
        "code": "channel_not_configured",
    }


# --- push subscriptions -----------------------------------------------------------------------

PUSH = "/api/v1/push-subscriptions/"


def test_push_subscription_register_list_unregister(
    api_client, other_api_client, user, push_service
):
    info = push_service.subscribe()
    response = api_client.post(PUSH, {**info, "user_agent": "Firefox"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["endpoint"] == info["endpoint"] and "keys" not in body
    assert api_client.get(PUSH).json()[0]["user_agent"] == "Firefox"
    assert other_api_client.get(PUSH).json() == []
    assert other_api_client.delete(f"{PUSH}{body['id']}/").status_code == 404
    # The same browser registering again refreshes the one row.
    assert api_client.post(PUSH, info, format="json").json()["id"] == body["id"]
    response = api_client.post(f"{PUSH}unregister/", {"endpoint": info["endpoint"]}, format="json")
    assert response.status_code == 204 and not PushSubscription.objects.exists()


def test_push_subscription_validation(api_client):
    keys = {"p256dh": "AAAA", "auth": "AAAA"}  # base64url, but not a key and a secret
    response = api_client.post(
        PUSH, {"endpoint": "https://push.example/x", "keys": keys}, format="json"
    )
    assert response.status_code == 400 and set(response.json()["errors"]) == {"p256dh", "auth"}
    assert api_client.post(PUSH, {"endpoint": "not a url"}, format="json").status_code == 400


# --- isolation: every route and method ----------------------------------------------------------

MINE = ("notification", "notification-preference", "notification-settings", "push-subscription")


@pytest.fixture
def alice_world(user, other_user, push_service):
    """Alice's notification, preference and push subscription, and Mallory's own ones."""
    world = {}
    for who, owner in (("a", user), ("b", other_user)):
        world[f"{who}_note"] = services.notify(
            user=owner, type="order_filled", title=f"{who} secret fill"
        )
        world[f"{who}_pref"] = services.notification_preference_set(
            user=owner, type="strategy_signal", channel="email", enabled=True
        )
        info = push_service.subscribe()
        world[f"{who}_push"] = services.push_subscription_register(
            user=owner, endpoint=info["endpoint"], p256dh=info["keys"]["p256dh"],
            auth=info["keys"]["auth"], user_agent=f"{who} secret browser",
        )  # fmt: skip
    return world


def alice_rows(user) -> list:
    return [
        list(Notification.objects.filter(user=user).values().order_by("pk")),
        list(Delivery.objects.filter(user=user).values().order_by("pk")),
        list(NotificationPreference.objects.filter(user=user).values().order_by("pk")),
        list(PushSubscription.objects.filter(user=user).values().order_by("pk")),
    ]


# (route name, method, path, expectation, body)
ISOLATION = [
    ("notification-list", "get", lambda w: URL, "list", None),
    ("notification-detail", "get", lambda w: f"{URL}{w['a_note'].pk}/", "404", None),
    ("notification-read", "post", lambda w: f"{URL}{w['a_note'].pk}/read/", "404", None),
    ("notification-unread", "post", lambda w: f"{URL}{w['a_note'].pk}/unread/", "404", None),
    ("notification-mark-read", "post", lambda w: f"{URL}mark-read/", "own",
     lambda w: {"ids": [w["a_note"].pk, w["b_note"].pk]}),
    ("notification-mark-all-read", "post", lambda w: f"{URL}mark-all-read/", "own", None),
    ("notification-unread-count", "get", lambda w: f"{URL}unread-count/", "own", None),
    ("notification-stats", "get", lambda w: f"{URL}stats/", "own", None),
    ("notification-preference-list", "get", lambda w: PREFS, "list", None),
    ("notification-preference-list", "post", lambda w: PREFS, "own",
     lambda w: {"type": "strategy_signal", "channel": "email", "enabled": False}),
    ("notification-preference-detail", "get", lambda w: f"{PREFS}{w['a_pref'].pk}/", "404",
     None),
    ("notification-preference-detail", "patch", lambda w: f"{PREFS}{w['a_pref'].pk}/", "404",
     lambda w: {"enabled": False}),
    ("notification-preference-detail", "delete", lambda w: f"{PREFS}{w['a_pref'].pk}/", "404",
     None),
    ("notification-preference-matrix", "get", lambda w: f"{PREFS}matrix/", "own", None),
    ("notification-settings-detail", "get", lambda w: SETTINGS, "own", None),
    ("notification-settings-detail", "put", lambda w: SETTINGS, "own",
     lambda w: {"email": "mallory@example.com"}),
    ("notification-settings-detail", "patch", lambda w: SETTINGS, "own",
     lambda w: {"email": "mallory@example.com"}),
    ("notification-settings-webhook-secret", "get", lambda w: f"{SETTINGS}webhook-secret/", "own",
     None),
    ("notification-settings-rotate-webhook-secret", "post",
     lambda w: f"{SETTINGS}rotate-webhook-secret/", "own", None),
    ("notification-settings-test", "post", lambda w: f"{SETTINGS}test/", "own",
     lambda w: {"channel": "in_app"}),
    ("push-subscription-list", "get", lambda w: PUSH, "list", None),
    ("push-subscription-list", "post", lambda w: PUSH, "own",
     lambda w: {"endpoint": "https://push.example/mallory",
                "keys": {"p256dh": w["b_push"].p256dh, "auth": w["b_push"].auth}}),
    ("push-subscription-detail", "get", lambda w: f"{PUSH}{w['a_push'].pk}/", "404", None),
    ("push-subscription-detail", "delete", lambda w: f"{PUSH}{w['a_push'].pk}/", "404", None),
    ("push-subscription-unregister", "post", lambda w: f"{PUSH}unregister/", "own",
     lambda w: {"endpoint": w["a_push"].endpoint}),
]  # fmt: skip


@pytest.mark.parametrize("case", ISOLATION, ids=[f"{c[1]} {c[0]}" for c in ISOLATION])
def test_mallory_never_sees_or_changes_alices_notifications(
    case, alice_world, user, other_api_client
):
    route, method, path, expect, body = case
    before = alice_rows(user)
    kwargs = {"format": "json"}
    if body is not None:
        kwargs["data"] = body(alice_world)
    response = getattr(other_api_client, method)(path(alice_world), **kwargs)
    assert "a secret" not in response.content.decode()
    if expect == "404":
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    elif expect == "list":
        assert response.status_code == 200
        data = response.json()
        rows = data["results"] if isinstance(data, dict) else data
        ids = {row["id"] for row in rows}
        kind = {"notification-list": "note", "notification-preference-list": "pref"}.get(
            route, "push"
        )
        assert alice_world[f"a_{kind}"].pk not in ids and alice_world[f"b_{kind}"].pk in ids
    else:  # "own": Mallory acts on her own things only
        assert response.status_code < 400, response.content
    assert alice_rows(user) == before


def test_the_isolation_cases_cover_every_route_of_this_app():
    from tradeplatform.api_urls import router

    routes = set()
    for _prefix, viewset, basename in router.registry:
        if basename not in MINE:
            continue
        for route in router.get_routes(viewset):
            for method, action in route.mapping.items():
                if hasattr(viewset, action):
                    routes.add((route.name.format(basename=basename), method))
    assert routes == {(case[0], case[1]) for case in ISOLATION}
