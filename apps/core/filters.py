"""Filters the API's filter sets share."""

from __future__ import annotations

from django import forms
from django_filters import rest_framework as filters

# A primary key is a 64-bit integer: a larger number can match nothing (and must not reach a
# database that cannot even bind it: SQLite raises OverflowError).
ID_MAX = 2**63 - 1


class IdFilter(filters.NumberFilter):
    """A whole-number id (the default NumberFilter takes 1.5 and truncates it); an id beyond
    the 64-bit range matches nothing."""

    field_class = forms.IntegerField

    def filter(self, qs, value):
        if value is not None and not (-ID_MAX - 1 <= value <= ID_MAX):
            return qs.none()
        return super().filter(qs, value)
