"""Settings for the trading platform.

Every value that differs between machines comes from the environment (django-environ); nothing
else in the project reads ``os.environ``. With no environment at all the platform runs on the
embedded default: SQLite, local-memory cache, the in-memory channel layer and Celery in eager
mode (tasks run in-process). ``docs/configuration.md`` and the README list every variable.
"""

import ipaddress
import sys
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from apps.apikeys.crypto import derive_development_master_key, parse_master_keys
from apps.notifications.domain.schedule import parse_rate
from apps.notifications.vapid import derive_development_key, public_key_b64

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env file is honoured for development convenience; real deployments set variables.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

TESTING = "pytest" in sys.modules or env.bool("TESTING", default=False)
DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (50+ random characters), "
            "or set DEBUG=true for local development."
        )
    SECRET_KEY = "django-insecure-development-key-never-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=["localhost", "127.0.0.1", "[::1]", "testserver"] if (DEBUG or TESTING) else [],
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "channels",
    "apps.core",
    "apps.accounts",
    "apps.marketdata",
    "apps.strategies",
    "apps.analytics",
    "apps.execution",
    "apps.risk",
    "apps.apikeys",
    "apps.notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "tradeplatform.urls"
ASGI_APPLICATION = "tradeplatform.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the write lock at
    # BEGIN so concurrent writers queue instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Redis: cache, channel layer, Celery ---------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", default="tp")
if TESTING:
    # Parallel test workers share one Redis: each keeps to its own keys.
    CACHE_KEY_PREFIX = f"test-{env.str('PYTEST_XDIST_WORKER', default='main')}"
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{CACHE_KEY_PREFIX}:asgi"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
# No broker configured means the embedded default: run tasks in-process.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
# A task is acknowledged after it ran, so a worker killed mid-task does not lose it; tasks are
# written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the database connection around every task unless told to
# reuse it; a new PostgreSQL connection costs a backend process each time (about 4 ms of the
# server's CPU and 1 ms of the worker's, more than a small task's own work). Workers keep it
# the way web requests do instead: CONN_MAX_AGE and the health check decide, and a connection
# left unusable by a task is dropped (tradeplatform.celery closes old connections around
# tasks). The fix-up still recycles it after this many tasks.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="tradeplatform")
CELERY_TASK_ROUTES = ("tradeplatform.celery.route_task",)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "expire-orders": {
        "task": "apps.execution.tasks.expire_orders",
        "schedule": env.int("ORDER_EXPIRY_INTERVAL_SECONDS", default=30),
    },
    "risk-monitor": {
        "task": "apps.risk.tasks.monitor_all_accounts",
        "schedule": env.int("RISK_MONITOR_INTERVAL_SECONDS", default=60),
    },
    "risk-escalation": {
        "task": "apps.risk.tasks.escalate_due_events",
        "schedule": env.int("RISK_ESCALATION_INTERVAL_SECONDS", default=60),
    },
    "equity-snapshots": {
        "task": "apps.accounts.tasks.snapshot_all_accounts",
        "schedule": env.int("EQUITY_SNAPSHOT_INTERVAL_SECONDS", default=300),
    },
    "notifications-dispatch-due": {
        "task": "apps.notifications.tasks.dispatch_due_deliveries",
        "schedule": env.int("NOTIFICATIONS_SWEEP_INTERVAL_SECONDS", default=30),
    },
    "notifications-daily-summaries": {
        "task": "apps.notifications.tasks.send_due_daily_summaries",
        "schedule": env.int("NOTIFICATIONS_DAILY_SUMMARY_INTERVAL_SECONDS", default=300),
    },
    "reconcile-accounts": {
        "task": "apps.execution.tasks.reconcile_accounts",
        "schedule": env.int("RECONCILE_INTERVAL_SECONDS", default=180),
    },
}

# --- Auth ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

# --- I18N / time --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "static/"
# Production serves collected files; development and tests serve straight from the finders.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or (
    None if (DEBUG or TESTING) else str(BASE_DIR / "staticfiles")
)
STATICFILES_DIRS = [
    BASE_DIR / "static",
]
# plotly.js ships inside the plotly Python package: served as static/plotly/plotly.min.js.
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "apps.core.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if (DEBUG or TESTING)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# In development whitenoise serves straight from the app folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG or TESTING
WHITENOISE_AUTOREFRESH = DEBUG

