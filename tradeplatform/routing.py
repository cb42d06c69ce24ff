"""WebSocket URL routes; each app adds its consumers here."""

from django.urls import path

from apps.core.consumers import UserEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", UserEventsConsumer.as_asgi()),
]
