"""``{% field form.x %}``: one form field with its label, help and errors, rendered in Python.

The settings page shows about twenty fields; an ``{% include %}`` per field cost more than the rest of the page.
"""

from __future__ import annotations

from django import template
from django.forms import BoundField
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def field(bound: BoundField) -> SafeString:
    errors = bound.errors
    parts = [format_html('<div class="field{}">', " has-error" if errors else "")]
    if bound.widget_type == "checkbox":
        parts.append(format_html('<label class="check">{} {}</label>', bound.as_widget(), bound.label))
    else:
        parts.append(format_html('<label for="{}">{}</label>', bound.id_for_label, bound.label))
        parts.append(conditional_escape(bound.as_widget()))
    if bound.help_text:
        parts.append(format_html('<div class="help">{}</div>', bound.help_text))
    if errors:
        parts.append(errors.render())  # ErrorList renders its own escaped HTML
    parts.append(mark_safe("</div>"))
    return mark_safe("".join(parts))  # noqa: S308 - every piece above is escaped
