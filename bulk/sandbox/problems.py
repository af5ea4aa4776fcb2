"""The API's error envelope as an exception the sandbox raises anywhere and renders in one place."""

from __future__ import annotations

from typing import Any


class ApiProblem(Exception):
    """An error response: `{"error": {"type", "code", "message", "field"?}}` with its status."""

    def __init__(
        self,
        status: int,
        type: str,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def invalid(field: str | None, code: str, message: str) -> ApiProblem:
    return ApiProblem(400, "invalid_request_error", code, message, field)


def not_found(object_name: str, reference: str) -> ApiProblem:
    return ApiProblem(
        404, "not_found", f"{object_name}_not_found", f"No such {object_name}: '{reference}'."
    )


def conflict(code: str, message: str, field: str | None = None) -> ApiProblem:
    return ApiProblem(409, "conflict", code, message, field)


def unauthenticated(code: str, message: str) -> ApiProblem:
    return ApiProblem(401, "authentication_error", code, message)


def internal_error() -> ApiProblem:
    return ApiProblem(500, "internal_error", "internal_error", "Something went wrong; retry later.")
