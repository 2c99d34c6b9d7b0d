from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from guilds.forms import model_field
from guilds.models import SYSTEM_PROMPT_MAX_LENGTH, GuildSettings
from llm import registry

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
        self.fields["model"] = model_field(current=current.model, blank=None, label="Model")

    def clean_model(self) -> str:
        model: str = self.cleaned_data["model"]
        try:
            registry.validate_model_id(model)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
        return model
