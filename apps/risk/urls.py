from django.urls import path

from apps.risk import views

app_name = "risk"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("accounts/<int:pk>/resume/", views.account_resume, name="resume"),
    path("accounts/<int:pk>/halt/", views.account_halt, name="halt"),
    path("accounts/<int:pk>/rules/new/", views.rule_create, name="rule_create"),
    path("accounts/<int:pk>/rules/fields/", views.rule_fields, name="rule_fields"),
    path("accounts/<int:pk>/test/", views.order_test, name="order_test"),
    path("accounts/<int:pk>/size/", views.size, name="size"),
    path("accounts/<int:pk>/size/fields/", views.size_fields, name="size_fields"),
    path(
        "accounts/<int:pk>/events/acknowledge/",
        views.events_acknowledge_all,
        name="events_acknowledge_all",
    ),
    path("rules/<int:pk>/", views.rule_row, name="rule_row"),
    path("rules/<int:pk>/edit/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/toggle/", views.rule_toggle, name="rule_toggle"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("events/<int:pk>/acknowledge/", views.event_acknowledge, name="event_acknowledge"),
]
