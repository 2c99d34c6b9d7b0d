from __future__ import annotations

from django import forms


class RevertForm(forms.Form):
    """The revert's confirmation: the settings version its preview showed (a save since makes it stale)."""

    version = forms.IntegerField(min_value=0, max_value=2**63 - 1, widget=forms.HiddenInput)
