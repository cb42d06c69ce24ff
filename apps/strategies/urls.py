from django.urls import path

from apps.strategies import views

app_name = "strategies"
urlpatterns = [
    path("", views.strategy_list, name="list"),
    path("new/", views.strategy_create_view, name="create"),
    path("params/", views.param_fields, name="params"),
    path("sizing/", views.sizing_fields, name="sizing"),
    path("<int:pk>/edit/", views.strategy_edit, name="edit"),
    path("<int:pk>/delete/", views.strategy_delete_view, name="delete"),
    path("<int:pk>/mode/", views.strategy_mode, name="mode"),
]