# --- E-mail -------------------------------------------------------------------------------
# EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587 ; default prints to the console.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Trade Platform <noreply@localhost>")
SERVER_EMAIL = env("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# --- Notifications (apps.notifications) ---------------------------------------------------
# Absolute links in e-mails, push messages and webhooks.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# E-mails per trader and period ("10/hour", "5/10min"); more fold into one digest e-mail.
NOTIFICATIONS_EMAIL_RATE = env.str("NOTIFICATIONS_EMAIL_RATE", default="10/hour")
try:
    parse_rate(NOTIFICATIONS_EMAIL_RATE)
except ValueError as exc:
    raise ImproperlyConfigured(f"NOTIFICATIONS_EMAIL_RATE: {exc}.") from None
# Retries of e-mail, push and webhook deliveries: exponential backoff with jitter.
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=8)
NOTIFICATIONS_RETRY_BASE_SECONDS = env.float("NOTIFICATIONS_RETRY_BASE_SECONDS", default=30.0)
NOTIFICATIONS_RETRY_MAX_SECONDS = env.float("NOTIFICATIONS_RETRY_MAX_SECONDS", default=3600.0)
# A delivery a worker claimed this long ago without finishing (it died) is sent again.
NOTIFICATIONS_SENDING_TIMEOUT_SECONDS = env.int(
    "NOTIFICATIONS_SENDING_TIMEOUT_SECONDS", default=300
)
NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS = env.float(
    "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS", default=10.0
)
# Webhooks to loopback and private addresses are refused in production (server-side requests).
NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE = env.bool(
    "NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE", default=DEBUG or TESTING
)
NOTIFICATIONS_PUSH_TIMEOUT_SECONDS = env.float("NOTIFICATIONS_PUSH_TIMEOUT_SECONDS", default=10.0)
NOTIFICATIONS_PUSH_TTL_SECONDS = env.int("NOTIFICATIONS_PUSH_TTL_SECONDS", default=86400)
# Web push (VAPID, RFC 8292): a P-256 private key, base64url or PEM. Without one, web push is
# off in production; development and tests derive a key from SECRET_KEY.
VAPID_PRIVATE_KEY = env.str("VAPID_PRIVATE_KEY", default="")
if not VAPID_PRIVATE_KEY and (DEBUG or TESTING):
    VAPID_PRIVATE_KEY = derive_development_key(SECRET_KEY)
try:
    VAPID_PUBLIC_KEY = public_key_b64(VAPID_PRIVATE_KEY) if VAPID_PRIVATE_KEY else ""
except ValueError as exc:
    raise ImproperlyConfigured(f"VAPID_PRIVATE_KEY is invalid: {exc}.") from None
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:noreply@localhost")

# --- Security (production values are the defaults when DEBUG is off) ----------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not (DEBUG or TESTING))
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not (DEBUG or TESTING))
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not (DEBUG or TESTING))
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if (DEBUG or TESTING) else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The health endpoint is probed over plain HTTP by load balancers.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "user": env("API_THROTTLE_USER", default="10000/hour"),
        # Token requests without credentials yet: per client address.
        "anon": env("API_THROTTLE_AUTH", default="20/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trade Platform API",
    "DESCRIPTION": "Strategies, orders, positions and market data. Every object belongs to the "
    "authenticated user; another user's object answers 404.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several models have a "status" field with different choices; name each choice set once.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "apps.execution.models.OrderStatus",
        "TradingAccountStatusEnum": "apps.accounts.models.TradingAccount.Status",
        "TradeStatusEnum": "apps.execution.models.Trade.Status",
        "ApiKeyStatusEnum": "apps.apikeys.models.ApiKey.Status",
        "ApiKeyBrokerEnum": "apps.apikeys.models.ApiKey.Broker",
        "NotificationChannelEnum": "apps.notifications.models.Channel",
    },
}

# --- Trading ------------------------------------------------------------------------------
PAPER_DEFAULT_CASH = Decimal(env.str("PAPER_DEFAULT_CASH", default="100000"))
PAPER_SLIPPAGE_BPS = Decimal(env.str("PAPER_SLIPPAGE_BPS", default="5"))
PAPER_COMMISSION_RATE = Decimal(env.str("PAPER_COMMISSION_RATE", default="0.0005"))
PAPER_COMMISSION_MINIMUM = Decimal(env.str("PAPER_COMMISSION_MINIMUM", default="0"))
PAPER_MAX_VOLUME_PARTICIPATION = Decimal(env.str("PAPER_MAX_VOLUME_PARTICIPATION", default="0.1"))
DEFAULT_CURRENCY = "USD"
# Order submissions per account and minute before the rate-limit check refuses more.
RISK_MAX_ORDERS_PER_MINUTE = env.int("RISK_MAX_ORDERS_PER_MINUTE", default=120)

