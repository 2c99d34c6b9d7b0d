"""Parley's one settings module, driven by environment variables (see ``.env.example``), read from the environment
and then from ``.env`` beside manage.py (a variable set in the environment wins).

With nothing set, Parley runs embedded: SQLite in ``var/``, a local-memory cache, database sessions, an in-memory
channel layer and the offline LLM. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import __version__
from config.env import (
    check_database_url,
    check_redis_url,
    env_bool,
    env_decimal,
    env_float,
    env_int,
    env_int_list,
    env_list,
    env_secret,
    env_str,
    fernet_keys,
    load_env_file,
)
from config.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
# .env is the file compose reads too. PARLEY_ENV_FILE names another one, or none when empty (the tests set it so: a
# developer's .env must not change what they see).
ENV_FILE = load_env_file("PARLEY_ENV_FILE", BASE_DIR / ".env")
VAR_DIR = Path(env_str("PARLEY_VAR_DIR", str(BASE_DIR / "var")))
PARLEY_VERSION = __version__

DEBUG = env_bool("DJANGO_DEBUG", False)
# The port `make run` serves on (scripts/run.sh); the local SITE_URL follows it, and with it the Discord login's
# redirect URL that parley_doctor prints.
RUN_PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{RUN_PORT}").rstrip("/")
SECURE_HTTPS = env_bool("DJANGO_SECURE", False)
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 (a host name, not a bind)
_SITE_HOST = urlsplit(SITE_URL).hostname or ""
# A deployment, not a laptop: HTTPS switched on or a public SITE_URL (parley_doctor's production checks agree).
# DEBUG alone cannot tell: it is off by default so that `make run` with nothing set behaves like production.
DEPLOYED = SECURE_HTTPS or not (_SITE_HOST in _LOCAL_HOSTS or _SITE_HOST.endswith(".localhost"))


def _development_secret_key() -> str:
    """Generated once into var/ so sessions survive restarts; never committed (var/ is git-ignored)."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or ""
if not SECRET_KEY:
    # A key generated into var/ changes whenever a container is re-created, which logs everyone out: a deployment
    # must set its own. The embedded default (local SITE_URL, no DJANGO_SECURE) and DEBUG keep the generated one.
    if DEPLOYED and not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_SECURE is on or SITE_URL is "
            "public; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = _development_secret_key()
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 32 characters long")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "template_partials",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.discord",
    "accounts",
    "guilds",
    "audit",
    "botcore",
    "llm",
]
# The bot process (``manage.py runbot`` sets PARLEY_PROCESS=bot) runs without the apps only pages use: it starts
# faster and holds less memory. Its models (accounts, guilds, audit, botcore, llm) and the auth tables stay.
PARLEY_PROCESS = env_str("PARLEY_PROCESS", "web")
if PARLEY_PROCESS not in ("web", "bot"):
    raise ImproperlyConfigured(f"PARLEY_PROCESS must be web or bot, got {PARLEY_PROCESS!r}")
WEB_ONLY_APPS = {
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.discord",
}

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Compresses HTML (a dashboard page shrinks to about a fifth). BREACH needs a secret repeated in every
    # compressed response: Django masks the CSRF token anew for each response, and GZipMiddleware pads each body
    # with random bytes; nothing else secret is echoed into pages.
    "django.middleware.gzip.GZipMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.HtmxSessionMiddleware",
]

ROOT_URLCONF = "config.urls"
if PARLEY_PROCESS == "bot":
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in WEB_ONLY_APPS]
    MIDDLEWARE = []
    ROOT_URLCONF = "config.urls_bot"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
# Each app's WebSocket routes (its routing.py), included by config/asgi.py like config/urls.py includes URLconfs.
WEBSOCKET_ROUTES = ["llm.routing", "audit.routing", "botcore.routing"]

# Inputs, checkboxes and textareas rendered in Python (config/forms.py): the same markup, a fraction of the time.
FORM_RENDERER = "config.forms.FastRenderer"
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
                "config.context_processors.parley",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------------------------


def _sqlite_options() -> dict[str, Any]:
    # The web and bot processes write at the same time: WAL lets readers run beside a writer, IMMEDIATE
    # transactions and a busy timeout make writers queue instead of failing with "database is locked".
    return {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }


DATABASE_URL = env_secret("DATABASE_URL")
# Under ASGI every request's sync code runs in a fresh thread, so persistent per-thread connections pile up until
# PostgreSQL refuses clients; a process-wide pool (psycopg_pool) reuses a few connections instead.
DATABASE_POOL = env_bool("DATABASE_POOL", True)
if DATABASE_URL:
    check_database_url("DATABASE_URL", DATABASE_URL)
    try:
        DATABASES = {
            "default": dj_database_url.parse(
                DATABASE_URL,
                conn_max_age=0 if DATABASE_POOL else env_int("DATABASE_CONN_MAX_AGE", 600, minimum=0),
                conn_health_checks=not DATABASE_POOL,
            )
        }
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # Options given in the URL's query string win.
        DATABASES["default"]["OPTIONS"] = {**_sqlite_options(), **DATABASES["default"].get("OPTIONS", {})}
    if DATABASE_POOL and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1),
            "timeout": env_float("DATABASE_POOL_TIMEOUT", 5.0, minimum=0.1),
        }
    # Lets compose keep the password in a secret file instead of the URL.
    DATABASE_PASSWORD = env_secret("DATABASE_PASSWORD")
    if DATABASE_PASSWORD:
        DATABASES["default"]["PASSWORD"] = DATABASE_PASSWORD
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "parley.sqlite3")),
            "OPTIONS": _sqlite_options(),
            # A file (not :memory:) so bot subprocesses in the e2e tests share it; one per test run, in the temporary
            # directory: a run that is killed leaves it (and its -wal and -shm files) there, not in var/.
            "TEST": {"NAME": Path(tempfile.gettempdir()) / f"parley-test-{os.getpid()}.sqlite3"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache, sessions, channel layer ---------------------------------------------------------------------------
# Redis serves the cache and the sessions. The Channels layer is configured, but the live pages do not need it:
# each web process reads the database for its own sockets (guilds/sockets.py).
REDIS_URL = env_secret("REDIS_URL")
if REDIS_URL:
    check_redis_url("REDIS_URL", REDIS_URL)
    CACHE_KEY_PREFIX = env_str("CACHE_KEY_PREFIX", "parley")
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    CHANNEL_LAYERS = {
        # A receive waits up to 5 s in Redis (BZPOPMIN); with redis-py 8's default socket timeout the read gave up
        # at that same moment and every idle socket and the bots' settings listener failed: give it room.
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # The cache's prefix too: deployments (and test runs) sharing a Redis keep to their own groups.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": f"{CACHE_KEY_PREFIX}:asgi",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "parley"}}
    SESSION_ENGINE = "django.contrib.sessions.backends.db"
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# The refusal page inside the app layout, rendered with the request so that it sets a fresh token for a retry.
CSRF_FAILURE_VIEW = "config.views.csrf_failure"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=60)

# --- Security (production turns these on with DJANGO_DEBUG=false and HTTPS, DJANGO_SECURE above) -----------------
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = SECURE_HTTPS and env_bool("DJANGO_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The login rate limits count per client address: behind the proxy that is the last X-Forwarded-For entry
    # (the one our proxy appended, as Caddy and nginx's $proxy_add_x_forwarded_for do), not the proxy's own
    # address, which everyone shares.
    ALLAUTH_TRUSTED_PROXY_COUNT = 1
# Container healthchecks and load balancers probe over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Error pages (DEBUG) and reports also hide passwords inside URL settings such as DATABASE_URL and REDIS_URL.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.SecretsHidingFilter"

# --- Auth: Discord login through django-allauth -----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
# Failed password logins (the login page and /admin/login/, accounts/forms.py): after 10 a minute from one address
# or 5 in 5 minutes for one username, even the right password is refused until the window passes (allauth's
# defaults, spelled out). Other limits keep allauth's defaults.
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = True
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_REQUIRED = False

DISCORD_CLIENT_ID = env_str("DISCORD_CLIENT_ID")
DISCORD_CLIENT_SECRET = env_secret("DISCORD_CLIENT_SECRET")
# Discord's OAuth endpoints; tests point them at the local fake Discord server.
DISCORD_OAUTH_BASE = env_str("DISCORD_OAUTH_BASE", "https://discord.com").rstrip("/")
OPERATOR_DISCORD_IDS = env_int_list("OPERATOR_DISCORD_IDS")

ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
_DISCORD_APP = {"client_id": DISCORD_CLIENT_ID, "secret": DISCORD_CLIENT_SECRET or ""}
SOCIALACCOUNT_PROVIDERS = {
    "discord": {
        # Our subclass reads Discord's OAuth endpoints from DISCORD_OAUTH_BASE at request time.
        "provider_class": "accounts.discord.provider.DiscordProvider",
        "SCOPE": ["identify", "guilds"],
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [_DISCORD_APP] if DISCORD_CLIENT_ID else [],
    }
}
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10
# Seconds the dashboard keeps a user's Discord guild list before asking Discord again.
DISCORD_GUILD_LIST_CACHE_SECONDS = 60

# --- Email: only operators' password resets use it; without EMAIL_HOST those pages answer 404 ------------------
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_ENABLED = bool(EMAIL_HOST)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"Parley <parley@{_SITE_HOST or 'localhost'}>")
EMAIL_TIMEOUT = 10

# --- Content-Security-Policy (django-csp): only our own static files run or style the pages ----------------------
# No inline <script>, style="" or on*= handlers anywhere: htmx's own indicator styles are turned off in base.html
# (includeIndicatorStyles) and live in parley.css. Avatars and guild icons come from Discord's CDN.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "https://cdn.discordapp.com", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        # The Discord login form posts to us and is redirected to Discord's authorize page: browsers check
        # form-action on that redirect too.
        "form-action": ["'self'", DISCORD_OAUTH_BASE],
    },
}

