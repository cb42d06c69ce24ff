"""Sign in, sign out and password change pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_renders_the_form(client):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="username"' in body and 'name="password"' in body
    assert 'id="live-status"' not in body  # no live socket for anonymous visitors


def test_login_with_good_credentials_goes_to_the_dashboard(client, user):
    response = client.post(
        reverse("accounts:login"), {"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")


def test_login_with_a_wrong_password_shows_the_error_inline(client, user):
    response = client.post(
        reverse("accounts:login"), {"username": user.username, "password": "nope"}
    )
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_honours_next(client, user):
    url = reverse("accounts:login") + "?next=/trading/orders/"
    response = client.post(
        url, {"username": user.username, "password": PASSWORD, "next": "/trading/orders/"}
    )
    assert response["Location"] == "/trading/orders/"


def test_logout_is_a_post(client, user):
    client.force_login(user)
    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in client.session


def test_base_layout_has_navigation_user_menu_and_logout_form(client, user):
    client.force_login(user)
    body = client.get(reverse("dashboard")).content.decode()
    for url in (
        "/markets/",
        "/strategies/",
        "/trading/orders/",
        "/trading/positions/",
        "/trading/journal/",
    ):
        assert f'href="{url}"' in body
    assert f'action="{reverse("accounts:logout")}"' in body
    assert reverse("accounts:password_change") in body
    assert reverse("api-docs") in body
    assert reverse("admin:index") not in body  # not staff
    assert 'id="live-status"' in body and "js/live.js" in body


def test_staff_see_the_admin_link(client, user):
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert reverse("admin:index") in client.get(reverse("dashboard")).content.decode()


def test_password_change_requires_login(client):
    response = client.get(reverse("accounts:password_change"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_password_change_errors_inline_then_done(client, user):
    client.force_login(user)
    url = reverse("accounts:password_change")
    bad = client.post(url, {"old_password": "wrong", "new_password1": "x", "new_password2": "y"})
    assert bad.status_code == 200
    assert "Your old password was entered incorrectly" in bad.content.decode()
    good = client.post(
        url,
        {
            "old_password": PASSWORD,
            "new_password1": "a-much-longer-pass-42",
            "new_password2": "a-much-longer-pass-42",
        },
    )
    assert good.status_code == 302 and good["Location"] == reverse("accounts:password_change_done")
    assert client.get(good["Location"]).status_code == 200
    user.refresh_from_db()
    assert user.check_password("a-much-longer-pass-42")
