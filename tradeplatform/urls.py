"""Top-level URL map: pages, admin, the REST API under /api/v1/ and its schema/docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core.views import healthz

urlpatterns = [
    path("", include("apps.analytics.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("markets/", include("apps.marketdata.urls")),
    path("strategies/", include("apps.strategies.urls")),
    path("trading/", include("apps.execution.urls")),
    path("risk/", include("apps.risk.urls")),
    path("api-keys/", include("apps.apikeys.urls")),
    path("notifications/", include("apps.notifications.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tradeplatform.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
]
