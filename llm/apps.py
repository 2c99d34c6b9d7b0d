from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"
    verbose_name = "LLM"

    def ready(self) -> None:
        from config.checks import register
        from llm import checks

        register(checks.check_providers, checks.check_server_keys)
