"""Project settings, read from the environment only (CONTRACT.md §2)."""

import os
import secrets
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("XMFLOWS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    # A generated key kept on disk, so sessions survive restarts without any setup.
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", PUBLIC_BASE_URL)
TESTING = "pytest" in sys.modules or env_bool("XMFLOWS_TESTING")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "anymail",
    "contacts",
    "surveys",
    "distributions",
    "xmflows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RejectNulCharacters",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: pages for signed-in users are not cached.
    "core.middleware.PrivatePages",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# FULL: a commit is on disk (the WAL synced) before it returns, so the Ack sent after
# it is true even across a power cut (SPEC F1: "only after the message is durably
# stored"), and a line's "sending" mark survives one, so it is never sent again.
# The Salesforce endpoint keeps that guarantee with less waiting: its transaction
# commits unsynced and the WAL is synced right after, outside the write lock, before
# the Ack (xmflows.intake._durable_transaction).
# NORMAL syncs only at checkpoints: survives a crash of xmflows, not of the machine;
# faster (bench/ingest.py: ~1.45x the 1-notification messages/s on this machine).
SQLITE_SYNCHRONOUS = os.environ.get("XMFLOWS_SQLITE_SYNCHRONOUS", "full").strip().lower()
if SQLITE_SYNCHRONOUS not in {"full", "normal", "extra"}:
    raise ImproperlyConfigured(
        f"XMFLOWS_SQLITE_SYNCHRONOUS={SQLITE_SYNCHRONOUS!r}: use full (the default: "
        "nothing acknowledged is lost on a power cut), extra, or normal (faster; the "
        "last commits before a power cut or an operating-system crash can be lost)"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock when a
    # transaction starts, so concurrent writers wait (busy timeout) instead of failing
    # with "database is locked" half-way through (PITFALLS.md 3).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        # wal_autocheckpoint: SQLite copies the WAL back into the database file (and
        # syncs both) after a commit once the WAL passes this many pages; the default,
        # 1,000 (4 MiB), made a busy endpoint copy the same hot index pages again every
        # few hundred messages. 16,384 pages (64 MiB) costs each write a tenth less
        # CPU (bench/ingest.py). journal_size_limit truncates the WAL file after a
        # checkpoint when it grew past the limit: at 128 MiB it bounds the disk a burst
        # can leave behind, yet is above the ~66 MiB a normal cycle reaches (16,384
        # frames of 4 KiB plus their headers). At 64 MiB every cycle truncated and
        # regrew the file, and p99 at half saturation went from ~12 ms to ~28 ms.
        "init_command": (
            f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SQLITE_SYNCHRONOUS.upper()}; "
            "PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=134217728;"
        ),
    }
    # Django's backend, waiting for the write lock in short steps instead of SQLite's
    # millisecond sleeps (core/sqlite_backend/base.py says why).
    DATABASES["default"]["ENGINE"] = "core.sqlite_backend"
# Test databases are files (a worker process started by a test must see them); the
# suffix lets several test runs share one machine without sharing a database.
_TEST_SUFFIX = os.environ.get("XMFLOWS_TEST_DB_SUFFIX", "")
if DATABASES["default"]["ENGINE"] == "core.sqlite_backend":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db{_TEST_SUFFIX}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_xmflows{_TEST_SUFFIX}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background queue (django-q2) ---------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "xmflows",
    "workers": int(os.environ.get("XMFLOWS_WORKERS", "2")),
    # A job may take up to `timeout` seconds; the broker redelivers after `retry`
    # seconds, which must exceed timeout plus queueing time or a slow job runs twice
    # while still running (PITFALLS.md 2). Jobs are idempotent regardless.
    "timeout": 120,
    "retry": 300,
    # Back-off for provider failures is ours (next_attempt_at + sweeper), so the broker
    # itself tries a job a bounded number of times.
    "max_attempts": 3,
    "save_limit": 1000,
    "queue_limit": 100,
    "bulk": 10,
    "catch_up": False,
    "ack_failures": True,
    "poll": 0.2,
    "label": "Background queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth, API ----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
