from django.urls import path

from apps.notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.centre, name="centre"),
    path("dropdown/", views.dropdown, name="dropdown"),
    path("read-all/", views.read_all, name="read_all"),
    path("<int:pk>/open/", views.open_notification, name="open"),
    path("<int:pk>/read/", views.mark_read, name="read"),
    path("<int:pk>/unread/", views.mark_unread, name="unread"),
    path("preferences/", views.preferences, name="preferences"),
    path("preferences/channels/", views.preferences_channels, name="preferences_channels"),
    path("preferences/test/", views.test_send, name="test_send"),
    path("preferences/webhook-secret/", views.rotate_webhook_secret, name="rotate_secret"),
    path("preferences/push/<int:pk>/delete/", views.push_delete, name="push_delete"),
    path("sw.js", views.service_worker, name="service_worker"),
]
