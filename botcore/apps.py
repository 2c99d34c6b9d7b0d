from django.apps import AppConfig


class BotcoreConfig(AppConfig):
    name = "botcore"
    verbose_name = "Bot"

    def ready(self) -> None:
        from botcore import checks
        from config import checks as project

        project.register(checks.check_bot_token, checks.check_shards)
        # The checks of no app, beside ours: botcore ships parley_doctor, which runs them (config/checks.py).
        project.register(project.check_production, project.check_database, project.check_redis)
