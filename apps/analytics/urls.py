from django.urls import path

from apps.analytics import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
