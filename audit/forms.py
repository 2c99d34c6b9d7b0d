from __future__ import annotations

from django import forms


class RevertForm(forms.Form):
    """The revert's confirmation (posted with ``confirmed=yes``): the settings version its preview showed, so a save
    made since the preview makes it stale."""

    version = forms.IntegerField(
        min_value=0,
        max_value=2**63 - 1,
        widget=forms.HiddenInput,
        error_messages={"required": "Check what the revert changes below, then confirm it."},
    )
