"""A typed client generated from the published OpenAPI schema at test time (datamodel-code-generator,
pydantic v2 models; nothing generated is committed), and a way to parse a recorded answer with it."""

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pydantic

# Strict enough that a client would notice a lie: `null` only where declared nullable, no coercion ("1"
# is not an int), and (see `closed`) no undeclared field. Email format is kept a plain string: pydantic's
# EmailStr needs one more dependency (email-validator) for a check the schemathesis test already makes.
OPTIONS = [
    "--input-file-type=openapi",
    "--output-model-type=pydantic_v2.BaseModel",
    "--use-annotated",
    "--strict-nullable",
    "--strict-types",
    "str",
    "int",
    "float",
    "bool",
    "--type-mappings",
    "email=string",
    "--target-python-version=3.11",
    "--formatters=builtin",
    "--disable-timestamp",
]


def closed(node):
    """Every object schema with declared properties and no word on others made closed
    (`additionalProperties: false`), so that the generated model forbids an undeclared field. (The
    generator's own `--extra-fields forbid` also forbids the extra keys a schema does declare.)"""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            closed(value)
    elif isinstance(node, list):
        for value in node:
            closed(value)
    return node


def responses_named(schema: dict) -> tuple[dict, dict]:
    """The schema, closed, with every inline JSON response body (a list, say) moved into its own component, and
    {(method, path template, status): component name} for every JSON response, so that each has a model."""
    schema = closed(copy.deepcopy(schema))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    named = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                body = response.get("content", {}).get("application/json", {})
                if "schema" not in body:
                    continue
                ref = body["schema"].get("$ref")
                if ref is None:
                    ref = f"#/components/schemas/{operation['operationId'].title().replace('_', '')}{status}"
                    components[ref.split("/")[-1]] = body["schema"]
                    body["schema"] = {"$ref": ref}
                named[(method.upper(), path, status)] = ref.split("/")[-1]
    return schema, named


def generate(schema: dict, directory: Path) -> ModuleType:
    """Pydantic models for every component of `schema`, written into `directory` and imported."""
    source, target = directory / "schema.json", directory / "gpuq_models.py"
    source.write_text(json.dumps(schema))
    codegen = Path(sys.executable).with_name("datamodel-codegen")
    subprocess.run(
        [codegen, f"--input={source}", f"--output={target}", *OPTIONS],
        check=True,
        capture_output=True,
        text=True,
    )
    spec = importlib.util.spec_from_file_location("gpuq_models", target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves generic root models through sys.modules
    spec.loader.exec_module(module)
    return module


def parse_problem(models: ModuleType, component: str, answer: httpx.Response) -> str | None:
    """Why the typed client could not parse `answer` as `component`, or None when it could."""
    model = getattr(models, component, None)
    if model is None:
        return f"the generated client has no model {component}"
    try:
        model.model_validate_json(answer.content)
    except pydantic.ValidationError as failure:
        return f"{component}: {failure}"[:1500]
    return None
