"""AgentWallet settings.

One env-driven file. With no environment set it runs in the embedded mode of
the README: SQLite (IMMEDIATE transactions), Celery tasks run eagerly, Slack
messages stay in the outbox. Production is this same file with the environment set.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import django_stubs_ext
import environ
import stripe
from celery.schedules import crontab

# Lets ModelAdmin[Model] and friends be subscripted at run time, as the type stubs allow.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is convenient for development; the real environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# The embedded default must run out of the box, so a development-only secret is
# used when none is given - but only while DEBUG is on.
_DEV_SECRET = "dev-insecure-secret-key-change-me-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "agentwallet.apps.AgentWalletAdminConfig",  # django.contrib.admin, our index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "djmoney",
    "djmoney.contrib.exchange",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "agentwallet.apps.AgentWalletConfig",
    "policies",
    "wallets",
    "cards",
    "ledger",
    "approvals",
]

MIDDLEWARE = [
    # First: JSON answers for API, network and Slack requests Django would refuse in HTML.
    "agentwallet.api.middleware.MachineRequestMiddleware",
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

ROOT_URLCONF = "agentwallet.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "agentwallet.wsgi.application"

# --- Database -----------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every transaction take the write lock up front, so writers
    # serialize instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
    }
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, connecting within the card network's deadline (agentwallet.db).
        DATABASES["default"]["ENGINE"] = "agentwallet.db.postgresql"
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    # No per-request SELECT 1: a dead connection fails the request (a decision then
    # fails closed) and is replaced on the next one.
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", False)
    # Server-side prepared statements: the decision's statements repeat, and planning
    # them costs as much as running them. Set DATABASE_PREPARE_THRESHOLD= (empty) behind
    # PgBouncer in transaction mode, which cannot keep prepared statements.
    _prepare = env.str("DATABASE_PREPARE_THRESHOLD", default="5")
    if _prepare:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=int(_prepare)
        )
    # libpq's least (2 s); under a deadline connecting is bounded by what is left of it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# The portal signs people in with Django's own authentication (agentwallet/portal).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Security (production defaults; DEBUG relaxes the ones that need HTTPS) -----
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Agents' API bodies are small; anything bigger is refused before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)

# --- Money --------------------------------------------------------------------
CURRENCIES = env.list(
    "AGENTWALLET_CURRENCIES",
    default=[
        "USD",
        "EUR",
        "GBP",
        "CAD",
        "AUD",
        "CHF",
        "JPY",
        "PLN",
        "CZK",
        "SEK",
        "DKK",
        "NOK",
        "INR",
        "SGD",
        "BRL",
        "MXN",
    ],
)
DEFAULT_CURRENCY = "USD"
# Amounts carry up to 12 integer digits and 2 decimal places (cents);
# FX conversions keep their own 6-place rate and round explicitly.
MONEY_MAX_DIGITS = 14
MONEY_DECIMAL_PLACES = 2
MONEY_ROUNDING = ROUND_HALF_EVEN
EXCHANGE_BACKEND = "ledger.fx.EcbBackend"
BASE_CURRENCY = "EUR"
AGENTWALLET_FX_URL = env.str("AGENTWALLET_FX_URL", default="")
# Rates older than this many days are flagged (admin, /healthz): the ECB publishes on
# business days only, so Friday's rates are still the newest on Monday.
AGENTWALLET_FX_MAX_AGE_DAYS = env.int("AGENTWALLET_FX_MAX_AGE_DAYS", default=4)
AGENTWALLET_HOLD_EXPIRY_DAYS = env.int("AGENTWALLET_HOLD_EXPIRY_DAYS", default=7)
# Runaways (ledger.services.runaway): the last hour's spend of an agent or a trace is a
# runaway when it is at least FLOOR (in its cap currency, so a quiet agent's first dollar
# is no alarm) and at least FACTOR times its usual busy hour of the last 7 days.
# Where people reach the portal: links in Slack messages (sprint reports).
AGENTWALLET_PORTAL_URL = env.str("AGENTWALLET_PORTAL_URL", default="http://127.0.0.1:8000")
AGENTWALLET_RUNAWAY_FLOOR = Decimal(env.str("AGENTWALLET_RUNAWAY_FLOOR", default="50.00"))
AGENTWALLET_RUNAWAY_FACTOR = Decimal(env.str("AGENTWALLET_RUNAWAY_FACTOR", default="10"))

# --- AgentWallet ----------------------------------------------------------------
# Card numbers are encrypted at rest under a key derived from this secret.
AGENTWALLET_CARD_KEY = env.str("AGENTWALLET_CARD_KEY", default=SECRET_KEY)
# The embedded default signs its own sandbox network with a dev secret; production sets one.
AGENTWALLET_NETWORK_SECRET = env.str(
    "AGENTWALLET_NETWORK_SECRET", default="dev-network-secret" if DEBUG else ""
)
AGENTWALLET_CARD_ISSUER = env.str("AGENTWALLET_CARD_ISSUER", default="sandbox")
# Stripe Issuing (AGENTWALLET_CARD_ISSUER=stripe): the secret key, the signing secret of
# the webhook endpoint /webhooks/stripe, and the API's address (tests: a local server).
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# The API version requests are made with and real-time answers are given in (the
# version the pinned `stripe` package was built for).
STRIPE_API_VERSION = env.str("STRIPE_API_VERSION", default=stripe.api_version)
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
# Each principal is a company cardholder at Stripe, billed at this address (JSON:
# {"line1", "city", "state", "postal_code", "country"}).
STRIPE_CARDHOLDER_ADDRESS = env.json("STRIPE_CARDHOLDER_ADDRESS", default={})
# Test BIN of the sandbox issuer (a Visa test range; never a live BIN).
AGENTWALLET_SANDBOX_BIN = env.str("AGENTWALLET_SANDBOX_BIN", default="400000")
AGENTWALLET_CARD_VALIDITY_MONTHS = env.int("AGENTWALLET_CARD_VALIDITY_MONTHS", default=36)
AGENTWALLET_TRACE_TTL_SECONDS = env.int("AGENTWALLET_TRACE_TTL_SECONDS", default=24 * 3600)
# Every card-network endpoint answers within this, end to end: a processor waits 2 s
# (Stripe) or 3 s (Marqeta) and then applies its own default. A database that is down,
# hangs or holds a lock longer gives a decline `system_unavailable` instead.
AGENTWALLET_DECISION_DEADLINE_MS = env.int("AGENTWALLET_DECISION_DEADLINE_MS", default=1500)
# x402: the networks (CAIP-2) an agent's USDC wallet pays on. Base in production; the
# embedded default (DEBUG) pays on Base Sepolia, whose USDC is test money.
AGENTWALLET_X402_NETWORKS = env.list(
    "AGENTWALLET_X402_NETWORKS", default=["eip155:84532"] if DEBUG else ["eip155:8453"]
)
# A signed payment can be settled by whoever holds it until its valid-before: never
# longer than this, whatever the server asks.
AGENTWALLET_X402_MAX_VALIDITY_SECONDS = env.int(
    "AGENTWALLET_X402_MAX_VALIDITY_SECONDS", default=300
)
# The in-app MCP server's pay_x402 fetches URLs from inside the deployment: never on a
# private network (loopback, RFC 1918, link-local) unless this is set (tests, demos).
AGENTWALLET_MCP_FETCH_PRIVATE = env.bool("AGENTWALLET_MCP_FETCH_PRIVATE", default=False)
# How long after its valid-before an unsettled payment is released (reports come late).
AGENTWALLET_X402_RELEASE_MARGIN_SECONDS = env.int(
    "AGENTWALLET_X402_RELEASE_MARGIN_SECONDS", default=120
)

# --- Email (principals' verification links) --------------------------------------
# The embedded default prints mail on the console; production sets an SMTP backend.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # seconds; a slow server is retried
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="AgentWallet <agentwallet@localhost>")

# --- Slack ----------------------------------------------------------------------
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", default="")
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", default="")
SLACK_APPROVALS_CHANNEL = env.str("SLACK_APPROVALS_CHANNEL", default="")
SLACK_API_URL = env.str("SLACK_API_URL", default="https://slack.com/api/")

# --- Celery ---------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# The in-memory broker names a host so that kombu need not warn it assumed one.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
# Without Redis (the embedded default) tasks run in-process, synchronously.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# Publishing must never hang a request: with the broker down it fails fast, and the
# outbox sweep delivers later.
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Slack work has its own queue (run a worker with -Q slack) so it delays nothing else.
CELERY_TASK_ROUTES = {
    "approvals.tasks.*": {"queue": "slack"},
    "approvals.outbox.*": {"queue": "slack"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "wallets.authentication.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["wallets.permissions.IsAuthenticatedActor"],
    "DEFAULT_PARSER_CLASSES": ["agentwallet.api.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agentwallet.api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AgentWallet API",
    "DESCRIPTION": "Spend control for AI coding agents: scoped virtual cards, caps, "
    "real-time authorization and a trace-attributed ledger.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {},
    # Every operation's error answers, in the one error shape (agentwallet/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agentwallet.api.schema.error_responses",
    ],
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # The level is the handler's too: records that propagate here skip the root's level.
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "level": LOG_LEVEL}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print each record a second time: its
        # records reach the root handler anyway.
        "django": {"handlers": [], "level": "INFO"},
        # The stripe package logs every request at INFO; its failures reach our own log.
        "stripe": {"level": "WARNING"},
        # Eager tasks run inside the request or command that queued them, so a line per
        # task that succeeded is noise; failures are still logged.
        **({"celery.app.trace": {"level": "WARNING"}} if CELERY_TASK_ALWAYS_EAGER else {}),
    },
}

# Periodic work (synced into django-celery-beat's tables by `celery beat`).
CELERY_BEAT_SCHEDULE = {
    "expire-uncaptured-holds": {"task": "ledger.tasks.expire_holds_task", "schedule": 15 * 60},
    "release-lapsed-x402-payments": {
        "task": "wallets.tasks.release_lapsed_x402_payments_task",
        "schedule": 60,
    },
    "deliver-due-outbox": {"task": "approvals.outbox.sweep_outbox_task", "schedule": 30},
    "expire-stale-approvals": {"task": "approvals.tasks.expire_approvals_task", "schedule": 5 * 60},
    "advance-spend-rollups": {"task": "ledger.tasks.advance_spend_rollups_task", "schedule": 60},
    "sweep-runaways": {"task": "ledger.tasks.sweep_runaways_task", "schedule": 60},
    "sprint-reports-due": {"task": "ledger.tasks.sprint_reports_due_task", "schedule": 15 * 60},
    "prune-spend-counters": {"task": "ledger.tasks.prune_spend_counters_task", "schedule": 60 * 60},
    # After a policy's time-zone change (queued by the change itself; this sweeps up).
    "recut-month-counters": {"task": "ledger.tasks.recut_month_counters_task", "schedule": 60},
    # Yesterday (UTC) at the card issuer against the ledger (nothing to do on the sandbox).
    "reconcile-issuer": {
        "task": "ledger.tasks.reconcile_issuer_task",
        "schedule": crontab(hour=3, minute=15),
    },
    # The ECB publishes around 16:00 CET on business days.
    "load-fx-rates": {
        "task": "ledger.tasks.load_fx_rates_task",
        "schedule": crontab(hour=15, minute=30),
    },
}
