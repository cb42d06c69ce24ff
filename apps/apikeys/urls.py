from django.urls import path

from apps.apikeys import views

app_name = "apikeys"
urlpatterns = [
    path("", views.key_list, name="list"),
    path("<int:pk>/", views.key_detail, name="detail"),
    path("<int:pk>/edit/", views.key_edit, name="edit"),
    path("<int:pk>/verify/", views.key_verify, name="verify"),
    path("<int:pk>/rotate/", views.key_rotate, name="rotate"),
    path("<int:pk>/revoke/", views.key_revoke, name="revoke"),
    path("<int:pk>/delete/", views.key_delete, name="delete"),
    path("<int:pk>/audit/", views.key_audit, name="audit"),
]
