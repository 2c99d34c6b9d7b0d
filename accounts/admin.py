from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "global_name", "discord_id", "is_staff", "is_active", "last_login")
    search_fields = ("username", "global_name", "discord_id", "email")
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("Discord", {"fields": ("discord_id", "global_name", "avatar")}),
    )
