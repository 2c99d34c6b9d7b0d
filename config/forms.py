"""The form renderer: Django's, with its most common widget templates written out in Python.

Django renders every widget through the template engine (an ``<input>`` is a template with an included attribute
template); on the settings page, two dozen fields made that most of the page's time. ``FastRenderer`` produces the
same markup for inputs, checkboxes and textareas directly (tests/test_form_renderer.py compares it with Django's own
for every widget of Parley's forms) and leaves every other template to Django.
"""

from __future__ import annotations

from typing import Any

from django.forms.renderers import DjangoTemplates
from django.utils.html import conditional_escape as escape
from django.utils.safestring import SafeString, mark_safe

_INPUTS = {
    f"django/forms/widgets/{name}.html"
    for name in (
        "input",
        "text",
        "number",
        "email",
        "url",
        "password",
        "hidden",
        "checkbox",
        "date",
        "search",
    )
}
_TEXTAREA = "django/forms/widgets/textarea.html"


def _attrs(attrs: dict[str, Any]) -> str:
    """Django's ``attrs.html``: True is a bare attribute, False is left out, anything else is escaped."""
    out = []
    for name, value in attrs.items():
        if value is True:
            out.append(f" {name}")
        elif value is not False:
            out.append(f' {name}="{escape(value)}"')
    return "".join(out)


class FastRenderer(DjangoTemplates):
    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> SafeString:
        widget = context.get("widget")
        if widget is not None and template_name in _INPUTS:
            value = widget["value"]
            shown = "" if value is None else f' value="{escape(value)}"'
            html = f'<input type="{escape(widget["type"])}" name="{escape(widget["name"])}"{shown}'
            return mark_safe(f"{html}{_attrs(widget['attrs'])}>")  # noqa: S308 - every value is escaped
        if widget is not None and template_name == _TEXTAREA:
            value = widget["value"]
            text = escape(value) if value else ""
            html = f'<textarea name="{escape(widget["name"])}"{_attrs(widget["attrs"])}>\n{text}</textarea>'
            return mark_safe(html)  # noqa: S308 - every value is escaped
        return mark_safe(super().render(template_name, context, request))  # noqa: S308 - Django's own output
