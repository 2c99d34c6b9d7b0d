from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.apps import apps

        from accounts import checks
        from config.checks import register

        register(checks.check_discord_login, checks.check_site_url)
        if apps.is_installed("django.contrib.admin"):  # the web process (the bot runs without the web's apps)
            from django.contrib import admin

            from accounts.forms import OperatorLoginForm

            # The admin's login page rate-limits failed passwords like allauth's (accounts/forms.py).
            admin.site.login_form = OperatorLoginForm
