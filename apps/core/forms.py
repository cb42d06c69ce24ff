"""The HTMX form path: a service's DomainError becomes inline form errors and a 4xx status."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django import forms

from apps.core.errors import DomainError

FieldMap = Mapping[str, str] | Callable[[str], str | None]

# Status of a page answering with a form that has errors. Not 400: in DEBUG, django-htmx's
# helper script replaces the whole document with any 400/403/404/500 HTMX response (to show
# Django's error page), which would wipe the page instead of showing the inline errors.
FORM_INVALID = 422


def _target(form: forms.BaseForm, name: str, field_map: FieldMap | None) -> str | None:
    if field_map is not None:
        mapped = field_map(name) if callable(field_map) else field_map.get(name)
        if mapped:
            name = mapped
    return name if name in form.fields else None


def apply_domain_error(
    form: forms.BaseForm, exc: DomainError, *, field_map: FieldMap | None = None
) -> int:
    """Put ``exc`` on ``form``: each of its fields next to the matching input (``field_map``
    renames service names such as ``params.fast`` to form names), anything else at the top.

    Returns the HTTP status the page should answer with: 422 for invalid input (the API's
    400), else the error's own (409 for a conflict such as a duplicate or a halted account).
    """
    placed = False
    for name, messages in exc.fields.items():
        target = _target(form, name, field_map)
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(target, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)
    return FORM_INVALID if exc.status_code == 400 else exc.status_code