# --- Secrets at rest and broker keys (apps.apikeys, docs/security.md) -----------------------
# SECRETS_MASTER_KEYS: "VERSION:BASE64,..." (each at least 32 random bytes); the current version
# (default: the highest) encrypts, every listed version decrypts. Never in the database or the
# repository. Without it a development key derived from SECRET_KEY stands in, and only then.
try:
    SECRETS_MASTER_KEYS = parse_master_keys(env.str("SECRETS_MASTER_KEYS", default=""))
except ValueError as exc:
    raise ImproperlyConfigured(f"SECRETS_MASTER_KEYS is invalid: {exc}.") from None
if not SECRETS_MASTER_KEYS:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRETS_MASTER_KEYS is not set. Broker keys are encrypted with it; set it in the "
            "environment (e.g. SECRETS_MASTER_KEYS=1:$(head -c 32 /dev/urandom | base64)), or "
            "set DEBUG=true for local development."
        )
    SECRETS_MASTER_KEYS = {1: derive_development_master_key(SECRET_KEY)}
SECRETS_MASTER_KEY_VERSION = env.int("SECRETS_MASTER_KEY_VERSION", default=max(SECRETS_MASTER_KEYS))
if SECRETS_MASTER_KEY_VERSION not in SECRETS_MASTER_KEYS:
    raise ImproperlyConfigured(
        f"SECRETS_MASTER_KEY_VERSION={SECRETS_MASTER_KEY_VERSION} is not in SECRETS_MASTER_KEYS."
    )

# Proxies (IPs or CIDRs) whose X-Forwarded-For is believed when recording a client's address.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
try:
    for _proxy in TRUSTED_PROXIES:
        ipaddress.ip_network(_proxy, strict=False)
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from None

ALPACA_PAPER_URL = env.str("ALPACA_PAPER_URL", default="https://paper-api.alpaca.markets")
ALPACA_LIVE_URL = env.str("ALPACA_LIVE_URL", default="https://api.alpaca.markets")
ALPACA_TIMEOUT_SECONDS = env.float("ALPACA_TIMEOUT_SECONDS", default=10.0)
# The trade-updates websocket of each environment (manage.py run_trade_stream).
ALPACA_PAPER_STREAM_URL = env.str(
    "ALPACA_PAPER_STREAM_URL", default="wss://paper-api.alpaca.markets/stream"
)
ALPACA_LIVE_STREAM_URL = env.str(
    "ALPACA_LIVE_STREAM_URL", default="wss://api.alpaca.markets/stream"
)
# A submission whose answer was lost: retries (ask by client order id, send again only if the
# broker never saw it) with exponential backoff, then reconciliation takes over.
ALPACA_SUBMIT_RETRY_MAX_ATTEMPTS = env.int("ALPACA_SUBMIT_RETRY_MAX_ATTEMPTS", default=5)
ALPACA_SUBMIT_RETRY_BASE_SECONDS = env.float("ALPACA_SUBMIT_RETRY_BASE_SECONDS", default=2.0)
ALPACA_SUBMIT_RETRY_MAX_DELAY_SECONDS = env.float(
    "ALPACA_SUBMIT_RETRY_MAX_DELAY_SECONDS", default=60.0
)
# Reconciliation: orders looked at (open ones, plus those changed within the look-back), and how
# long an order may stay "submitted" without the broker knowing it before it is marked rejected.
RECONCILE_LOOKBACK_HOURS = env.int("RECONCILE_LOOKBACK_HOURS", default=24)
RECONCILE_SUBMITTED_GRACE_SECONDS = env.int("RECONCILE_SUBMITTED_GRACE_SECONDS", default=300)
# Per user: broker verifications, and failed attempts before API key endpoints answer 429.
APIKEYS_VERIFY_RATE = env.str("APIKEYS_VERIFY_RATE", default="10/minute")
APIKEYS_FAILED_ATTEMPTS_RATE = env.str("APIKEYS_FAILED_ATTEMPTS_RATE", default="20/15min")

# --- Logging ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Eager (in-process) task runs would log every task; workers have their own logging.
        "celery.app.trace": {"level": "WARNING"},
        "kombu": {"level": "ERROR"},
    },
}