if TESTING:
    # Test users need no slow key stretching; a suite creates hundreds of them.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/accounts/login/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/workflows/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.api_schema.AutoSchema",
    # DRF's JSON parser, but JSON nested too deeply or holding NaN/Infinity is a 400.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "xmflows API",
    "DESCRIPTION": "Salesforce Outbound Messages to contacts and surveys.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs describe every endpoint and field: signed-in users only,
    # like the API itself (drf-spectacular serves them to anyone by default).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Two choice sets share the field name "channel": name their enums, or the schema
    # gets a hash-suffixed name and `check --deploy` a warning (drf_spectacular.W001).
    "ENUM_NAME_OVERRIDES": {
        "DistributionChannelEnum": "distributions.models.DistributionChannel",
        "OutboxChannelEnum": "distributions.models.Channel",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Email and SMS --------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "distributions.backends.OutboxEmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "surveys@example.com")
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_")
}
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")
# Without TWILIO_AUTH_TOKEN nothing can sign Twilio's webhooks: they then take unsigned
# requests only in development (DEBUG, which run.sh sets), so that an inbound text can
# be simulated with curl; elsewhere they refuse them, or anyone could mark lines
# failed or sent, opt numbers out, and answer two-way SMS surveys for others.
TWILIO_ACCEPT_UNSIGNED = env_bool("XMFLOWS_TWILIO_ACCEPT_UNSIGNED", DEBUG)
SMS_BACKEND = os.environ.get(
    "SMS_BACKEND",
    "distributions.channels.sms_twilio.TwilioBackend"
    if TWILIO_ACCOUNT_SID
    else "distributions.channels.sms_outbox.OutboxBackend",
)
# Seconds one Twilio API request may take; the client's default is to wait forever.
TWILIO_TIMEOUT_SECONDS = float(os.environ.get("TWILIO_TIMEOUT_SECONDS", "15"))

# --- xmflows --------------------------------------------------------------------
XMFLOWS_MAX_MESSAGE_BYTES = int(os.environ.get("XMFLOWS_MAX_MESSAGE_BYTES", "2000000"))
XMFLOWS_HISTORY_DAYS = int(os.environ.get("XMFLOWS_HISTORY_DAYS", "365"))
# Runs left queued/running longer than this are re-enqueued by the sweeper (PITFALLS.md 1).
XMFLOWS_STUCK_AFTER_SECONDS = int(os.environ.get("XMFLOWS_STUCK_AFTER_SECONDS", "600"))
# Temporary task failures are retried with back-off for this long (SPEC F2: 24 hours).
XMFLOWS_RETRY_WINDOW_SECONDS = int(os.environ.get("XMFLOWS_RETRY_WINDOW_SECONDS", str(24 * 3600)))
# How many runs one background job executes; a 100-notification message becomes a
# handful of jobs instead of a hundred queue rows.
XMFLOWS_RUNS_PER_JOB = int(os.environ.get("XMFLOWS_RUNS_PER_JOB", "20"))
# SMS: a text longer than this many segments is sent, with a warning in the task output.
XMFLOWS_SMS_MAX_SEGMENTS = int(os.environ.get("XMFLOWS_SMS_MAX_SEGMENTS", "3"))
# A two-way SMS survey with no reply for this long is closed (timed out).
XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS = float(
    os.environ.get("XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS", "24")
)
# The answer to an inbound HELP (or INFO).
XMFLOWS_SMS_HELP_TEXT = os.environ.get(
    "XMFLOWS_SMS_HELP_TEXT",
    "Customer surveys. Reply STOP to stop receiving texts, START to receive them again.",
)

# --- Static files: served by the app itself (WhiteNoise), also with DEBUG off ----
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
# Files served at the site's root (browsers ask every site for /favicon.ico).
WHITENOISE_ROOT = BASE_DIR / "static_root"
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Production hardening: on unless DEBUG ---------------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PUBLIC_BASE_URL.startswith("https://"))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Load balancers probe the web processes over plain HTTP: health checks never redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
# Only when every subdomain is HTTPS too (deploy/README.md, production checklist).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
)
# How many reverse proxies in front append to X-Forwarded-For: deliveries then record
# Salesforce's address instead of the proxy's (0: the socket's address).
XMFLOWS_PROXY_COUNT = int(os.environ.get("XMFLOWS_PROXY_COUNT", "0"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-q2 logs to "django-q" (with a hyphen): every job enqueued and processed at
    # INFO, which at scale is noise and CPU; WARNING keeps its failures.
    "loggers": {"django-q": {"level": os.environ.get("Q_LOG_LEVEL", "WARNING")}},
}

# A half-configured provider would lose messages at send time: refuse to start instead.
if TWILIO_ACCOUNT_SID and not (
    TWILIO_AUTH_TOKEN and (TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID)
):
    raise ImproperlyConfigured(
        "TWILIO_ACCOUNT_SID is set, so TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER "
        "(or TWILIO_MESSAGING_SERVICE_SID) must be set too"
    )
