"""allauth's pages under /accounts/, with its password and email pages guarded (``accounts/views.py``).

The guarded patterns repeat allauth's own paths and names ahead of ``allauth.urls``, so they match first and
``{% url %}`` gives the same addresses. Password login itself is refused to non-operators by
``User.check_password``.
"""

from __future__ import annotations

from allauth.account import views as allauth_views
from django.urls import include, path, re_path

from accounts.views import email_required, operators_only

urlpatterns = [
    path("password/set/", operators_only(allauth_views.password_set), name="account_set_password"),
    path("password/change/", operators_only(allauth_views.password_change), name="account_change_password"),
    path("email/", email_required(operators_only(allauth_views.email)), name="account_email"),
    path(
        "confirm-email/",
        email_required(operators_only(allauth_views.email_verification_sent)),
        name="account_email_verification_sent",
    ),
    re_path(
        r"^confirm-email/(?P<key>[-:\w]+)/$",
        email_required(operators_only(allauth_views.confirm_email)),
        name="account_confirm_email",
    ),
    path(
        "password/reset/",
        email_required(operators_only(allauth_views.password_reset)),
        name="account_reset_password",
    ),
    path(
        "password/reset/done/",
        email_required(operators_only(allauth_views.password_reset_done)),
        name="account_reset_password_done",
    ),
    path(
        "password/reset/key/done/",
        email_required(operators_only(allauth_views.password_reset_from_key_done)),
        name="account_reset_password_from_key_done",
    ),
    re_path(
        r"^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$",
        email_required(operators_only(allauth_views.password_reset_from_key)),
        name="account_reset_password_from_key",
    ),
    path("", include("allauth.urls")),
]
