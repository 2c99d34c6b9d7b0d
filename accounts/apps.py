from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib import admin

        from accounts import checks
        from accounts.forms import OperatorLoginForm
        from config.checks import register

        register(checks.check_discord_login, checks.check_site_url)
        # The admin's login page rate-limits failed passwords like allauth's (accounts/forms.py).
        admin.site.login_form = OperatorLoginForm
