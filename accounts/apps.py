from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import checks
        from config.checks import register

        register(checks.check_discord_login, checks.check_site_url)
