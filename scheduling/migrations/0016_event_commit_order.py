# Events get `seq`, their place in commit order, assigned by the database as the writing transaction
# commits (see scheduling/live.py for why this makes the live stream gapless), and on PostgreSQL a NOTIFY
# on the channel `gpuq_events` in the same commit, which wakes the relays.

from django.db import migrations, models

# PostgreSQL: a deferred constraint trigger runs as the transaction commits. It takes a transaction-level
# advisory lock, so the events of concurrent transactions get their numbers one commit after another: the
# lock is released only after the commit is visible, so once a reader can see number N, every lower number
# is either visible too or will never be (its transaction rolled back after taking it). The two-key lock
# form never meets the tick's one-key lock (PostgreSQL keeps the two forms apart).
POSTGRESQL = [
    "CREATE SEQUENCE gpuq_event_commit_seq",
    "UPDATE scheduling_event SET seq = id",
    "SELECT setval('gpuq_event_commit_seq', COALESCE((SELECT max(id) FROM scheduling_event), 0) + 1, false)",
    """CREATE FUNCTION gpuq_event_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(1735423345, 1);
        UPDATE scheduling_event SET seq = nextval('gpuq_event_commit_seq') WHERE id = NEW.id;
        PERFORM pg_notify('gpuq_events', '');
        RETURN NULL;
    END
    $$""",
    """CREATE CONSTRAINT TRIGGER gpuq_event_commit AFTER INSERT ON scheduling_event
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gpuq_event_commit()""",
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER gpuq_event_commit ON scheduling_event",
    "DROP FUNCTION gpuq_event_commit()",
    "DROP SEQUENCE gpuq_event_commit_seq",
]

# SQLite serialises writers (the write lock is held from a transaction's first write to its commit), so
# id order is commit order already: seq is the id.
SQLITE = [
    "UPDATE scheduling_event SET seq = id",
    """CREATE TRIGGER gpuq_event_commit AFTER INSERT ON scheduling_event BEGIN
        UPDATE scheduling_event SET seq = NEW.id WHERE id = NEW.id;
    END""",
]
SQLITE_REVERSE = ["DROP TRIGGER gpuq_event_commit"]


def forward(apps, schema_editor):
    run(schema_editor, POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE)


def backward(apps, schema_editor):
    pg = schema_editor.connection.vendor == "postgresql"
    run(schema_editor, POSTGRESQL_REVERSE if pg else SQLITE_REVERSE)


def run(schema_editor, sql):
    for statement in sql:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    # On SQLite any later AlterField on the event table remakes it and drops the trigger: keep this last.
    dependencies = [
        ("scheduling", "0015_retention"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="seq",
            field=models.BigIntegerField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.RunPython(forward, backward),
    ]
