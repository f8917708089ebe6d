"""scheduling.fastinsert: rows it inserts read back exactly as rows the ORM saves, with ids taken from
the database that later inserts never take again."""

from datetime import UTC, datetime

import pytest
from django.db import transaction

from scheduling import fastinsert
from scheduling.models import Event, Job, JobTemplate
from scheduling.states import Status

pytestmark = pytest.mark.django_db


def fields(alice, team):
    template = JobTemplate.objects.create(name="t", argv_template=["/bin/echo", "{x}"])
    return dict(
        owner=alice,
        team=team,
        template=template,
        name="ünïcode [0]",
        params={"x": 1.5, "nested": {"a": [1, None, "b"]}},
        argv=["/bin/echo", 'it\'s "quoted"'],
        env={"K": "v"},
        gpu_count=2,
        priority=-10,
        queue_order=1764470000.123456,
        start_after=datetime(2026, 12, 1, 20, 0, 0, 123456, tzinfo=UTC),
        off_peak_only=True,
        status=Status.SCHEDULED,
        wait_reason="begin_time",
        resources=["model:flux-dev"],
        min_gpu_memory_mb=None,
        node_labels={"gpu": "a100*"},
        submitted_at=datetime(2026, 11, 30, 4, 0, 0, 1, tzinfo=UTC),
        array_index=0,
    )


def test_a_row_reads_back_as_the_orm_saves_it(alice, team):
    saved = Job.objects.create(**fields(alice, team))
    names = [f.attname for f in Job._meta.concrete_fields if not f.primary_key]
    made = Job(**{name: getattr(saved, name) for name in names})
    with transaction.atomic():
        fastinsert.insert([made], ids=True)
    assert made.pk is not None and made.pk != saved.pk
    read = list(Job.objects.filter(pk__in=[saved.pk, made.pk]).order_by("pk").values())
    for row in read:
        row.pop("id")
    assert read[0] == read[1]
    assert read[0]["status"] == "scheduled" and read[0]["params"]["nested"] == {"a": [1, None, "b"]}


def test_ids_are_never_taken_again(alice, team):
    first = Job.objects.create(owner=alice, argv=["/bin/true"])
    with transaction.atomic():
        made = [Job(owner=alice, argv=["/bin/true"], queue_order=1.0) for _ in range(3)]
        fastinsert.insert(made, ids=True)
    assert [j.pk for j in made] == sorted(j.pk for j in made) and made[0].pk > first.pk
    Job.objects.filter(pk=made[-1].pk).delete()  # the highest, gone: its id is still not given again
    later = Job.objects.create(owner=alice, argv=["/bin/true"])
    with transaction.atomic():
        again = [Job(owner=alice, argv=["/bin/true"], queue_order=1.0)]
        fastinsert.insert(again, ids=True)
    assert made[-1].pk < later.pk < again[0].pk
    assert Job.objects.create(owner=alice, argv=["/bin/true"]).pk > again[0].pk


def test_rows_without_ids_get_the_next_ones(alice):
    with transaction.atomic():
        fastinsert.insert([Event(kind=Event.Kind.QUEUE, data={"changed": i}) for i in range(3)])
    assert [e.data["changed"] for e in Event.objects.filter(kind=Event.Kind.QUEUE).order_by("id")] == [
        0,
        1,
        2,
    ]
