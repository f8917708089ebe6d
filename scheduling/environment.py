"""What a job's submitter may put in its environment, parameters and program: the closed environment."""

import os
import re
import shutil
import stat
import string
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError

from queueproject.refusals import Forbidden, Unprocessable
from scheduling.templating import placeholders

MAX_NAME_LENGTH = 128
MAX_VALUE_LENGTH = 4096
MAX_VARIABLES = 64

# The schema keyword that lets one parameter start an argv element with "-" (e.g. a list of flags).
ALLOW_DASH = "x-gpuq-allow-dash"

# gpuq sets these itself, for every job (raw-command users included).
RESERVED_PREFIXES = ("GPUQ_", "CUDA_VISIBLE_DEVICES")

# Names that change which program runs, what it loads (libraries, modules, startup files, options) or
# where it looks for them. A template's own program is fixed by an admin; each of these would let its
# user run something else. Never accepted from template-only users, and a template's allowed_env cannot
# list them. Compared in upper case. Raw-command users may set them: they may run anything anyway.
DANGEROUS_NAMES = frozenset(
    {
        # which program runs, and the shells' startup files and hooks
        "PATH", "CDPATH", "BASH_ENV", "ENV", "BASHOPTS", "SHELLOPTS", "PS4", "PROMPT_COMMAND", "IFS",
        "GLOBIGNORE", "SHELL", "ZDOTDIR", "INPUTRC",
        # where programs read their configuration and per-user startup files (~/.bashrc, site-packages)
        "HOME", "TMPDIR",
        # programs other programs start
        "BROWSER", "EDITOR", "VISUAL", "PAGER", "MANPAGER", "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS",
        "SUDO_ASKPASS", "CC", "CXX", "CPP", "LD", "AR", "AS", "MAKEFLAGS", "MFLAGS",
        # language runtimes' options and module search paths
        "NODE_OPTIONS", "NODE_PATH", "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
        "JAVA_HOME", "GEM_HOME", "GEM_PATH", "BUNDLE_GEMFILE",
        # the C library: character-set modules, locales, host names, messages, the allocator
        "GCONV_PATH", "GLIBC_TUNABLES", "HOSTALIASES", "LOCPATH", "NLSPATH", "RESOLV_HOST_CONF",
        "TERMINFO", "TERMINFO_DIRS",
        # libraries loaded by name: OpenSSL engines and providers, CUDA and NCCL plugins
        "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES", "NCCL_NET_PLUGIN", "NCCL_TUNER_PLUGIN",
        "NCCL_PROFILER_PLUGIN", "TORCH_EXTENSIONS_DIR",
    }
)  # fmt: skip
DANGEROUS_PREFIXES = (
    "LD_",  # the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...
    "DYLD_",
    "PYTHON",  # PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONWARNINGS, PYTHONBREAKPOINT, PYTHONINSPECT, ...
    "PERL",  # PERL5OPT, PERL5LIB, PERLLIB, PERL5DB, ...
    "RUBY",  # RUBYOPT, RUBYLIB
    "NODE_",
    "NPM_CONFIG_",
    "PIP_",
    "LUA_INIT",
    "LUA_PATH",
    "LUA_CPATH",
    "R_PROFILE",
    "R_ENVIRON",
    "R_LIBS",
    "GIT_",  # GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_CONFIG_*, GIT_PAGER, ...
    "MALLOC_",
    "OPENSSL_",
    "CUDA_INJECTION",  # CUDA_INJECTION64_PATH loads a library into every CUDA program
    "XDG_",  # configuration and data folders
    "BASH_FUNC_",  # exported shell functions
)


def dangerous(name: str) -> bool:
    upper = name.upper()
    return upper in DANGEROUS_NAMES or upper.startswith(DANGEROUS_PREFIXES)


