"""allauth's pages under /accounts/, with its password and email pages guarded (``accounts/views.py``).

The guarded patterns repeat allauth's own paths and names ahead of ``allauth.urls``, so they match first and
``{% url %}`` gives the same addresses. Password login itself is refused to non-operators by
``User.check_password``.
"""

from __future__ import annotations

from allauth.account import views as allauth_views
from django.urls import include, path, re_path

from accounts.views import email_required, operators_only

# Pages that send mail: for operators, and only when a mail server is configured.
MAIL_PAGES = [
    ("email/", allauth_views.email, "account_email"),
    ("confirm-email/", allauth_views.email_verification_sent, "account_email_verification_sent"),
    (r"^confirm-email/(?P<key>[-:\w]+)/$", allauth_views.confirm_email, "account_confirm_email"),
    ("password/reset/", allauth_views.password_reset, "account_reset_password"),
    ("password/reset/done/", allauth_views.password_reset_done, "account_reset_password_done"),
    (
        "password/reset/key/done/",
        allauth_views.password_reset_from_key_done,
        "account_reset_password_from_key_done",
    ),
    (
        r"^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$",
        allauth_views.password_reset_from_key,
        "account_reset_password_from_key",
    ),
]

urlpatterns = [
    path("password/set/", operators_only(allauth_views.password_set), name="account_set_password"),
    path("password/change/", operators_only(allauth_views.password_change), name="account_change_password"),
    *(
        (re_path if route.startswith("^") else path)(route, email_required(operators_only(view)), name=name)
        for route, view, name in MAIL_PAGES
    ),
    path("", include("allauth.urls")),
]
