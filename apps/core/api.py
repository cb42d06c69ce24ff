"""Shared REST plumbing: the error envelope, pagination and owner scoping."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import DomainError


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


def _flatten_detail(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _flatten_detail(detail[0])
    if isinstance(detail, dict) and detail:
        name, value = next(iter(detail.items()))
        text = _flatten_detail(value)
        return text if name in ("non_field_errors", "detail") else f"{name}: {text}"
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Every API error is JSON: ``{"detail": message, "code": code, "errors": {field: [..]}}``.

    ``detail`` is one human sentence (the first problem when there are several), ``errors``
    keeps every field's messages for clients that show them next to inputs.
    """
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {
            "detail": _flatten_detail(errors),
            "code": "invalid",
            "errors": errors,
        }
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "detail": _flatten_detail(exc.detail),
            "code": codes if isinstance(codes, str) else exc.default_code,
        }
    return response
