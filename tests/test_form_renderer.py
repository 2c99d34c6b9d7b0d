"""config.forms.FastRenderer writes inputs, checkboxes and textareas in Python: the markup must be exactly Django's."""

from __future__ import annotations

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils.safestring import mark_safe

from config.forms import FastRenderer
from guilds.forms import SettingsForm

HOSTILE = "a \"quoted\" <b>bold</b> & 'single'\nsecond line"


class Everything(forms.Form):
    text = forms.CharField(
        initial=HOSTILE, widget=forms.TextInput(attrs={"placeholder": 'x"y', "data-on": True})
    )
    number = forms.IntegerField(
        initial=42, widget=forms.NumberInput(attrs={"min": 0, "step": "1", "off": False})
    )
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput(render_value=True), initial="s3cr<et")
    hidden = forms.CharField(widget=forms.HiddenInput, initial=7)
    ticked = forms.BooleanField(initial=True)
    unticked = forms.BooleanField(required=False)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), initial=HOSTILE)
    empty_notes = forms.CharField(widget=forms.Textarea, required=False)
    safe_notes = forms.CharField(widget=forms.Textarea, initial=mark_safe("<i>kept</i>"))
    choice = forms.ChoiceField(
        choices=[("a", "A <1>"), ("b", "B")], initial="b"
    )  # left to Django's templates


def both(form_class, *args, **kwargs):
    return form_class(*args, renderer=DjangoTemplates(), **kwargs), form_class(
        *args, renderer=FastRenderer(), **kwargs
    )


@pytest.mark.parametrize(
    "data", [None, {"text": HOSTILE, "number": "x<", "ticked": "on", "notes": "", "hidden": "\"'"}]
)
def test_every_widget_renders_as_django_renders_it(data):
    django_form, fast_form = both(Everything, data)
    for django_field, fast_field in zip(django_form, fast_form, strict=True):
        assert fast_field.as_widget() == django_field.as_widget(), django_field.name


def test_the_settings_form_renders_as_django_renders_it(guild):
    channels = list(guild.channels.all())
    django_form, fast_form = both(SettingsForm, instance=guild.settings, channels=channels)
    assert str(fast_form) == str(django_form)
    bad = {"system_prompt": HOSTILE, "temperature": "hot", "target_user_ids": "<script>", "version": "1"}
    django_form, fast_form = both(SettingsForm, bad, instance=guild.settings, channels=channels)
    assert str(fast_form) == str(django_form)


def test_inputs_and_textareas_never_reach_the_template_engine(monkeypatch):
    def no_templates(self, template_name):
        raise AssertionError(f"{template_name} went through the template engine")

    monkeypatch.setattr(FastRenderer, "get_template", no_templates)
    form = Everything(renderer=FastRenderer())
    for field in form:
        if field.name != "choice":
            field.as_widget()  # raises if it used a template
    with pytest.raises(AssertionError, match="select"):
        form["choice"].as_widget()
