"""Dashboard forms. They parse and bound the input; ``guilds.services`` does the authoritative validation (model
availability, known channels) so that the bot's writes are checked the same way."""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.safestring import SafeString, mark_safe

from accounts.models import User
from guilds.models import (
    COOLDOWN_MAX_SECONDS,
    SYSTEM_PROMPT_MAX_LENGTH,
    Channel,
    ChannelSettings,
    GuildSettings,
    Membership,
    parse_discord_id,
)
from guilds.services import EDITABLE_FIELDS
from llm import registry
from llm.keys import own_providers

THREAD_KINDS = {
    Channel.Kind.ANNOUNCEMENT_THREAD,
    Channel.Kind.PUBLIC_THREAD,
    Channel.Kind.PRIVATE_THREAD,
}


def _attrs(attrs: dict[str, Any]) -> str:
    """HTML attributes like Django's flatatt (True: bare attribute; False/None: left out), escaped."""
    out = []
    for key, value in attrs.items():
        if value is True:
            out.append(f" {key}")
        elif value is not False and value is not None:
            out.append(f' {key}="{html.escape(str(value))}"')
    return "".join(out)


class FastSelect(forms.Select):
    """A select rendered in Python: Django renders each option through a template, which made the settings page
    (four selects, dozens of options) spend most of its time in widget templates."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        final_attrs = self.build_attrs(self.attrs, {**(attrs or {}), "name": name})
        parts = [f"<select{_attrs(final_attrs)}>"]
        for group, options, _index in self.optgroups(name, self.format_value(value), final_attrs):
            if group:
                parts.append(f'<optgroup label="{html.escape(str(group))}">')
            for option in options:
                option_attrs = {"value": option["value"], **option["attrs"]}
                parts.append(f"<option{_attrs(option_attrs)}>{html.escape(str(option['label']))}</option>")
            if group:
                parts.append("</optgroup>")
        parts.append("</select>")
        return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped


class FastCheckboxSelectMultiple(forms.CheckboxSelectMultiple):
    """Checkboxes rendered in Python, with the same markup as Django's template (see FastSelect)."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        final_attrs = self.build_attrs(self.attrs, attrs or {})
        parts = [f"<div{_attrs({'id': final_attrs.get('id')})}>"]
        for _group, options, _index in self.optgroups(name, self.format_value(value), final_attrs):
            for option in options:
                option_attrs = {"type": "checkbox", "name": name, "value": option["value"], **option["attrs"]}
                label_for = _attrs({"for": option_attrs.get("id")})
                label = html.escape(str(option["label"]))
                parts.append(f"<div><label{label_for}><input{_attrs(option_attrs)}> {label}</label></div>")
        parts.append("</div>")
        return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped


