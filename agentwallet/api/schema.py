"""The API's error answers in the OpenAPI schema, declared once.

Every error the API answers has one shape, made by `agentwallet.api.exceptions.error_body`:
`{"error": {"code", "message", "fields"}}`. drf-spectacular documents only the answers
a view declares, so this postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])

- adds the errors that follow from how an operation is reached: 400 for every one (the
  URL, query or body can be malformed), 401 where credentials are needed, 403 for the
  unsafe methods of key or session operations (staff-only actions, a session without
  its CSRF token), 404 where the path names something, 413 and 415 where there is a
  body, 503 where a key or session is looked up in the database;
- gives the error shape to every 4xx and 5xx answer, including the ones a view declares
  itself for what only it knows (a 409, a 404 without path parameters, a 403 on a
  read), as `error_response(description)`, which has no body of its own.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse

ERROR_COMPONENT = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer of the API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Machine-readable: invalid, parse_error, not_found, "
                    "not_authenticated, authentication_failed, permission_denied, "
                    "conflict, payload_too_large, ...",
                },
                "message": {"type": "string", "description": "For people."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "For invalid input, each field's problems (lists of "
                    "messages, nested as the body is); otherwise empty.",
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

UNSAFE_METHODS = {"post", "put", "patch", "delete"}
HTTP_METHODS = {"get", "head", "options", "trace", *UNSAFE_METHODS}
SESSION_OR_KEY = {"bearerKey", "cookieAuth"}

BAD_REQUEST = "Invalid input (`fields` names each problem), or a malformed URL or body."
UNAUTHENTICATED = "Missing, invalid, expired or revoked credentials."
FORBIDDEN = (
    "Not allowed with these credentials: a staff-only action with an agent key, or a "
    "portal session without its CSRF token."
)
NOT_FOUND = "Not found, or not visible to this key (the same answer for both)."
TOO_LARGE = "The body is larger than the server accepts."
UNSUPPORTED = "The body is not JSON (`Content-Type: application/json`)."
UNAVAILABLE = "The database is down or did not answer in time; try again."


def error_response(description: str) -> OpenApiResponse:
    """An error answer only the view knows of (`responses={409: error_response(...)}`);
    the hook gives it the error shape."""
    return OpenApiResponse(description=description)


STAFF_ONLY = error_response(FORBIDDEN)


def operation_errors(operation: dict[str, Any], *, path: str, method: str) -> dict[str, str]:
    """The error statuses an operation can answer whatever its view does, with why."""
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    errors = {"400": BAD_REQUEST}
    if schemes:
        errors["401"] = UNAUTHENTICATED
    if schemes & SESSION_OR_KEY and method in UNSAFE_METHODS:
        errors["403"] = FORBIDDEN
    if "{" in path:
        errors["404"] = NOT_FOUND
    if "requestBody" in operation:
        errors["413"] = TOO_LARGE
        errors["415"] = UNSUPPORTED
    if schemes & SESSION_OR_KEY:
        errors["503"] = UNAVAILABLE
    return errors


def error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: see the module docstring."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in operation_errors(operation, path=path, method=method).items():
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if code.startswith(("4", "5")) and "content" not in response:
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
            operation["responses"] = dict(sorted(responses.items()))
    return result
