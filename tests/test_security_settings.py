"""Production security: ``check --deploy`` is clean with the production variables, the pages carry the security
headers, and no template holds inline code that the Content-Security-Policy would block."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.support import ROOT, run_python

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "prod-secret-key-for-tests-0123456789-abcdefghijklmnopqrstuvwxyz",
    "DJANGO_ALLOWED_HOSTS": "parley.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://parley.example.com",
    "SITE_URL": "https://parley.example.com",
    "DJANGO_SECURE": "true",
    "DJANGO_BEHIND_PROXY": "true",
}


def environment(tmp_path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CSRF_", "SITE_URL"))
    }
    env.update(PARLEY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **overrides)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_with_production_variables(tmp_path):
    result = check_deploy(environment(tmp_path, **PRODUCTION))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_complains_without_them(tmp_path):
    result = check_deploy(environment(tmp_path, DJANGO_DEBUG="true"))
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016", "security.W018"):
        assert warning in result.stderr, warning


HEADERS_SCRIPT = """
import json, django
django.setup()
from django.test import Client
client = Client()
page = client.get("/", secure=True, headers={"host": "parley.example.com"})
plain = client.get("/", headers={"host": "parley.example.com"})
proxied = client.get("/", headers={"host": "parley.example.com", "x-forwarded-proto": "https"})
health = client.get("/api/v1/health", headers={"host": "parley.example.com"})
cookie = page.cookies["csrftoken"]
from django.conf import settings
print(json.dumps({
    "status": page.status_code,
    "headers": dict(page.headers),
    "plain": [plain.status_code, plain.headers.get("Location")],
    "proxied": proxied.status_code,
    "health": health.status_code,
    "csrf_cookie": {"secure": cookie["secure"], "samesite": cookie["samesite"]},
    "session_cookie": [settings.SESSION_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY],
}))
"""


@pytest.fixture(scope="module")
def production_page(tmp_path_factory):
    result = run_python(HEADERS_SCRIPT, environment(tmp_path_factory.mktemp("prod"), **PRODUCTION))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_https_page_has_hsts_referrer_policy_and_the_usual_headers(production_page):
    headers = production_page["headers"]
    assert production_page["status"] == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_content_security_policy_allows_only_our_own_files(production_page):
    policy = csp_directives(production_page["headers"]["Content-Security-Policy"])
    for directive in ("default-src", "script-src", "style-src", "connect-src", "font-src"):
        assert policy[directive] == ["'self'"], directive
    assert policy["img-src"] == ["'self'", "https://cdn.discordapp.com", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'", "https://discord.com"]
    assert "unsafe" not in production_page["headers"]["Content-Security-Policy"]


def test_cookies_are_secure(production_page):
    assert production_page["csrf_cookie"] == {"secure": True, "samesite": "Lax"}
    assert production_page["session_cookie"] == [True, True]


def test_plain_http_redirects_but_the_proxy_header_and_health_probe_do_not(production_page):
    assert production_page["plain"] == [301, "https://parley.example.com/"]
    assert production_page["proxied"] == 200
    assert production_page["health"] == 200


def test_page_response_carries_the_csp_in_the_default_configuration(client):
    response = client.get("/")
    policy = csp_directives(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert "https://cdn.discordapp.com" in policy["img-src"]
    assert '"includeIndicatorStyles":false' in response.content.decode()


# Inline code the policy blocks: <script> without src, <style> blocks, style="", on*= handlers, javascript: URLs
# and htmx's eval-based hx-on / hx-vars (allowEval is off in base.html).
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>|<style\b|\sstyle=|\son[a-z]+=|javascript:"
    r"|\shx-on[:-]|\shx-vars=|js:",
    re.IGNORECASE,
)


def test_templates_hold_no_inline_code_the_csp_would_block():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "templates").rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if INLINE.search(re.sub(r"\{#.*?#\}", "", line))  # template comments may name what they avoid
    ]
    assert found == []


DEBUG_PAGE_SCRIPT = """
import django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "x" * 32  # loading the session needs the database, which is not there
response = client.get("/dashboard/", headers={"host": "127.0.0.1"})
print(response.status_code)
print(response.content.decode())
"""


def test_debug_error_page_shows_no_database_password(tmp_path):
    """DEBUG's error page lists the settings: DATABASE_URL holds the password inside a string."""
    password = "db-password-in-the-url-4242"
    env = environment(
        tmp_path,
        DJANGO_DEBUG="true",
        DATABASE_URL=f"postgres://parley:{password}@127.0.0.1:1/parley",
        DATABASE_POOL="false",
    )
    result = run_python(DEBUG_PAGE_SCRIPT, env)
    assert result.returncode == 0, result.stderr
    status, page = result.stdout.split("\n", 1)
    assert status == "500" and "OperationalError" in page and "DATABASE_URL" in page
    assert password not in page
    assert "postgres://parley:********************@127.0.0.1:1/parley" in page


def test_error_reports_hide_passwords_in_urls_headers_and_local_variables(rf, settings):
    from django.views.debug import ExceptionReporter

    # Built at run time: the page also quotes this test's source lines.
    secrets = {name: f"{name}-password-{len(name) * 1111}" for name in ("redis", "header", "url", "conninfo")}
    settings.DEBUG = True
    settings.REDIS_URL = f"redis://:{secrets['redis']}@redis:6379/0"
    request = rf.get("/", HTTP_X_UPSTREAM=f"amqp://user:{secrets['header']}@mq/vhost")

    def connect(url: str, conninfo: str) -> None:
        raise RuntimeError("could not connect")

    try:
        connect(f"postgres://u:{secrets['url']}@db/x", f"dbname=x password={secrets['conninfo']} host=db")
    except RuntimeError:
        html = ExceptionReporter(request, *sys.exc_info()).get_traceback_html()
    for secret in secrets.values():
        assert secret not in html, secret
    assert "redis://:********************@redis:6379/0" in html
