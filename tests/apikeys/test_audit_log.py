"""The audit log is append-only: through the ORM, the admin, the API and raw SQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from apps.apikeys.models import ApiKeyAuditLog, AppendOnlyError
from tests.apikeys.conftest import KEY_ID, SECRET
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return UserFactory(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_the_orm_refuses_to_change_or_delete_audit_rows(key):
    entry = ApiKeyAuditLog.objects.filter(api_key=key).first()
    entry.reason = "edited"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        ApiKeyAuditLog.objects.filter(pk=entry.pk).update(reason="edited")
    with pytest.raises(AppendOnlyError):
        ApiKeyAuditLog.objects.all().delete()
    assert ApiKeyAuditLog.objects.get(pk=entry.pk).reason == ""


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE apikeys_apikeyauditlog SET reason = 'edited'",
        "UPDATE apikeys_apikeyauditlog SET success = NOT success",
        "DELETE FROM apikeys_apikeyauditlog",
    ],
)
def test_the_database_refuses_update_and_delete(key, sql):
    before = list(ApiKeyAuditLog.objects.values().order_by("pk"))
    assert before
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert list(ApiKeyAuditLog.objects.values().order_by("pk")) == before


@pytest.mark.postgres
def test_the_database_still_accepts_new_rows(key):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO apikeys_apikeyauditlog (at, action, success, reason, actor_username, "
            "channel, user_agent, purpose, target, data) VALUES "
            "(now(), 'view', true, '', '', 'system', '', '', '', '{}')"
        )
    assert ApiKeyAuditLog.objects.filter(channel="system", action="view").count() == 1


def test_a_deleted_user_leaves_the_audit_trail_intact(user, key):
    user_id = user.pk
    count = ApiKeyAuditLog.objects.filter(owner_id=user_id).count()
    user.delete()
    assert ApiKeyAuditLog.objects.filter(owner_id=user_id, api_key_id=key.pk).count() == count > 0
    assert ApiKeyAuditLog.objects.filter(actor_username="alice").exists()


def test_admin_shows_the_audit_log_read_only(admin_client, key):
    entry = ApiKeyAuditLog.objects.filter(api_key=key).first()
    listing = admin_client.get("/admin/apikeys/apikeyauditlog/")
    assert listing.status_code == 200
    assert 'name="action"' not in listing.content.decode()  # no bulk actions, no delete_selected
    change_url = f"/admin/apikeys/apikeyauditlog/{entry.pk}/change/"
    assert admin_client.get(change_url).status_code == 200  # viewable
    assert admin_client.post(change_url, {"reason": "edited"}).status_code == 403
    delete = f"/admin/apikeys/apikeyauditlog/{entry.pk}/delete/"
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/apikeys/apikeyauditlog/add/").status_code == 403
    assert ApiKeyAuditLog.objects.get(pk=entry.pk).reason == ""


def test_admin_never_shows_secrets_or_ciphertexts(admin_client, key):
    for url in ("/admin/apikeys/apikey/", f"/admin/apikeys/apikey/{key.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200
        text = response.content.decode()
        assert key.fingerprint[:16] in text
        assert SECRET not in text and KEY_ID not in text and "tpsec:" not in text
    assert admin_client.get(f"/admin/apikeys/apikey/{key.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/apikeys/apikey/add/").status_code == 403


def test_admin_revoke_action_goes_through_the_service(admin_client, staff, key):
    response = admin_client.post(
        "/admin/apikeys/apikey/",
        {"action": "revoke_keys", "_selected_action": [key.pk]},
        follow=True,
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.status == "revoked" and key.secret is None
    entry = ApiKeyAuditLog.objects.filter(action="revoke").get()
    assert entry.channel == "admin" and entry.actor_id == staff.pk and entry.success
