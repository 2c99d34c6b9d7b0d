from django.contrib import admin

from botcore.models import IdentifySlot, ShardLatencySample, ShardLease, ShardProcess, ShardStatus


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


# runbot --shards auto. Clearing a lease's owner frees its shard: the process running it stops it at its next
# heartbeat, and another claims it.
@admin.register(ShardLease)
class ShardLeaseAdmin(admin.ModelAdmin):
    list_display = ("shard_id", "shard_count", "owner", "host", "pid", "heartbeat_at", "expires_at")
    list_filter = ("host",)
    search_fields = ("owner", "host")


@admin.register(ShardProcess)
class ShardProcessAdmin(admin.ModelAdmin):
    list_display = ("token", "host", "pid", "started_at", "heartbeat_at", "expires_at")
    search_fields = ("token", "host")


@admin.register(IdentifySlot)
class IdentifySlotAdmin(admin.ModelAdmin):
    list_display = ("bucket", "next_at", "shard_id", "host", "pid")
    search_fields = ("host",)
