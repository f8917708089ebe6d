"""The OpenAPI schema's error responses: one `Error` shape, declared on each operation for the 4xx (and
the 503) that operation can answer, by a drf-spectacular postprocessing hook so new endpoints get them too;
and request bodies closed to unknown fields, as the API is (queueproject.strict)."""

from django.conf import settings

from queueproject.strict import INT_MAX

ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "Every 4xx (and 503) answer. `detail` says what is wrong with the request as a whole; a key per "
        "input field says what is wrong with that field: a list of messages, or for a list or object "
        "field, the messages by index or key. A 429 or 503 also carries `retry_after` (seconds)."
    ),
    "properties": {
        "detail": {"type": "string"},
        "retry_after": {"type": "integer"},
    },
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}],
    },
}

# Why each can happen: the reason is in the body. Which of them an operation can answer: see `statuses_of`.
ERROR_STATUSES = {
    "400": "Invalid input: each bad field is named (unknown fields, wrong types, sizes over their bound): "
    "a request this schema does not allow.",
    "401": "No valid credentials (a token: `Authorization: Bearer <key>`, or a login session).",
    "403": "Not allowed to do this (your level or rights; a session request without its CSRF token).",
    "404": "No such thing, or not visible to you.",
    "406": "The Accept header asks for something other than JSON.",
    "409": "Not possible in the present state of the job or queue; the field it is about is named.",
    "413": "The request body is larger than the server takes.",
    "415": "The body is not JSON (`Content-Type: application/json`).",
    "422": "Well formed, but it names something that does not exist or cannot be used (an unknown "
    "template, user, team or job; parameters the template refuses; a job no node could ever run), or "
    "an Idempotency-Key reused with another body; the field it is about is named.",
    "429": "Too many requests: retry after `retry_after` seconds (also the Retry-After header).",
    "503": "The database is unavailable: retry after `retry_after` seconds.",
}

# Every operation: a login, rights, content negotiation, throttling and the database can refuse anything.
ALWAYS = ("401", "403", "406", "429", "503")

# What an operation answers for the state of the system (409) or for input that names what it cannot use
# (422), beyond what its shape implies (see `statuses_of`). Keys are "METHOD path".
STATE_STATUSES = {
    "GET /api/v1/analytics": ("422",),  # since not before until, or too far apart
    "PUT /api/v1/admin/quotas": ("422",),  # no such user or team
    "POST /api/v1/users": ("409", "422"),  # the name is taken; no such team
    "PATCH /api/v1/users/{username}": ("409", "422"),  # your own admin rights, a superuser's level
    "POST /api/v1/teams": ("409",),
    "PATCH /api/v1/teams/{name}": ("409",),
    "PATCH /api/v1/levels/{level}": ("422",),  # a default over the maximum
    "POST /api/v1/templates": ("409", "422"),  # the name is taken; the program is not on the server
    "PATCH /api/v1/templates/{name}": ("409", "422"),
    "POST /api/v1/policies": ("409", "422"),  # one policy per type; a time zone the server lacks
    "PUT /api/v1/policies/{id}": ("409", "422"),
    "PATCH /api/v1/policies/{id}": ("409", "422"),
    "DELETE /api/v1/templates/{name}": ("409",),  # jobs or sweeps still point to it
    "DELETE /api/v1/teams/{name}": ("409",),
    "POST /api/v1/jobs": ("409", "422"),  # a disabled template, no_wait; unknown template/params, no node
    "POST /api/v1/jobs/{job_id}/approve": ("409",),
    "POST /api/v1/jobs/{job_id}/cancel": ("409",),
    "POST /api/v1/jobs/{job_id}/pause": ("409",),
    "POST /api/v1/jobs/{job_id}/priority": ("409",),
    "POST /api/v1/jobs/{job_id}/reject": ("409",),
    "POST /api/v1/jobs/{job_id}/resume": ("409",),
    "POST /api/v1/jobs/{job_id}/share": ("422",),
    "POST /api/v1/queue/{job_id}/approve": ("409",),
    "POST /api/v1/queue/{job_id}/cancel": ("409",),
    "POST /api/v1/queue/{job_id}/reject": ("409",),
    "POST /api/v1/queue/reorder": ("404", "409", "422"),  # 404: no such job (`job`)
    "POST /api/v1/sweeps/{sweep_id}/cancel": ("409",),
    "POST /api/v1/simulations": ("409", "422"),  # no node, no history; the trace's or policies' content
    "DELETE /api/v1/me/notifications/webhook": ("404",),  # you have none
    "POST /api/v1/notifications/team-hooks": ("422",),  # no such team
}


