from django.urls import path

from apps.execution import views

app_name = "execution"
urlpatterns = [
    path("orders/", views.orders, name="orders"),
    path("orders/new/", views.order_create, name="order_create"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
    path("orders/<int:pk>/cancel/", views.order_cancel_view, name="order_cancel"),
    path("orders/<int:pk>/replace/", views.order_replace_view, name="order_replace"),
    path("positions/", views.positions, name="positions"),
    path("journal/", views.journal, name="journal"),
    path("journal/export.csv", views.journal_export, name="journal_export"),
    path("journal/<int:pk>/", views.trade_row, name="trade_row"),
    path("journal/<int:pk>/edit/", views.trade_edit, name="trade_edit"),
    path("signals/", views.signals, name="signals"),
]
