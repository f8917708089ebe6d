"""What a job reports in its GPUQ_PROGRESS_FILE, bounded: the file is read up to
GPUQ_PROGRESS_MAX_BYTES, and a larger (or too deeply nested) one is replaced by a short reason, so the job
row and its progress events never store more than the setting allows."""

import json

from queueproject.strict import json_problem


def parse(raw: bytes | None, limit: int) -> dict | None:
    """The progress to store from the file's first `limit + 1` bytes (None: no file, or not JSON, which
    is kept as no news: the job may be writing it). A JSON value that is not an object is `{"value": …}`."""
    if raw is None:
        return None
    if len(raw) > limit:
        return {"rejected": f"the progress file is over {limit} bytes (GPUQ_PROGRESS_MAX_BYTES); write less"}
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    except RecursionError:  # "[[[[…" within the limit: never let it stop the executor's loop
        return {"rejected": "the progress file is nested too deeply; write a flat JSON object"}
    if data is None:
        return None
    if problem := json_problem(data, max_bytes=limit):  # PostgreSQL refuses a NUL; pages need no deeper JSON
        return {"rejected": f"the progress file is refused: {problem}"}
    return data if isinstance(data, dict) else {"value": data}
