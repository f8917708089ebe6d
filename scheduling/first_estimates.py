"""Each job's first estimated start, recorded once so analytics can compare it with the actual start
(the estimate error users judge). Later estimates never overwrite it. The stored plan (planstore.save)
records them each time it estimates: a job that starts before its first estimate round has none."""

from datetime import datetime

from django.db.models import Case, DateTimeField, Value, When

from scheduling.models import Job

_CHUNK = 500


def record_first_estimates(estimates: dict[int, datetime]) -> int:
    """Set `first_estimated_start` of the given jobs to their estimate where it is still empty: one
    UPDATE … WHERE first_estimated_start IS NULL per chunk of jobs. Returns the rows written."""
    ids = sorted(estimates)
    written = 0
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        written += Job.objects.filter(pk__in=chunk, first_estimated_start__isnull=True).update(
            first_estimated_start=Case(
                *(When(pk=pk, then=Value(estimates[pk])) for pk in chunk),
                output_field=DateTimeField(),
            )
        )
    return written
