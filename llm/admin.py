from django.contrib import admin

from llm.models import Usage


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "guild",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "outcome",
        "source",
    )
    list_filter = ("outcome", "source", "model")
    search_fields = ("guild__name", "user_discord_id", "model")
    list_select_related = ("guild",)
    date_hierarchy = "created_at"
