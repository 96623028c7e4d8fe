"""The service's OpenAPI 3.0 document, served at ``GET /openapi.json``.

Contract: :func:`document` describes every route this process serves (the embeddings route
only when it is enabled), the request bodies it accepts, and every status it answers with,
in OpenAI's error shape. It is what clients generate code from, and what the API's fuzz
test generates requests from, so a route or a status added without it is a test failure.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "The request is invalid; the error names the parameter.",
        401: "The API key is missing or not valid.",
        404: "No such model.",
        413: "The request body is larger than ``limits.max_body_bytes``.",
        415: "The body is not JSON (when ``limits.require_json_content_type``).",
        429: "A rate limit of the API key was reached; retry after ``Retry-After``.",
        500: "The backend failed (injected faults) or PII screening failed.",
        502: "The upstream failed or could not be reached.",
        503: "Overloaded, or the rate limiter or upstream is unavailable; see Retry-After.",
        504: "The upstream did not answer in time.",
    }
    return {
        str(status): {
            "description": reasons[status],
            "content": {"application/json": {"schema": ERROR}},
        }
        for status in statuses
    }


_TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
}
_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {
            "type": "string",
            "enum": ["system", "developer", "user", "assistant", "tool"],
        },
        "content": {
            "nullable": True,
            "oneOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}],
        },
        "name": {"type": "string"},
    },
}
_CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
        "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
        "stream": {"type": "boolean", "nullable": True},
        "stream_options": {
            "type": "object",
            "nullable": True,
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "n": {"type": "integer", "enum": [1], "nullable": True},
        "user": {"type": "string"},
    },
}
_USAGE = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    },
}
_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices", "usage"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"type": "string"},
                            "content": {"type": "string"},
                        },
                    },
                    "finish_reason": {"type": "string"},
                },
            },
        },
        "usage": _USAGE,
    },
}
_MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["model"]},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}
_STATUS = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}},
}
_EMBEDDINGS_REQUEST = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string"},
        "input": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        },
        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
    },
}
_EMBEDDINGS = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["object", "index", "embedding"],
                "properties": {
                    "object": {"type": "string", "enum": ["embedding"]},
                    "index": {"type": "integer"},
                    "embedding": {
                        "oneOf": [
                            {"type": "array", "items": {"type": "number"}},
                            {"type": "string", "description": "base64 of float32 values"},
                        ]
                    },
                },
            },
        },
        "model": {"type": "string"},
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "total_tokens"],
            "properties": {
                "prompt_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
            },
        },
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document(version: str, *, embeddings: bool = False) -> dict[str, Any]:
    """Return the OpenAPI document of a service at ``version``."""
    api_errors = (401, 429, 503)
    paths: dict[str, Any] = {
        "/v1/chat/completions": {
            "post": {
                "summary": "Create a chat completion (streamed as server-sent events on request)",
                "operationId": "createChatCompletion",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _CHAT_REQUEST}},
                },
                "responses": {
                    "200": {
                        "description": "The completion, or its events when ``stream`` is true.",
                        "content": {
                            "application/json": {"schema": _COMPLETION},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 404, 413, 415, 500, 502, 504, *api_errors),
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "List the models served",
                "operationId": "listModels",
                "security": [{"bearer": []}],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["object", "data"],
                            "properties": {
                                "object": {"type": "string", "enum": ["list"]},
                                "data": {"type": "array", "items": _MODEL},
                            },
                        },
                        "The models.",
                    ),
                    **_errors(*api_errors),
                },
            }
        },
        "/v1/models/{model}": {
            "get": {
                "summary": "Describe a model",
                "operationId": "retrieveModel",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _json(_MODEL, "The model."), **_errors(404, *api_errors)},
            }
        },
        "/health": {
            "get": {
                "summary": "Liveness: 200 while the process serves",
                "operationId": "health",
                "responses": {"200": _json(_STATUS, "Alive.")},
            }
        },
        "/ready": {
            "get": {
                "summary": "Readiness: whether to route traffic here, and what is missing",
                "operationId": "ready",
                "responses": {
                    "200": _json(_STATUS, "Ready, or degraded (the body says what is missing)."),
                    "503": _json(_STATUS, "Starting, draining, or missing what it needs."),
                },
            }
        },
    }
    if embeddings:
        paths["/v1/embeddings"] = {
            "post": {
                "summary": "Create embeddings of one or more texts",
                "operationId": "createEmbedding",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _EMBEDDINGS_REQUEST}},
                },
                "responses": {
                    "200": _json(_EMBEDDINGS, "One embedding per input, in order."),
                    **_errors(400, 404, 413, 415, 500, *api_errors),
                },
            }
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "inferops inference service",
            "version": version,
            "description": "An OpenAI-compatible API with caching, API keys, rate limits, "
            "PII masking and an audit log. Errors use OpenAI's error shape.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": "string", "nullable": True},
                                "code": {"type": "string", "nullable": True},
                            },
                        }
                    },
                }
            },
        },
    }
