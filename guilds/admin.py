from django.contrib import admin

from guilds.models import Channel, ChannelSettings, Guild, GuildSettings, Membership


class GuildSettingsInline(admin.StackedInline):
    model = GuildSettings
    can_delete = False


@admin.register(Guild)
class GuildAdmin(admin.ModelAdmin):
    list_display = ("name", "discord_id", "shard_id", "member_count", "is_active", "joined_at")
    list_filter = ("is_active", "shard_id")
    search_fields = ("name", "discord_id", "owner_discord_id")
    inlines = [GuildSettingsInline]


@admin.register(GuildSettings)
class GuildSettingsAdmin(admin.ModelAdmin):
    list_display = ("guild", "enabled", "model", "version", "updated_at")
    list_filter = ("enabled", "model")
    search_fields = ("guild__name", "guild__discord_id")
    list_select_related = ("guild",)


@admin.register(ChannelSettings)
class ChannelSettingsAdmin(admin.ModelAdmin):
    list_display = ("guild", "channel_id", "model")
    search_fields = ("guild__name", "channel_id")
    list_select_related = ("guild",)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "discord_id", "guild", "kind")
    list_filter = ("kind",)
    search_fields = ("name", "discord_id", "guild__name")
    list_select_related = ("guild",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "guild", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "user__discord_id", "guild__name", "guild__discord_id")
    list_select_related = ("user", "guild")
    autocomplete_fields = ("user", "guild")
