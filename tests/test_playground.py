"""The prompt playground: the guild's prompt and model (or a draft) without Discord, counted in usage."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llm.models import Usage
from llm.views import PLAYGROUND_ERRORS
from tests.fakes.llm_server import FakeLLM
from tests.support import run_python, subprocess_env


def url(guild) -> str:
    return f"/dashboard/guilds/{guild.discord_id}/playground/"


def test_it_works_with_the_offline_model(client, bob, guild):
    client.force_login(bob)
    assert client.get(url(guild)).status_code == 200
    response = client.post(
        url(guild),
        {"message": "hello playground", "model": "offline/parley-offline", "system_prompt": "Be brief."},
    )
    assert response.status_code == 200
    reply = response.context["reply"]
    assert "offline model" in reply.text and "hello playground" in reply.text
    usage = Usage.objects.get()
    assert usage.source == "playground" and usage.guild == guild and usage.user_discord_id == bob.discord_id
    assert guild.settings.system_prompt != "Be brief.", "a draft is never saved"


def test_htmx_gets_only_the_result(client, bob, guild):
    client.force_login(bob)
    response = client.post(
        url(guild), {"message": "hi", "model": "offline/parley-offline"}, HTTP_HX_REQUEST="true"
    )
    assert b'id="playground-result"' in response.content
    assert b"<html" not in response.content


def test_it_goes_through_litellm_to_a_provider(client, bob, guild, settings):
    from tests.fakes.llm_server import FakeLLM

    with FakeLLM() as fake:
        fake.reply_with("Answer from the fake provider.")
        settings.LLM_PROVIDERS = {
            **settings.LLM_PROVIDERS,
            "openai": {"api_key": "sk-test", "api_base": fake.url},
        }
        client.force_login(bob)
        response = client.post(url(guild), {"message": "hi", "model": "openai/gpt-4o-mini"})
        assert response.context["reply"].text == "Answer from the fake provider."
        assert fake.requests[0].messages[-1] == {"role": "user", "content": "hi"}
    usage = Usage.objects.get()
    assert usage.model == "openai/gpt-4o-mini" and usage.cost_usd > 0


def test_a_reasoning_models_thinking_is_shown_apart_from_the_answer(client, bob, guild, settings):
    from guilds.services import settings_update

    settings_update(
        guild=guild, actor=None, changes={"reasoning_display": "spoiler"}
    )  # Discord's, not the page's
    with FakeLLM() as fake:
        fake.reply_with("<think>Waves & <b>scatter</b>.</think>\n\nRayleigh scattering.")
        settings.LLM_PROVIDERS = {
            **settings.LLM_PROVIDERS,
            "openai": {"api_key": "sk-test", "api_base": fake.url},
        }
        client.force_login(bob)
        response = client.post(url(guild), {"message": "why blue?", "model": "openai/gpt-4o-mini"})
    html = response.content.decode()
    assert response.context["reply"].text == "Rayleigh scattering.", response.context["reply"]
    assert response.context["reply"].reasoning == "Waves & <b>scatter</b>."
    assert "||" not in html and "&lt;think&gt;" not in html
    assert "<summary>The model's thinking (" in html and "Waves &amp; &lt;b&gt;scatter&lt;/b&gt;." in html
    assert Usage.objects.get().reasoning_tokens > 0


@pytest.mark.parametrize("who", ["bob", "staff"])
def test_provider_errors_are_explained_in_words(client, bob, staff, guild, settings, who):
    from tests.fakes.llm_server import FakeLLM

    with FakeLLM() as fake:
        fake.enqueue("401")
        settings.LLM_PROVIDERS = {
            **settings.LLM_PROVIDERS,
            "openai": {"api_key": "sk-test", "api_base": fake.url},
        }
        client.force_login({"bob": bob, "staff": staff}[who])
        response = client.post(url(guild), {"message": "hi", "model": "openai/gpt-4o-mini"})
    html = response.content.decode()
    assert response.context["error"] == PLAYGROUND_ERRORS["provider_error"]
    if who == "bob":
        # A server admin is not the operator: the provider's words may name the instance's key or addresses.
        assert "Incorrect API key" not in html and "<details>" not in html
        return
    # The operator gets the provider's own words, folded away.
    summary, detail = html.split("<details>", 1)[1].split("</summary>", 1)
    assert "What the provider said" in summary and "Incorrect API key provided (fake)" in detail
    assert "Incorrect API key" not in html.split("<details>", 1)[0]


def test_the_answer_names_the_model(client, bob, guild):
    client.force_login(bob)
    response = client.post(url(guild), {"message": "hi", "model": "offline/parley-offline"})
    html = response.content.decode()
    assert "Parley offline (echo, no API key needed) · " in html and "offline/parley-offline ·" not in html


def test_the_offline_model_says_no_provider_is_configured_only_when_none_is(client, bob, guild, settings):
    client.force_login(bob)
    settings.LLM_PROVIDERS = {}
    reply = client.post(url(guild), {"message": "hi", "model": "offline/parley-offline"}).context["reply"]
    assert "no AI provider is configured" in reply.text and "OPENAI_API_KEY" in reply.text
    settings.LLM_PROVIDERS = {"anthropic": {"api_key": "sk-ant-test", "api_base": None}}
    reply = client.post(url(guild), {"message": "hi", "model": "offline/parley-offline"}).context["reply"]
    assert "no AI provider" not in reply.text and "OPENAI_API_KEY" not in reply.text
    assert "this server's model is set to the offline one" in reply.text
    assert "a server admin picks another model in the Parley dashboard" in reply.text


def test_it_checks_membership(client, dave, guild):
    client.force_login(dave)
    assert client.post(url(guild), {"message": "hi", "model": "offline/parley-offline"}).status_code == 404


def test_it_requires_role(client, carol, guild):
    client.force_login(carol)
    assert client.get(url(guild)).status_code == 403
    assert client.post(url(guild), {"message": "hi", "model": "offline/parley-offline"}).status_code == 403
    assert not Usage.objects.exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"message": "", "model": "offline/parley-offline"}, "This field is required"),
        ({"message": "hi", "model": "nonsense/model"}, "Unknown model nonsense/model"),
        ({"message": "hi", "model": "anthropic/claude-haiku-4-5"}, "ANTHROPIC_API_KEY"),
        ({"message": "x" * 4001, "model": "offline/parley-offline"}, "at most 4000 characters"),
    ],
)
def test_it_rejects_bad_input(client, bob, guild, data, error):
    client.force_login(bob)
    response = client.post(url(guild), data)
    assert response.status_code == 422
    assert error in response.content.decode()
    assert not Usage.objects.exists()


def test_over_budget_calls_nothing(client, bob, guild):
    guild.settings.daily_budget_usd = Decimal("0")
    guild.settings.save()
    client.force_login(bob)
    response = client.post(url(guild), {"message": "hi", "model": "offline/parley-offline"})
    assert "daily budget" in response.context["error"]
    # Refused like a Discord message over budget: one row that says so, no call, no cost.
    row = Usage.objects.get()
    assert (row.outcome, row.source, row.input_tokens, row.cost_usd) == (
        Usage.Outcome.OVER_BUDGET,
        Usage.Source.PLAYGROUND,
        0,
        0,
    )


def test_the_web_process_never_imports_litellm(alice, guild, transactional_db):
    """Render every dashboard page, ask the playground through a real provider (the fake OpenAI server: the call
    runs in llm.runner's child) and load the ASGI app in a fresh interpreter, then look at sys.modules."""
    with FakeLLM() as fake:
        fake.reply_with("from the provider")
        code = f"""
import django, sys
django.setup()
from django.test import Client
from accounts.models import User
client = Client()
client.force_login(User.objects.get(username="alice"))
gid = {guild.discord_id}
for path in ["/", "/dashboard/", f"/dashboard/guilds/{{gid}}/settings/", f"/dashboard/guilds/{{gid}}/members/",
             f"/dashboard/guilds/{{gid}}/audit/", f"/dashboard/guilds/{{gid}}/usage/", f"/dashboard/guilds/{{gid}}/playground/"]:
    assert client.get(path, HTTP_HOST="127.0.0.1").status_code == 200, path
client.post(f"/dashboard/guilds/{{gid}}/playground/", {{"message": "hi", "model": "offline/parley-offline"}}, HTTP_HOST="127.0.0.1")
answered = client.post(f"/dashboard/guilds/{{gid}}/playground/", {{"message": "hi", "model": "openai/gpt-4o-mini"}}, HTTP_HOST="127.0.0.1")
assert b"from the provider" in answered.content, answered.content
import config.asgi  # the WebSocket routes and their consumers too
print("litellm" in sys.modules)
"""
        env = subprocess_env() | {"OPENAI_API_KEY": "sk-test", "OPENAI_API_BASE": fake.url}
        result = run_python(code, env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "False"
        assert [r.model for r in fake.requests] == ["gpt-4o-mini"], "the provider was called, by the child"
