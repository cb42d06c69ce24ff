"""The project's one domain error type.

Pure modules may raise these (this module imports nothing from Django); the DRF exception
handler in ``apps.core.api`` and the HTMX form path turn them into a 4xx answer with the message
and the machine-readable code.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """A rule of the domain refused an action. ``code`` is stable and machine-readable."""

    status_code: int = 400
    default_code: str = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: Mapping[str, str | list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields = dict(fields or {})

    def as_dict(self) -> dict:
        body: dict = {"detail": self.message, "code": self.code}
        if self.fields:
            body["errors"] = {
                name: value if isinstance(value, list) else [value]
                for name, value in self.fields.items()
            }
        return body


class ValidationFailed(DomainError):
    default_code = "invalid"


class NotFound(DomainError):
    status_code = 404
    default_code = "not_found"


class Conflict(DomainError):
    status_code = 409
    default_code = "conflict"


class PermissionRefused(DomainError):
    status_code = 403
    default_code = "permission_denied"
