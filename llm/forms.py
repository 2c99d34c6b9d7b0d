from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from guilds.forms import model_field
from guilds.models import SYSTEM_PROMPT_MAX_LENGTH, GuildSettings
from guilds.provider_keys import KEY_MAX_LENGTH
from llm import registry
from llm.keys import own_providers

PLAYGROUND_MESSAGE_MAX = 4000


class PlaygroundForm(forms.Form):
    """A message run through the guild's prompt and model, or an unsaved draft of them."""

    message = forms.CharField(max_length=PLAYGROUND_MESSAGE_MAX, widget=forms.Textarea(attrs={"rows": 4}))
    system_prompt = forms.CharField(
        max_length=SYSTEM_PROMPT_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="A draft: it is not saved. Leave it as it is to try the current prompt.",
    )

    def __init__(self, *args: Any, current: GuildSettings, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"system_prompt": current.system_prompt, "model": current.model})
        super().__init__(*args, **kwargs)
        # The server's own provider keys count: a model may be usable through them only (llm/keys.py).
        self.own = own_providers(current.guild_id)
        self.fields["model"] = model_field(current=current.model, blank=None, label="Model", own=self.own)

    def clean_model(self) -> str:
        model: str = self.cleaned_data["model"]
        try:
            registry.validate_model_id(model, self.own)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
        return model


class ProviderKeyForm(forms.Form):
    """A server's own API key for one provider. The key is never shown again, not even after an error."""

    provider = forms.ChoiceField(widget=forms.HiddenInput)
    api_key = forms.CharField(
        label="API key",
        max_length=KEY_MAX_LENGTH,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}, render_value=False),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider = self.fields["provider"]
        assert isinstance(provider, forms.ChoiceField)
        provider.choices = [(p.id, p.label) for p in registry.key_providers()]