class ModelSelect(FastSelect):
    """The registry's models grouped by provider. Models whose provider has no API key are shown disabled with
    the reason (unless currently selected: a disabled option would not be submitted)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reasons: dict[str, str] = {}

    def create_option(
        self,
        name: str,
        value: Any,
        label: int | str,
        selected: bool,
        index: int,
        subindex: int | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        reason = self.reasons.get(str(value))
        if reason and not selected:
            option["attrs"]["disabled"] = True
            option["attrs"]["title"] = reason
        return option


def model_field(
    *, current: str, blank: str | None, label: str, own: Collection[str] | None = None
) -> forms.CharField:
    """A model picker; ``blank`` is the label of the empty choice (None: a model is required); ``own``: the
    providers the server has its own key for (``llm.keys.own_providers``), as ``registry.unavailable_reason``."""
    widget = ModelSelect()
    groups: list[tuple[str, Any]] = []
    known: set[str] = set()
    for group, options in registry.choices_grouped(own):
        reason = next((o.reason for o in options if o.reason), None)
        groups.append((f"{group} — {reason}" if reason else group, [(o.id, o.label) for o in options]))
        known.update(o.id for o in options)
        widget.reasons.update({o.id: o.reason for o in options if o.disabled and o.reason})
    head: list[tuple[str, Any]] = [("", blank)] if blank is not None else []
    if current and current not in known:  # an operator may have stored a model the list does not offer
        head.append((current, f"{current} (not in the list)"))
    widget.choices = head + groups
    return forms.CharField(label=label, required=blank is None, max_length=100, widget=widget)


class DiscordIdsField(forms.CharField):
    """Discord ids typed as text (commas, spaces or new lines between them) <-> a list of ints."""

    widget = forms.Textarea(attrs={"rows": 2, "placeholder": "123456789012345678, 234567890123456789"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        text = super().to_python(value) or ""
        ids = []
        for part in re.split(r"[\s,]+", text.strip()):
            if not part:
                continue
            discord_id = parse_discord_id(part)
            if discord_id is None:
                shown = part if len(part) <= 30 else part[:30] + "…"
                raise ValidationError(f"{shown!r} is not a Discord id (a positive number).", code="invalid")
            ids.append(discord_id)
        return list(dict.fromkeys(ids))

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or [])
        except ValidationError:
            return True


def channel_choices(channels: Iterable[Channel], current: Iterable[int] = ()) -> list[tuple[int, str]]:
    """Channels (not threads: they follow their parent) plus any stored id the bot no longer sees."""
    choices = [(c.discord_id, f"#{c.name}") for c in channels if c.kind not in THREAD_KINDS]
    seen = {value for value, _ in choices}
    choices += [(i, f"unknown channel {i}") for i in current if i not in seen]
    return choices


# What the dashboard calls each setting (the form's labels, the audit log's and the revert preview's field names).
FIELD_LABELS = {
    "enabled": "Answer in this server",
    "allowed_channel_ids": "Allowed channels",
    "target_user_ids": "Target users",
    "blocked_user_ids": "Blocked users",
    "reply_on_mention": "Reply when mentioned",
    "system_prompt": "System prompt",
    "model": "Model",
    "fallback_model": "Fallback model",
    "temperature": "Temperature",
    "max_output_tokens": "Max output tokens",
    "history_messages": "History depth (messages)",
    "streaming": "Stream replies as they are written",
    "reasoning_display": "A reasoning model's thinking",
    "daily_budget_usd": "Daily budget (USD)",
    "user_messages_per_minute": "Messages per user per minute",
    "user_messages_per_day": "Messages per user per day",
    "role": "Role",
    "mode": "Conversation mode",
    "cooldown_seconds": "Cooldown (seconds)",
    "role_id": "Discord role",
}


def field_label(name: str) -> str:
    """The human name of a setting; an unknown one (an old entry's) reads as words, not as a column name."""
    return FIELD_LABELS.get(name) or name.replace("_", " ").capitalize()


class SettingsForm(forms.ModelForm):
    allowed_channel_ids = forms.TypedMultipleChoiceField(
        coerce=int,
        required=False,
        label="Allowed channels",
        help_text="None ticked: every channel.",
        widget=FastCheckboxSelectMultiple,
    )
    target_user_ids = DiscordIdsField(
        required=False, label="Target users", help_text="Discord user ids Parley always answers."
    )
    blocked_user_ids = DiscordIdsField(
        required=False,
        label="Blocked users",
        help_text="Discord user ids Parley never answers here, without telling them.",
    )
    version = forms.IntegerField(widget=forms.HiddenInput)

    class Meta:
        model = GuildSettings
        fields = EDITABLE_FIELDS
        labels = {name: FIELD_LABELS[name] for name in EDITABLE_FIELDS}
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 8, "data-counter": ""}),
            "temperature": forms.NumberInput(attrs={"step": "0.1", "min": "0", "max": "2"}),
        }

    def __init__(
        self, *args: Any, channels: Iterable[Channel], own: Collection[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        current: GuildSettings = self.instance
        self.fields["version"].initial = current.version
        allowed = self.fields["allowed_channel_ids"]
        assert isinstance(allowed, forms.TypedMultipleChoiceField)
        allowed.choices = channel_choices(channels, current.allowed_channel_ids)
        own = own_providers(current.guild_id) if own is None else own  # the server's own provider keys
        self.fields["model"] = model_field(
            current=current.model, blank=None, label=FIELD_LABELS["model"], own=own
        )
        self.fields["fallback_model"] = model_field(
            current=current.fallback_model, blank="No fallback", label=FIELD_LABELS["fallback_model"], own=own
        )
        self.fields["fallback_model"].help_text = "Used when the model fails or its provider is down."

    def changes(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS}


class ChannelOverrideForm(forms.Form):
    prefix = "override"  # it shares the page with SettingsForm: keep the ids and names apart
    channel_id = forms.TypedChoiceField(coerce=int, label="Channel", widget=FastSelect)
    system_prompt = forms.CharField(
        required=False,
        max_length=SYSTEM_PROMPT_MAX_LENGTH,
        label="Prompt for this channel",
        help_text="Empty: the server's prompt.",
        widget=forms.Textarea(attrs={"rows": 4, "data-counter": ""}),
    )

    def __init__(
        self,
        *args: Any,
        channels: Iterable[Channel],
        current_model: str = "",
        own: Collection[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        channel = self.fields["channel_id"]
        assert isinstance(channel, forms.TypedChoiceField)
        channel.choices = channel_choices(channels)
        self.fields["model"] = model_field(
            current=current_model, blank="The server's model", label="Model for this channel", own=own
        )
        self.fields["mode"] = forms.ChoiceField(
            choices=ChannelSettings.Mode.choices,
            required=False,
            label=FIELD_LABELS["mode"],
            help_text="Every message: no mention needed. A thread per conversation: Parley opens a thread from "
            "the message that asks and answers every message in it. Threads follow their channel.",
            widget=FastSelect,
        )
        self.fields["cooldown_seconds"] = forms.IntegerField(
            required=False,
            min_value=0,
            max_value=COOLDOWN_MAX_SECONDS,
            label=FIELD_LABELS["cooldown_seconds"],
            help_text="Every message only: after an answer, messages nobody addressed to Parley wait this long. "
            "Mentions and replies are always answered; each person's rate limits still apply.",
        )

    def clean_cooldown_seconds(self) -> int:
        return self.cleaned_data.get("cooldown_seconds") or 0


class RoleOverrideForm(forms.Form):
    prefix = "role"  # it shares the page with SettingsForm and ChannelOverrideForm
    role_id = forms.CharField(
        label=FIELD_LABELS["role_id"],
        max_length=20,
        help_text="The role's id: in Discord, turn on Developer Mode, then right-click the role and Copy Role ID.",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    system_prompt = forms.CharField(
        required=False,
        max_length=SYSTEM_PROMPT_MAX_LENGTH,
        label="Prompt for this role",
        help_text="Empty: the channel's or the server's prompt.",
        widget=forms.Textarea(attrs={"rows": 4, "data-counter": ""}),
    )

    def __init__(
        self, *args: Any, current_model: str = "", own: Collection[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"] = model_field(
            current=current_model,
            blank="The channel's or the server's model",
            label="Model for this role",
            own=own,
        )

    def clean_role_id(self) -> int:
        role_id = parse_discord_id(self.cleaned_data["role_id"].strip())
        if role_id is None:
            raise ValidationError("Enter a Discord role id (a positive number of up to 19 digits).")
        return role_id


class MemberAddForm(forms.Form):
    user = forms.CharField(
        label="Discord user id or Parley username",
        max_length=150,
        widget=forms.TextInput(attrs={"list": "known-users", "autocomplete": "off"}),
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.USER)

    def __init__(self, *args: Any, acting: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"] = role_field(acting)

    def clean_user(self) -> User | int:
        value = self.cleaned_data["user"].strip().lstrip("@")
        discord_id = parse_discord_id(value)
        if discord_id is not None:
            return discord_id
        if value.isdigit():  # digits, but not a Discord id: too long, zero, or not ASCII
            raise ValidationError("Enter a Discord user id (a positive number of up to 19 digits).")
        user = User.objects.filter(username=value).first()
        if user is None:
            raise ValidationError("No Parley user has that username: enter their Discord user id instead.")
        return user


def role_field(acting: Membership) -> forms.ChoiceField:
    """Only the roles the acting member may grant (nobody raises a role above their own)."""
    choices = [(value, label) for value, label in Membership.Role.choices if acting.can_assign(value)]
    return forms.ChoiceField(choices=choices, initial=Membership.Role.USER, label=FIELD_LABELS["role"])


class MemberRoleForm(forms.Form):
    def __init__(self, *args: Any, acting: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"] = role_field(acting)


class ConfigUploadForm(forms.Form):
    """A configuration file to import (``guilds/backup.py``); the preview comes before anything changes."""

    file = forms.FileField(
        label="Configuration file",
        help_text="A .json file exported from a Parley server (this one or another), at most 256 KB.",
        widget=forms.FileInput(attrs={"accept": ".json,application/json"}),
        error_messages={"required": "Choose the file to import.", "empty": "This file is empty."},
    )