def statuses_of(label: str, operation: dict) -> list[str]:
    """The error statuses one operation can answer: those of every operation; 400 when it takes input
    (a body or query parameters); 404 when its path names something; 413 and 415 when it takes a body;
    and those of STATE_STATUSES."""
    parameters = operation.get("parameters", [])
    codes = set(ALWAYS) | set(STATE_STATUSES.get(label, ()))
    if "requestBody" in operation:
        codes |= {"400", "413", "415"}
    if any(p["in"] == "query" for p in parameters):
        codes.add("400")
    if any(p["in"] == "path" for p in parameters):
        codes.add("404")
    return sorted(codes)


# Rules across fields that a serializer's validate() enforces, declared in the schema (oneOf, anyOf, not,
# uniqueItems…): request component name -> JSON schema keywords merged into it. See `schema_rule`.
RULES: dict[str, dict] = {}


def schema_rule(**keywords):
    """Class decorator for an input serializer: declare in its request component the cross-field rule
    its validate() enforces (`properties` are merged field by field), so that a body the schema allows
    is one the API accepts."""

    def register(serializer_class):
        RULES[serializer_class.__name__.removesuffix("Serializer") + "Request"] = keywords
        return serializer_class

    return register


def oas30(schema):
    """A JSON Schema (2020-12) written for jsonschema, as OpenAPI 3.0 says it: `type: [T, "null"]` is
    `nullable`, `const` an enum of one, a numeric `exclusiveMinimum` the boolean form."""
    if isinstance(schema, list):
        return [oas30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: oas30(value) for key, value in schema.items()}
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        out["type"], out["nullable"] = types[0], "null" in schema["type"]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("exclusiveMinimum"), int | float) and not isinstance(out["exclusiveMinimum"], bool):
        out["minimum"], out["exclusiveMinimum"] = out["exclusiveMinimum"], True
    return out


def _apply_rule(schema: dict, rule: dict) -> None:
    for key, value in rule.items():
        if key == "properties":
            for name, extra in value.items():
                schema["properties"][name].update(extra)
        else:
            schema[key] = value


NO_NUL = r"^[^\x00]*$"  # a process cannot take NUL in argv or env, nor PostgreSQL in text


def _closed(schema: dict) -> None:
    """The API refuses fields it does not know (400), integers past what the database holds and strings
    with a NUL character (queueproject.strict: ±INT_MAX unless a field says otherwise): a request body
    says so, and so do its nested objects."""
    if schema.get("type") == "object" and "properties" in schema:
        schema.setdefault("additionalProperties", False)
    if schema.get("type") == "integer":
        schema.setdefault("maximum", INT_MAX)
        schema.setdefault("minimum", -INT_MAX)
    if schema.get("type") == "string" and not {"pattern", "format", "enum"} & schema.keys():
        schema["pattern"] = NO_NUL
    if isinstance(schema.get("additionalProperties"), dict):
        # `propertyNames` is JSON Schema's (OpenAPI 3.1); 3.0 tools that do not know it ignore it
        schema.setdefault("propertyNames", {"pattern": NO_NUL})
        _closed(schema["additionalProperties"])
    for name in ("properties",):
        for child in schema.get(name, {}).values():
            _closed(child)
    for name in ("oneOf", "anyOf", "allOf"):
        for child in schema.get(name, ()):
            _closed(child)
    if isinstance(schema.get("items"), dict):
        _closed(schema["items"])


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the `Error` component, each operation's error responses, and
    request bodies closed to unknown fields."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name, schema in schemas.items():
        if name.endswith("Request"):
            _closed(schema)
            _apply_rule(schema, RULES.get(name, {}))
            if name.startswith("Patched"):  # a partial body: its fields' rules, not which are required
                _apply_rule(
                    schema, {"properties": RULES.get(name.removeprefix("Patched"), {}).get("properties", {})}
                )
    bulk = schemas.get("JobSubmitOneOrManyRequest", {}).get("oneOf", [])
    for variant in bulk:  # a list of jobs: one at least, GPUQ_BULK_MAX_JOBS at most (sweeps.check_size)
        if variant.get("type") == "array":
            variant.update(minItems=1, maxItems=settings.GPUQ_BULK_MAX_JOBS)
    ref = {"$ref": "#/components/schemas/Error"}
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            for code in statuses_of(f"{method.upper()} {path}", operation):
                responses.setdefault(
                    code,
                    {"description": ERROR_STATUSES[code], "content": {"application/json": {"schema": ref}}},
                )
    return result
