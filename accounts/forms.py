"""The admin's login form, checked the way allauth's login page is."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import get_adapter
from django.contrib.admin.forms import AdminAuthenticationForm


class OperatorLoginForm(AdminAuthenticationForm):
    """``/admin/login/`` through allauth's ``authenticate``, so it shares the login page's limit on failed attempts
    (``ACCOUNT_RATE_LIMITS["login_failed"]`` in config/settings.py): past it, even the right password gets "Too many failed login attempts" until
    the window passes. Django's own admin form has no limit at all. Only staff get in (the parent's check)."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            # Raises the "too many attempts" ValidationError, which the form shows above the fields.
            self.user_cache = get_adapter(self.request).authenticate(
                self.request, username=username, password=password
            )
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data