def refuse_nul(field: str, value: Any) -> None:
    """A NUL byte cannot pass to a process (argv, environment) nor into PostgreSQL text: refuse it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError({field: "must not contain a NUL byte (\\u0000)"})
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(field, key)
            refuse_nul(field, item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            refuse_nul(field, item)


def check_env(env: Any, *, allowed: dict[str, str] | None) -> dict[str, str]:
    """The job's own variables, checked. `allowed` is the template's allowed_env for a user without the
    raw-command permission (only those names, each value matching its pattern, never a dangerous name),
    or None for a raw-command user (any name but gpuq's reserved ones, strings or numbers)."""
    if not isinstance(env, dict):
        raise ValidationError({"env": "must be an object of NAME: value"})
    if allowed is not None and not isinstance(allowed, dict):
        allowed = {}
    if len(env) > MAX_VARIABLES:
        raise ValidationError({"env": f"at most {MAX_VARIABLES} variables"})
    checked = {}
    for name, value in env.items():
        label = repr(name)[:60] if not isinstance(name, str) else name[:60]
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise Unprocessable({"env": f"{label}: names are ASCII letters, digits and _"})
        if len(name) > MAX_NAME_LENGTH:
            raise Unprocessable({"env": f"{label}…: a name has at most {MAX_NAME_LENGTH} characters"})
        if name.startswith(RESERVED_PREFIXES):
            raise Unprocessable({"env": f"{name}: set by gpuq, not by the job"})
        if allowed is None:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValidationError({"env": f"{name}: the value must be a string or a number"})
            value = str(value)
        else:
            if dangerous(name):
                raise Forbidden(
                    {
                        "env": f"{name}: changes which program runs or what it loads; needs the raw-command permission"
                    }
                )
            if name not in allowed:
                names = ", ".join(sorted(allowed)) or "none"
                raise Unprocessable({"env": f"{name}: not allowed by this template (it allows: {names})"})
            if not isinstance(value, str):
                raise ValidationError({"env": f"{name}: the value must be a string"})
        if "\x00" in value:
            raise ValidationError({"env": f"{name}: the value must not contain a NUL byte"})
        if len(value) > MAX_VALUE_LENGTH:
            raise ValidationError({"env": f"{name}: a value has at most {MAX_VALUE_LENGTH} characters"})
        if allowed is not None and not _matches(allowed[name], value):
            raise Unprocessable({"env": f"{name}: the value must match {allowed[name]}"})
        checked[name] = value
    return checked


def _matches(pattern: Any, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except (re.error, TypeError):  # a row written around clean(): refuse rather than fail
        return False


def check_allowed_env(allowed_env: Any) -> None:
    """A template's allowed_env: {NAME: regex}, no reserved or dangerous name, each pattern compiling."""
    if not isinstance(allowed_env, dict):
        raise Unprocessable({"allowed_env": 'an object of NAME: regex, e.g. {"NCCL_DEBUG": "INFO|WARN"}'})
    for name, pattern in allowed_env.items():
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise Unprocessable({"allowed_env": f"{name!r}: names are ASCII letters, digits and _"})
        if name.startswith(RESERVED_PREFIXES):
            raise Unprocessable({"allowed_env": f"{name}: set by gpuq, not by the job"})
        if dangerous(name):
            raise Unprocessable(
                {"allowed_env": f"{name}: changes which program runs or what it loads; it cannot be allowed"}
            )
        if not isinstance(pattern, str):
            raise Unprocessable({"allowed_env": f"{name}: the pattern must be a string (a regex)"})
        try:
            re.compile(pattern)
        except re.error as error:
            raise Unprocessable({"allowed_env": f"{name}: not a valid regex: {error}"}) from None


def world_executable(path: str) -> bool:
    """Any account may run this file: it and every folder above it have the execute bit for others.
    Jobs run as other accounts than the server's (scheduling/runas.py), so a program found in, say,
    root's home (pyenv's shims) is no use to them."""
    real = Path(path).resolve()
    try:
        return all(p.stat().st_mode & stat.S_IXOTH for p in [*real.parents, real])
    except OSError:
        return False


def absolute_program(program: str, *, field: str) -> str:
    """A program as an absolute path, found on the server's PATH when given bare: the first one there
    that every account may run, else the first one found at all."""
    if os.path.isabs(program):
        return program
    found = [
        os.path.abspath(hit)
        for folder in os.get_exec_path()
        if (hit := shutil.which(program, path=folder or os.curdir)) is not None
    ]
    if not found:
        raise Unprocessable({field: f"{program}: not found on the server; give an absolute path"})
    return next((hit for hit in found if world_executable(hit)), found[0])


def resolve_program(argv_template: list[str], *, field: str) -> str:
    """A template's program (its first element), which no parameter may fill, as an absolute path."""
    if placeholders(argv_template[:1]):
        raise ValidationError({field: "the program (first element) cannot hold a {placeholder}"})
    return absolute_program(argv_template[0], field=field)


def check_leading_dashes(argv_templates: list[list[str]], params_schema: dict, params: dict) -> None:
    """Refuse a string parameter that would begin an argv element with "-" (read as an option, e.g.
    `--evil=...`) unless its schema sets `"x-gpuq-allow-dash": true`. `--lr={lr}` cannot start a new
    option and numbers (-0.5) are values, so both pass."""
    properties = (params_schema or {}).get("properties") or {}
    for argv_template in argv_templates:
        for element in argv_template:
            at_start = True
            for literal, name, _, _ in string.Formatter().parse(element):
                if literal:
                    at_start = False
                if name is None:
                    continue
                if name not in params:  # {manifest}: a path gpuq fills in
                    at_start = False
                    continue
                value = params[name]
                if at_start and isinstance(value, str):
                    schema = properties.get(name)
                    allowed = isinstance(schema, dict) and schema.get(ALLOW_DASH) is True
                    if value.startswith("-") and not allowed:
                        raise ValidationError(
                            {
                                "params": f"{name}: must not start with '-' (it would be read as an option); "
                                f'the template\'s schema may allow it with "{ALLOW_DASH}": true'
                            }
                        )
                    at_start = value == ""  # an empty value lets the next placeholder start the element
                else:
                    at_start = False


def check_template_argv(template, params: dict, argv: list[str]) -> list[str]:
    """The rendered argv of a template job, its parameters checked for leading dashes and its program
    absolute (templates saved before programs were resolved on save are resolved now, or refused)."""
    templates = [template.argv_template] + ([template.batch_argv_template] if template.batchable else [])
    check_leading_dashes(templates, template.params_schema, params)
    try:
        resolve_program(template.argv_template, field="template")
        program = absolute_program(argv[0], field="template")
    except ValidationError as error:
        raise ValidationError(
            {
                "template": f"{template.name}: {error.message_dict['template'][0]} (an admin must fix the template)"
            }
        ) from None
    return [program, *argv[1:]]
