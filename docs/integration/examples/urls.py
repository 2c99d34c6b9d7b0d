"""A urlconf for the examples: the project's URLs plus the example views.

Tests point ``settings.ROOT_URLCONF`` here. In the product, the two paths below would go in the app's own
``urls.py`` (``guilds/urls.py`` for the page, under its ``guilds:`` namespace; the API next to ``api/v1/``).
"""

from __future__ import annotations

from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from docs.integration.examples import channels_page, prompt_api

urlpatterns = [
    path("api/v1/guilds/<int:guild_id>/prompt", prompt_api.guild_prompt, name="example-guild-prompt"),
    path("dashboard/guilds/<int:guild_id>/channels/", channels_page.channels_page, name="example-channels"),
    *project_urlpatterns,
]
