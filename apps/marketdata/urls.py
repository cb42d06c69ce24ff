from django.urls import path

from apps.marketdata import views

app_name = "marketdata"
urlpatterns = [
    path("", views.instruments, name="instruments"),
    # Symbols such as BTC/USD contain a slash, hence <path:>.
    path("<path:symbol>/", views.instrument_detail, name="instrument"),
]
