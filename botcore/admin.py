from django.contrib import admin

from botcore.models import ShardLatencySample, ShardStatus


@admin.register(ShardStatus)
class ShardStatusAdmin(admin.ModelAdmin):
    list_display = (
        "shard_id",
        "status",
        "effective_status",
        "latency_ms",
        "guild_count",
        "host",
        "pid",
        "updated_at",
    )
    list_filter = ("status", "host")
    search_fields = ("shard_id", "host")


@admin.register(ShardLatencySample)
class ShardLatencySampleAdmin(admin.ModelAdmin):
    list_display = ("shard_id", "latency_ms", "created_at")
    list_filter = ("shard_id",)
    search_fields = ("shard_id",)