# --- Bot -------------------------------------------------------------------------------------------------------
DISCORD_BOT_TOKEN = env_secret("DISCORD_BOT_TOKEN")
DISCORD_API_BASE = env_str("DISCORD_API_BASE", "https://discord.com/api/v10").rstrip("/")
DISCORD_GATEWAY_URL = env_str("DISCORD_GATEWAY_URL", "wss://gateway.discord.gg")
DISCORD_DEV_GUILD_ID = env_int("DISCORD_DEV_GUILD_ID", 0, minimum=0)
# Hosts attachments are fetched from besides Discord's CDN (tests name the local fake Discord).
DISCORD_CDN_HOSTS = env_list("DISCORD_CDN_HOSTS")
TARGET_USER_IDS = env_int_list("TARGET_USER_ID")
BOT_HEALTH_HOST = env_str("BOT_HEALTH_HOST", "127.0.0.1")
BOT_HEALTH_PORT = env_int("BOT_HEALTH_PORT", 8080, minimum=0, maximum=65535)
BOT_STATUS_INTERVAL_SECONDS = env_float("BOT_STATUS_INTERVAL_SECONDS", 15.0, minimum=0.1)
LOG_MESSAGE_CONTENT = env_bool("LOG_MESSAGE_CONTENT", False)
BOT_MESSAGE_CACHE = env_int("BOT_MESSAGE_CACHE", 500, minimum=0)
# Seconds between IDENTIFYs of one max_concurrency bucket across every bot process (kept in the database, plus a
# 0.5 s margin); 0 turns the pacing off (tests against the fake Discord).
BOT_IDENTIFY_DELAY_SECONDS = env_float("BOT_IDENTIFY_DELAY_SECONDS", 5.0)
# runbot --shards auto: how often a process renews its shard leases and looks for free shards (it also waits two
# heartbeats for its peers before its first claim).
BOT_SHARD_HEARTBEAT_SECONDS = env_float("BOT_SHARD_HEARTBEAT_SECONDS", 3.0, minimum=0.1)
# runbot --shards auto: a lease not renewed for this long is free for another process (at least twice the heartbeat).
BOT_SHARD_LEASE_SECONDS = env_float("BOT_SHARD_LEASE_SECONDS", 15.0, minimum=1.0)
BOT_GUILD_READY_TIMEOUT = env_float("BOT_GUILD_READY_TIMEOUT", 2.0)
BOT_SYNC_COMMANDS = env_bool("BOT_SYNC_COMMANDS", True)
BOT_SETTINGS_RECHECK_SECONDS = env_float("BOT_SETTINGS_RECHECK_SECONDS", 1.0)
BOT_USAGE_FLUSH_SECONDS = env_float("BOT_USAGE_FLUSH_SECONDS", 0.5)
# Usage rows that could not be written after this many flushes go to a local journal, replayed at the next start.
BOT_USAGE_JOURNAL_AFTER = env_int("BOT_USAGE_JOURNAL_AFTER", 5, minimum=1)
USAGE_JOURNAL_PATH = env_str("USAGE_JOURNAL_PATH", str(VAR_DIR / "usage-journal.jsonl"))
# On SIGTERM, answers in progress get this long to finish (compose's stop_grace_period must be longer).
BOT_SHUTDOWN_GRACE_SECONDS = env_float("BOT_SHUTDOWN_GRACE_SECONDS", 20.0, minimum=0.0)
# Sending to Discord: attempts per message after discord.py's own retries give up (429s, 5xx, timeouts).
BOT_DISCORD_SEND_ATTEMPTS = env_int("BOT_DISCORD_SEND_ATTEMPTS", 4, minimum=1, maximum=10)
BOT_DISCORD_RETRY_SECONDS = env_float("BOT_DISCORD_RETRY_SECONDS", 1.0, minimum=0.0)
# The database: attempts before the bot tells the user it cannot answer now.
BOT_DATABASE_ATTEMPTS = env_int("BOT_DATABASE_ATTEMPTS", 3, minimum=1, maximum=10)
BOT_DATABASE_RETRY_SECONDS = env_float("BOT_DATABASE_RETRY_SECONDS", 0.5, minimum=0.0)
# Direct messages: answered for target users, or for everyone when DM_ANSWER_EVERYONE is on, under these limits.
# DM_ENABLED off: the bot ignores direct messages altogether (and refuses slash commands there).
DM_ENABLED = env_bool("DM_ENABLED", True)
DM_ANSWER_EVERYONE = env_bool("DM_ANSWER_EVERYONE", False)
DM_DAILY_BUDGET_USD = env_decimal("DM_DAILY_BUDGET_USD", None)
DM_USER_MESSAGES_PER_MINUTE = env_int("DM_USER_MESSAGES_PER_MINUTE", 0, minimum=0) or None
DM_USER_MESSAGES_PER_DAY = env_int("DM_USER_MESSAGES_PER_DAY", 0, minimum=0) or None

