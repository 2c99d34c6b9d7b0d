"""The configuration import in a real Chromium at a phone's width: upload, a preview that fits the screen and
passes axe, confirm, the result on the page. (Its forms are plain forms: tests/test_backup_view.py drives the same
steps without JavaScript.)"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from guilds import backup
from guilds.models import GuildSettings, RoleSettings
from guilds.services import channel_override_set
from tests.conftest import chromium, log_in
from tests.test_responsive_browser import LONG_PROMPT, PHONE, problems_on

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_import_on_a_phone(live_server, monkeypatch, tmp_path, guild, alice, bob):
    from axe_playwright_python.sync_playwright import Axe

    channel_override_set(guild=guild, actor=alice, channel_id=222222222222222222, system_prompt="Bots.")
    data = backup.config_export(guild)
    data["settings"] |= {"system_prompt": LONG_PROMPT, "temperature": 1.1}
    data["channel_overrides"].append(
        {"channel_id": 999999999999999999, "channel_name": "elsewhere", "model": ""}
    )
    data["role_overrides"] = [{"role_id": 333333333333333333, "system_prompt": LONG_PROMPT, "model": ""}]
    file = tmp_path / "parley.json"
    file.write_text(json.dumps(data))
    axe = Axe()
    with chromium(monkeypatch, viewport=PHONE) as context:
        page = context.new_page()
        log_in(page, live_server, bob)
        page.goto(live_server.url + reverse("guilds:backup", args=[guild.discord_id]))
        assert problems_on(page, axe) == []
        page.set_input_files("input[type=file]", str(file))
        page.click("button:has-text('Preview the import')")
        page.wait_for_selector("h1:has-text('Import a configuration')")
        assert "#elsewhere (999999999999999999)" in page.inner_text("main")
        assert problems_on(page, axe) == []
        page.click("button:has-text('Import 3 changes')")
        page.wait_for_selector("text=Imported from Parley Test Server")
    assert GuildSettings.objects.get(guild=guild).temperature == 1.1
    assert RoleSettings.objects.get().system_prompt == LONG_PROMPT
