"""allauth's Discord provider, with its OAuth endpoints read from ``settings.DISCORD_OAUTH_BASE``.

allauth hard-codes discord.com in its adapter's class attributes. ``SOCIALACCOUNT_PROVIDERS["discord"]
["provider_class"]`` swaps in the provider below; allauth then builds its login and callback URLs from this
package's ``urls`` module, whose views use our adapter.
"""
