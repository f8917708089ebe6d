"""Scheduling policies stored in the database: the config each type takes, its validation, and the
planner's `Policies` built from the enabled rows."""

from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
from django.core.exceptions import ValidationError

from queueproject.refusals import Unprocessable
from scheduling import planner
from scheduling.models import PolicyType, SchedulingPolicy

_COUNT = {"type": ["integer", "null"], "minimum": 0}
_HHMM = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"}
_TZ = {"type": "string", "minLength": 1}

# Each type's config: JSON schema (properties are optional; defaults apply) and its defaults.
SCHEMAS: dict[str, dict] = {
    PolicyType.CONCURRENCY: {
        "properties": {"max_concurrent": _COUNT, "user_max_concurrent": _COUNT, "team_max_concurrent": _COUNT}
    },
    PolicyType.FAIR_SHARE: {"properties": {"half_life_hours": {"type": "number", "exclusiveMinimum": 0}}},
    PolicyType.AGEING: {
        "properties": {
            "starvation_threshold_minutes": {"type": "number", "minimum": 0},
            "boost_per_hour": {"type": "number", "minimum": 0},
            "max_boost": {"type": "number", "minimum": 0},
        }
    },
    PolicyType.QUOTA: {
        "properties": {
            "timezone": _TZ,
            "warn_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "admit": {
                "enum": ["time_limit", "any_remaining"],
                "description": "admit a job when its time limit fits in what remains, or when any remains",
            },
        }
    },
    PolicyType.OFF_PEAK: {"properties": {"start": _HHMM, "end": _HHMM, "timezone": _TZ}},
    PolicyType.APPROVAL: {
        "properties": {
            "max_cost": {"type": ["number", "null"], "minimum": 0},
            "price_per_gpu_hour": {
                "type": "object",
                "additionalProperties": {"type": "number", "minimum": 0},
            },
            "max_gpus": _COUNT,
            "levels": {"type": "array", "items": {"enum": ["admin", "lead", "researcher", "viewer"]}},
        }
    },
    PolicyType.SERIAL: {"properties": {"scope": {"enum": ["global", "node"]}}},
    PolicyType.EXPIRY: {
        "properties": {"max_wait_hours": {"type": "number", "exclusiveMinimum": 0}},
        "required": ["max_wait_hours"],
    },
    PolicyType.BACKFILL: {"properties": {"depth": {"type": "integer", "minimum": 1, "maximum": 10000}}},
    PolicyType.PREEMPTION: {
        "properties": {
            "min_priority": {"type": "integer"},
            "max_victim_priority": {"type": "integer"},
            "min_runtime_seconds": {"type": "number", "minimum": 0},
        }
    },
    PolicyType.QUEUE_PAUSE: {"properties": {"reason": {"type": "string", "maxLength": 300}}},
    PolicyType.RETRY: {
        "properties": {
            "exit_codes": {
                "oneOf": [{"type": "array", "items": {"type": "integer"}}, {"const": "any"}],
                "description": 'exit codes that retry (a signal N is -N), or "any" non-zero code',
            },
            "time_limit": {"type": "boolean"},
            "stalled": {"type": "boolean"},
            "backoff_seconds": {"type": "number", "minimum": 0},
            "backoff_factor": {"type": "number", "minimum": 1},
            "max_backoff_seconds": {"type": "number", "minimum": 0},
        }
    },
    PolicyType.WATCHDOG: {
        "properties": {"stall_minutes": {"type": "number", "exclusiveMinimum": 0}},
        "required": ["stall_minutes"],
    },
    PolicyType.ORDERING: {
        "properties": {
            "within_priority": {
                "enum": list(planner.ORDERINGS),
                "description": "fifo, shortest time limit first (none last), or fewest GPUs first",
            }
        }
    },
    PolicyType.RETENTION: {
        "properties": {
            "days": {
                "type": "integer",
                "minimum": 1,
                "maximum": 3650,
                "description": "finished jobs older than this many days are archived and removed, daily",
            }
        }
    },
    PolicyType.IDLE_RECLAIM: {
        "properties": {
            "utilization_percent": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 100,
                "description": "a job is idle while every one of its GPUs reads below this utilization",
            },
            "idle_minutes": {"type": "number", "exclusiveMinimum": 0, "description": "idle this long: warn"},
            "grace_minutes": {"type": "number", "minimum": 0, "description": "after the warning: act"},
            "action": {
                "enum": ["stop", "report"],
                "description": "stop the job (reason idle), or only report",
            },
        }
    },
}
DEFAULTS: dict[str, dict] = {
    PolicyType.FAIR_SHARE: {"half_life_hours": 24},
    PolicyType.AGEING: {"starvation_threshold_minutes": 1440, "boost_per_hour": 1, "max_boost": 20},
    PolicyType.QUOTA: {"timezone": "UTC", "warn_fraction": 0.8, "admit": "time_limit"},
    PolicyType.OFF_PEAK: {"start": "22:00", "end": "08:00", "timezone": "UTC"},
    PolicyType.APPROVAL: {"price_per_gpu_hour": {"*": 1.0}, "levels": []},
    PolicyType.SERIAL: {"scope": "global"},
    PolicyType.BACKFILL: {"depth": 100},
    PolicyType.PREEMPTION: {"min_priority": 30, "max_victim_priority": 0, "min_runtime_seconds": 0},
    PolicyType.RETRY: {
        "exit_codes": "any",
        "time_limit": False,
        "stalled": True,
        "backoff_seconds": 30,
        "backoff_factor": 2,
        "max_backoff_seconds": 3600,
    },
    PolicyType.RETENTION: {"days": 30},
    PolicyType.IDLE_RECLAIM: {
        "utilization_percent": 5,
        "idle_minutes": 60,
        "grace_minutes": 30,
        "action": "stop",
    },
    PolicyType.ORDERING: {"within_priority": "fifo"},
}


