"""Many new rows of one model in one driver call: bulk submission's inserts. Django's bulk_create
compiles every value of every row into SQL (and on PostgreSQL into typed arrays), which at thousands of
rows costs several times the database's own work; here each column's values are prepared by one plain
function and the rows go to the database in one stream: PostgreSQL's COPY (no statement parsed or
planned per row; an INSERT per row, even pipelined, cost the server twice as much), on SQLite the
driver's `executemany` (multi-row INSERTs measured no faster there). Plain values only: no
expressions, no signals, no save() (callers set what save() would)."""

import json
from collections.abc import Callable, Sequence
from contextlib import contextmanager

from django.db import connection, models


def insert(objs: Sequence[models.Model], *, ids: bool = False) -> None:
    """Insert `objs` (unsaved, of one model). With `ids`, their primary keys are taken from the database
    first and set on them (callers that need them: rows that others point to). Must run inside the
    caller's transaction: on SQLite the ids are the next free ones under the write lock that gpuq's
    IMMEDIATE transactions hold from their start."""
    if not objs:
        return
    meta = type(objs[0])._meta
    if not connection.in_atomic_block:
        raise RuntimeError("fastinsert.insert runs inside a transaction")
    if ids:
        for obj, pk in zip(objs, _next_ids(meta, len(objs)), strict=True):
            obj.pk = pk
    fields = [f for f in meta.concrete_fields if ids or not f.primary_key]
    prepare = [_preparer(f) for f in fields]
    names = [f.attname for f in fields]
    _execute(
        meta, fields, [tuple(p(getattr(o, n)) for p, n in zip(prepare, names, strict=True)) for o in objs]
    )


def insert_values(model: type[models.Model], rows: Sequence[dict]) -> None:
    """Insert rows given as dicts of attribute name: value, all naming the same fields, every field of
    the model but its id (no model objects made: at thousands of rows their making costs the most)."""
    if not rows:
        return
    if not connection.in_atomic_block:
        raise RuntimeError("fastinsert.insert_values runs inside a transaction")
    fields = [model._meta.get_field(name) for name in rows[0]]
    prepare = [_preparer(f) for f in fields]
    names = list(rows[0])
    _execute(model._meta, fields, [tuple(p(r[n]) for p, n in zip(prepare, names, strict=True)) for r in rows])


def _execute(meta, fields, rows: list[tuple]) -> None:
    quote = connection.ops.quote_name
    table, columns = quote(meta.db_table), ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        # One entry in the query log for the lot, as for one executemany (query-count tests).
        debug = getattr(cursor, "debug_sql", None)
        label = f"{'COPY' if connection.vendor == 'postgresql' else 'INSERT INTO'} {table} ({len(rows)} rows)"
        with connection.wrap_database_errors, debug(label) if debug else _nothing():
            if connection.vendor == "postgresql":
                # Text COPY: each value goes as its text and the server reads it as the column's type
                # (a JSON text as jsonb), as an INSERT's untyped parameter would be.
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            # SQLite (in-process, no round trips): one prepared statement for every row.
            cursor.cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", rows
            )


@contextmanager
def _nothing():
    yield


def _next_ids(meta, count: int) -> list[int]:
    table, column = meta.db_table, meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, column, count],
            )
            return sorted(row[0] for row in cursor.fetchall())
        # SQLite: AUTOINCREMENT never gives an id again, even a deleted row's: start past both the
        # highest id and the highest ever given (sqlite_sequence), which the inserts then move on.
        quote = connection.ops.quote_name
        cursor.execute(f"SELECT MAX({quote(column)}) FROM {quote(table)}")
        highest = cursor.fetchone()[0] or 0
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        start = max(highest, row[0] if row else 0) + 1
    return list(range(start, start + count))


def _preparer(field: models.Field) -> Callable:
    """One column's Python value to what the driver takes, as the field's own get_db_prep_save would
    give it (checked by tests/scheduling/test_fastinsert.py against rows saved by the ORM)."""
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        empty = {json.dumps({}, cls=encoder), json.dumps([], cls=encoder)} == {"{}", "[]"}

        # A str parameter reaches PostgreSQL untyped and is cast to the column's jsonb. Most of a job's
        # JSON fields are empty: those skip the encoder (a tenth of a bulk submission's time).
        def dump(value):
            if value is None:
                return None
            if empty and not value and type(value) in (dict, list):
                return "{}" if type(value) is dict else "[]"
            return json.dumps(value, cls=encoder)

        return dump
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, (models.CharField, models.TextField)):
        return _text  # a TextChoices member is a str *and* an Enum: the driver may send its name
    if isinstance(field, (models.IntegerField, models.BooleanField, models.FloatField)) or (
        field.is_relation and field.many_to_one
    ):
        return _same
    return lambda value: field.get_db_prep_save(value, connection)


def _same(value):
    return value


def _text(value):
    return None if value is None else str(value)