# --- LLM -------------------------------------------------------------------------------------------------------
LLM_PROVIDERS = {
    provider: {
        "api_key": env_secret(f"{prefix}_API_KEY"),
        "api_base": env_str(f"{prefix}_API_BASE") or None,
    }
    for provider, prefix in (
        ("openai", "OPENAI"),
        ("anthropic", "ANTHROPIC"),
        ("gemini", "GEMINI"),
        ("xai", "XAI"),
    )
}
LLM_DEFAULT_MODEL = env_str("LLM_DEFAULT_MODEL", "offline/parley-offline")
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 60.0, minimum=0.1)
LLM_CONNECT_TIMEOUT_SECONDS = env_float("LLM_CONNECT_TIMEOUT_SECONDS", 10.0, minimum=0.1)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2, minimum=0, maximum=10)
LLM_RETRY_BACKOFF_SECONDS = env_float("LLM_RETRY_BACKOFF_SECONDS", 0.5)
# A web process's model calls run in a child process (llm.runner); it exits after this long without one.
LLM_RUNNER_IDLE_SECONDS = env_float("LLM_RUNNER_IDLE_SECONDS", 600.0, minimum=1.0)
# Servers must bring their own provider keys (dashboard, Keys page): the instance's keys then serve only direct
# messages, and a server without its own key for a model's provider cannot use that model.
LLM_REQUIRE_SERVER_KEYS = env_bool("LLM_REQUIRE_SERVER_KEYS", False)
# Fernet keys that encrypt the servers' own provider keys at rest (config/encryption.py): the first encrypts, all
# decrypt. Without one, servers cannot store keys of their own.
PARLEY_ENCRYPTION_KEYS = fernet_keys("PARLEY_ENCRYPTION_KEY", env_secret("PARLEY_ENCRYPTION_KEY"))

# --- Static files, i18n ---------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ---------------------------------------------------------------------------------------------------
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in _LOG_LEVELS:
    raise ImproperlyConfigured(f"LOG_LEVEL must be a logging level name, got {LOG_LEVEL!r}")
# discord.py logs whole gateway payloads and REST bodies (message text) at DEBUG: it stays at INFO or above
# unless DISCORD_LOG_LEVEL asks for more. At LOG_LEVEL=INFO its routine connection chatter is left out too.
DISCORD_LOG_LEVEL = env_str(
    "DISCORD_LOG_LEVEL", {"DEBUG": "INFO", "INFO": "WARNING"}.get(LOG_LEVEL, LOG_LEVEL)
).upper()
if DISCORD_LOG_LEVEL not in _LOG_LEVELS:
    raise ImproperlyConfigured(f"DISCORD_LOG_LEVEL must be a logging level name, got {DISCORD_LOG_LEVEL!r}")

LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL, discord_level=DISCORD_LOG_LEVEL)
# Python warnings (deprecations and the like) become log records too, so every line has the chosen format.
logging.captureWarnings(True)
# WhiteNoise hands Django a file iterator, which ASGI reads in a worker thread: fine for our few small static
# files (a proxy or CDN serves them in production), not worth a warning on every request.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
