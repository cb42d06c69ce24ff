"""REST API v1: one router, each app registers its viewsets."""

from django.urls import path, re_path
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from apps.accounts.api import AuthTokenView, TradingAccountViewSet
from apps.apikeys.api import ApiKeyViewSet
from apps.execution.api import OrderViewSet, PositionViewSet, SignalViewSet, TradeViewSet
from apps.marketdata.api import BarViewSet, InstrumentViewSet
from apps.notifications.api import (
    NotificationPreferenceViewSet,
    NotificationSettingsViewSet,
    NotificationViewSet,
    PushSubscriptionViewSet,
)
from apps.risk.api import (
    AccountRiskViewSet,
    PositionSizeViewSet,
    RiskEventViewSet,
    RiskRuleTypeViewSet,
    RiskRuleViewSet,
)
from apps.strategies.api import StrategyKindViewSet, StrategyViewSet


@extend_schema(exclude=True)
class NoSuchEndpoint(APIView):
    """Anything under /api/v1/ that no route matches: a JSON 404, never an HTML page."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def http_method_not_allowed(self, request: Request, *args, **kwargs):
        hint = "" if request.path.endswith("/") else " API URLs end with a slash."
        raise NotFound(f"No API endpoint at {request.path}.{hint}")

    options = http_method_not_allowed


router = DefaultRouter()
# accounts/{id}/risk/, /halt/, /resume/. Registered before the accounts viewset, which then
# keeps the "accounts" entry of the API root (the last registration of a prefix names it).
router.register("accounts", AccountRiskViewSet, basename="account-risk")
router.register("accounts", TradingAccountViewSet, basename="account")
router.register("instruments", InstrumentViewSet, basename="instrument")
router.register("bars", BarViewSet, basename="bar")
router.register("strategy-kinds", StrategyKindViewSet, basename="strategy-kind")
router.register("strategies", StrategyViewSet, basename="strategy")
router.register("orders", OrderViewSet, basename="order")
router.register("positions", PositionViewSet, basename="position")
router.register("trades", TradeViewSet, basename="trade")
router.register("signals", SignalViewSet, basename="signal")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("notifications", NotificationViewSet, basename="notification")
router.register(
    "notification-preferences", NotificationPreferenceViewSet, basename="notification-preference"
)
router.register(
    "notification-settings", NotificationSettingsViewSet, basename="notification-settings"
)
router.register("push-subscriptions", PushSubscriptionViewSet, basename="push-subscription")
router.register("risk-rules", RiskRuleViewSet, basename="risk-rule")
router.register("risk-rule-types", RiskRuleTypeViewSet, basename="risk-rule-type")
router.register("risk-events", RiskEventViewSet, basename="risk-event")
router.register("position-size", PositionSizeViewSet, basename="position-size")

app_name = "api"
urlpatterns = [
    path("auth/token/", AuthTokenView.as_view(), name="auth-token"),
    *router.urls,
    re_path(r"^.*$", NoSuchEndpoint.as_view(), name="not-found"),
]