def validate_config(policy_type: str, config) -> dict:
    """Return the config with defaults filled in, or raise ValidationError naming the problem."""
    if policy_type not in SCHEMAS:
        raise ValidationError({"type": f"unknown policy type {policy_type!r}; one of {', '.join(SCHEMAS)}"})
    if not isinstance(config, dict):
        raise ValidationError({"config": "must be a JSON object"})
    schema = {"type": "object", "additionalProperties": False, **SCHEMAS[policy_type]}
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise ValidationError(
            {"config": [f"{'.'.join(map(str, e.absolute_path)) or policy_type}: {e.message}" for e in errors]}
        )
    merged = {**DEFAULTS.get(policy_type, {}), **config}
    if "timezone" in merged:
        try:
            ZoneInfo(merged["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise Unprocessable({"config": f"timezone: unknown time zone {merged['timezone']!r}"}) from None
    if policy_type == PolicyType.OFF_PEAK and merged["start"] == merged["end"]:
        raise Unprocessable({"config": "start and end must differ (22:00–08:00 wraps midnight)"})
    return merged


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def enabled_configs() -> dict[str, dict]:
    return {
        row.type: {**DEFAULTS.get(row.type, {}), **row.config}
        for row in SchedulingPolicy.objects.filter(enabled=True)
    }


def to_planner(configs: dict[str, dict]) -> planner.Policies:
    """The planner's view of the enabled policies."""
    limits = configs.get(PolicyType.CONCURRENCY, {})
    ageing = configs.get(PolicyType.AGEING)
    off_peak = configs.get(PolicyType.OFF_PEAK)
    expiry = configs.get(PolicyType.EXPIRY)
    preemption = configs.get(PolicyType.PREEMPTION)
    return planner.Policies(
        limits=planner.Limits(
            max_concurrent=limits.get("max_concurrent"),
            user_max_concurrent=limits.get("user_max_concurrent"),
            team_max_concurrent=limits.get("team_max_concurrent"),
        ),
        fair_share=PolicyType.FAIR_SHARE in configs,
        ageing=planner.Ageing(
            threshold_seconds=ageing["starvation_threshold_minutes"] * 60,
            boost_per_hour=ageing["boost_per_hour"],
            max_boost=ageing["max_boost"],
        )
        if ageing
        else None,
        off_peak=planner.OffPeak(_hhmm(off_peak["start"]), _hhmm(off_peak["end"]), off_peak["timezone"])
        if off_peak
        else None,
        serial=configs[PolicyType.SERIAL]["scope"] if PolicyType.SERIAL in configs else None,
        expiry_seconds=expiry["max_wait_hours"] * 3600 if expiry else None,
        backfill=PolicyType.BACKFILL in configs,
        backfill_depth=configs.get(PolicyType.BACKFILL, {}).get("depth", 100),
        preemption=planner.Preemption(
            preemption["min_priority"],
            preemption["max_victim_priority"],
            preemption.get("min_runtime_seconds", 0),
        )
        if preemption
        else None,
        queue_paused=PolicyType.QUEUE_PAUSE in configs,
        quota_admit=configs.get(PolicyType.QUOTA, {}).get("admit", "time_limit"),
        within_priority=configs.get(PolicyType.ORDERING, {}).get("within_priority", "fifo"),
    )


@dataclass(frozen=True)
class Cost:
    """A job's estimated cost as the approval rule prices it: GPUs × hours × price per GPU-hour."""

    gpus: int
    hours: float
    price_per_gpu_hour: float
    total: float


def approval_cost(
    rule: dict,
    *,
    gpu_count: int,
    time_limit_seconds: float | None,
    gpu_models: list[str],
    default_runtime: float,
) -> Cost:
    """The cost the approval rule `rule` gives a job: the highest price among the GPU models present that
    a `price_per_gpu_hour` pattern matches (else its `*` price), over its time limit (else the default
    run time)."""
    from fnmatch import fnmatchcase

    prices = rule.get("price_per_gpu_hour", {})
    matching = [
        price for pattern, price in prices.items() if any(fnmatchcase(m, pattern) for m in gpu_models)
    ]
    price = max(matching, default=prices.get("*", 0.0))
    hours = (time_limit_seconds or default_runtime) / 3600
    return Cost(gpu_count, hours, price, gpu_count * hours * price)


def approval_reason(
    configs: dict[str, dict],
    *,
    level: str,
    gpu_count: int,
    time_limit_seconds: float | None,
    gpu_models: list[str],
    default_runtime: float,
) -> str | None:
    """Why a new job must be approved before it may run, or None. Admins' jobs never wait for approval."""
    rule = configs.get(PolicyType.APPROVAL)
    if not rule or level == "admin":
        return None
    if level in rule.get("levels", []):
        return f"jobs of {level}s need approval"
    if rule.get("max_gpus") is not None and gpu_count > rule["max_gpus"]:
        return f"{gpu_count} GPUs is more than {rule['max_gpus']} without approval"
    if rule.get("max_cost") is not None:
        cost = approval_cost(
            rule,
            gpu_count=gpu_count,
            time_limit_seconds=time_limit_seconds,
            gpu_models=gpu_models,
            default_runtime=default_runtime,
        )
        if cost.total > rule["max_cost"]:
            return (
                f"estimated cost {cost.total:.2f} ({gpu_count} GPU × {cost.hours:.1f} h × "
                f"{cost.price_per_gpu_hour:g}) exceeds {rule['max_cost']:g}"
            )
    return None


def retry_delay(
    configs: dict[str, dict], *, cause: str, exit_code: int | None, failures: int
) -> float | None:
    """Seconds to wait before retrying a failed attempt, or None when it must not retry.

    `cause` is "exit_code", "time_limit" or "stalled"; `failures` counts this job's failed attempts so
    far, this one included (the backoff doubles, by default, with each)."""
    rule = configs.get(PolicyType.RETRY)
    if not rule:
        return None
    if cause == "exit_code":
        codes = rule["exit_codes"]
        if exit_code in (None, 0) or (codes != "any" and exit_code not in codes):
            return None
    elif cause in ("time_limit", "stalled"):
        if not rule[cause]:
            return None
    else:
        return None
    delay = rule["backoff_seconds"] * rule["backoff_factor"] ** max(0, failures - 1)
    return min(delay, rule["max_backoff_seconds"])


def stall_timeout(configs: dict[str, dict], job_timeout: float | None) -> float | None:
    """Seconds without output or progress after which the watchdog ends a job (the job's own setting
    wins over the policy's)."""
    if job_timeout:
        return float(job_timeout)
    rule = configs.get(PolicyType.WATCHDOG)
    return rule["stall_minutes"] * 60 if rule else None


def set_policy(policy_type: str, *, enabled: bool, config: dict | None = None) -> SchedulingPolicy:
    """Create or update the policy of a type (validated on save)."""
    row = SchedulingPolicy.objects.filter(type=policy_type).first() or SchedulingPolicy(type=policy_type)
    if config is not None:
        row.config = config
    row.enabled = enabled
    row.save()
    return row


# What a fresh install starts with (seed 001): at most 5 jobs running at once, 2 per user, no team cap.
# A concurrency policy's missing keys mean "no limit"; these are written out in full, so the admin sees
# and changes the real numbers. Backfill too, in FIFO order: the what-if simulator's evidence (README,
# *What-if simulator*: mean wait 0.09x strict order's on the 176-GPU trace, 0.13x on one 8-GPU machine,
# no GPU-count class worse); shortest-time-limit-first measured better still on average but worse for
# 2-4 GPU jobs on one machine, and it would break FIFO within a priority and operators' reordering.
FRESH_INSTALL: dict[str, dict] = {
    PolicyType.CONCURRENCY: {"max_concurrent": 5, "user_max_concurrent": 2, "team_max_concurrent": None},
    PolicyType.BACKFILL: {"depth": 100},
}
# Installed only on a database without any policy yet: an existing install that runs without backfill
# chose strict order, and an upgrade must not turn it on.
FRESH_ONLY = {PolicyType.BACKFILL}


def install_defaults() -> list[str]:
    """Create FRESH_INSTALL's policies whose type has no row yet; return the types created. A row that
    exists, even disabled, is the admin's choice and is left alone (to run without limits, disable the
    row or set its keys to null: a deleted row comes back at the next start). FRESH_ONLY types are made
    only when no policy exists at all (a fresh install)."""
    made = []
    fresh = not SchedulingPolicy.objects.exists()
    for policy_type, config in FRESH_INSTALL.items():
        if policy_type in FRESH_ONLY and not fresh:
            continue
        if not SchedulingPolicy.objects.filter(type=policy_type).exists():
            set_policy(policy_type, enabled=True, config=dict(config))
            made.append(policy_type)
    return made
