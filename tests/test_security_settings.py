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
