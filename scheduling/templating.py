"""Fill a template's argv from parameters: each placeholder becomes text inside one argv element."""

import functools
import json
import string
from typing import Any

import jsonschema
from django.core.exceptions import ValidationError

from queueproject.refusals import Unprocessable

_FORMATTER = string.Formatter()


def placeholders(argv_template: list[str]) -> set[str]:
    names = set()
    for element in argv_template:
        for _, name, spec, conversion in _FORMATTER.parse(element):
            if name is None:
                continue
            if not name.isidentifier() or spec or conversion:
                raise Unprocessable(
                    {"argv_template": f"{{{name}}}: placeholders are plain names like {{lr}}"}
                )
            names.add(name)
    return names


def check_template(argv_template: Any, params_schema: Any) -> None:
    """Raise ValidationError unless the argv template and the schema are well formed."""
    if (
        not isinstance(argv_template, list)
        or not argv_template
        or not all(isinstance(element, str) for element in argv_template)
    ):
        raise ValidationError({"argv_template": "must be a non-empty list of strings"})
    names = placeholders(argv_template)
    if not isinstance(params_schema or {}, dict):
        raise ValidationError({"params_schema": 'must be a JSON schema object, e.g. {"type": "object"}'})
    try:
        jsonschema.Draft202012Validator.check_schema(params_schema or {})
    except jsonschema.SchemaError as error:
        raise Unprocessable({"params_schema": f"not a valid JSON schema: {error.message}"}) from None
    properties = (params_schema or {}).get("properties")
    if (params_schema or {}).get("additionalProperties") is False and isinstance(properties, dict):
        unknown = sorted(names - properties.keys())
        if unknown:  # no parameters could ever fill them: every submit would fail
            raise Unprocessable(
                {"argv_template": f"placeholders {unknown} are not properties of params_schema"}
            )


@functools.lru_cache(maxsize=64)
def _validator(schema: str) -> jsonschema.Draft202012Validator:
    """One validator per schema (by its JSON text): a bulk submission checks thousands of jobs with it."""
    return jsonschema.Draft202012Validator(json.loads(schema))


def render_argv(argv_template: list[str], params_schema: dict, params: dict) -> list[str]:
    """Validate `params` against the schema and return the argv with placeholders filled."""
    if not isinstance(params, dict):
        raise ValidationError({"params": "must be an object"})
    validator = _validator(json.dumps(params_schema or {}, sort_keys=True))
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        raise Unprocessable(
            {"params": [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]}
        )
    missing = sorted(placeholders(argv_template) - params.keys())
    if missing:
        raise Unprocessable({"params": [f"{name}: required by the template" for name in missing]})
    rendered = []
    for element in argv_template:
        pieces = []
        for literal, name, _, _ in _FORMATTER.parse(element):
            pieces.append(literal)
            if name is not None:
                value = params[name]
                if isinstance(value, (dict, list)):
                    raise Unprocessable({"params": f"{name}: must be a string, number or boolean"})
                pieces.append(str(value))
        rendered.append("".join(pieces))
    return rendered


def check_batching(template) -> None:
    """A batchable template needs a batch argv whose placeholders are key parameters or {manifest}."""
    if not isinstance(template.batch_key_params, list) or not all(
        isinstance(name, str) for name in template.batch_key_params
    ):
        raise ValidationError({"batch_key_params": "a list of parameter names"})
    try:
        check_template(template.batch_argv_template, {})
    except ValidationError as error:
        raise Unprocessable({"batch_argv_template": error.message_dict["argv_template"]}) from None
    unknown = placeholders(template.batch_argv_template) - {"manifest", *template.batch_key_params}
    if unknown:
        raise Unprocessable(
            {"batch_argv_template": f"only {{manifest}} and key parameters may appear, not {sorted(unknown)}"}
        )
    if template.batch_max_size < 2:
        raise Unprocessable({"batch_max_size": "at least 2"})
