"""Hot paths written out in SQL, with the ORM's own model building.

A few statements run for every order, fill and notification; through the ORM each costs
several times its database time in Python (building the query, compiling it, instantiating
models). Those few are written out here as SQL on PostgreSQL, and their rows become ordinary
model instances (``Model.from_db``, with every field's ``from_db_value``), so the code that
uses them cannot tell. Everything else uses the ORM.

    columns("o", Order) -> 'o."id", o."account_id", ...'
    row = cursor.fetchone()
    order, instrument = instances(row, Order, Instrument)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Model


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def quote(name: str) -> str:
    # PostgreSQL's quoting (the SQLite path never builds these statements).
    return name if name.startswith('"') and name.endswith('"') else f'"{name}"'


@functools.cache
def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


@functools.cache
def columns(alias: str, model: type[Model]) -> str:
    """Every concrete column of ``model`` under ``alias``, in the order ``instances`` reads."""
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


@functools.cache
def _writable(model: type[Model]) -> tuple:
    return tuple(f for f in model._meta.concrete_fields if not f.primary_key)


def instance(model: type[Model], values: Sequence[Any]) -> Any:
    """A model instance from its concrete columns' raw values, as the ORM would build it."""
    fields = model._meta.concrete_fields
    converted = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def instances(row: Sequence[Any], *models: type[Model]) -> list[Any]:
    """Split a row of ``columns(...)`` blocks into instances, one per model; a block whose
    primary key is NULL (an outer join that found nothing) gives None."""
    out: list[Any] = []
    start = 0
    for model in models:
        width = len(model._meta.concrete_fields)
        block = row[start : start + width]
        start += width
        out.append(None if block[0] is None else instance(model, block))
    return out


def fetchone(sql: str, params: Sequence[Any]) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def fetchall(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- writes: every backend (the ORM where the database is not PostgreSQL) -------------------


def insert(obj: Model, *, skip_conflicts: bool = False) -> bool:
    """INSERT ``obj`` (an unsaved instance with an automatic primary key) and set its pk.

    ``skip_conflicts``: a row a unique constraint refuses is not written and False is
    returned, without an error (``ON CONFLICT DO NOTHING`` on PostgreSQL, so the caller's
    transaction needs no savepoint; a savepoint elsewhere)."""
    if not is_postgresql():
        if not skip_conflicts:
            obj.save(force_insert=True)
            return True
        try:
            with transaction.atomic():
                obj.save(force_insert=True)
        except IntegrityError:
            return False
        return True
    return bool(insert_rows([obj], on_conflict="ON CONFLICT DO NOTHING" if skip_conflicts else ""))


def insert_many(objs: Sequence[Model]) -> None:
    """INSERT several unsaved instances of one model in one statement; sets their pks."""
    if not objs:
        return
    if not is_postgresql():
        type(objs[0]).objects.bulk_create(objs)
        return
    insert_rows(objs)


def update(obj: Model, fields: Sequence[str] | None = None) -> None:
    """UPDATE ``fields`` of a saved instance (every field when None), as ``save`` would: with
    auto_now fields set, and an error when the row is gone."""
    model = type(obj)
    if not is_postgresql():
        obj.save(update_fields=fields)
        return
    names = None if fields is None else tuple(fields)
    chosen, statement = _update_statement(model, names)
    values = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in chosen]
    with connection.cursor() as cursor:
        cursor.execute(statement, [*values, obj.pk])
        if cursor.rowcount != 1:
            raise DatabaseError(f"{model.__name__} {obj.pk} was not updated (row gone?).")


@functools.cache
def _update_statement(model: type[Model], names: tuple[str, ...] | None) -> tuple[tuple, str]:
    chosen = _writable(model) if names is None else tuple(model._meta.get_field(n) for n in names)
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in chosen)
    pk = quote(model._meta.pk.column)
    return chosen, f"UPDATE {table(model)} SET {assignments} WHERE {pk} = %s"


def first(
    model: type[Model],
    where: str,
    params: Sequence[Any],
    *,
    fallback: Callable[[], Any],
    for_update: bool = False,
) -> Any:
    """The first row (by primary key) of ``model`` matching ``where`` (SQL on the alias ``t``),
    locked with ``for_update``; on other databases ``fallback()`` asks the ORM."""
    if not is_postgresql():
        return fallback()
    row = fetchone(
        f"SELECT {columns('t', model)} FROM {table(model)} t WHERE {where} "
        f"ORDER BY t.{quote(model._meta.pk.column)} LIMIT 1{' FOR UPDATE' if for_update else ''}",
        params,
    )
    return None if row is None else instance(model, row)


# --- write-behind: the writes of one transaction, sent together (PostgreSQL) ------------------


def allocate_pks(model: type[Model], count: int) -> list[int]:
    """``count`` fresh primary keys from the model's sequence (one statement): a row can be
    referred to before it is written. Unused keys are gaps, as after a rollback."""
    rows = fetchall(
        "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
        [model._meta.db_table, model._meta.pk.column, count],
    )
    return [pk for (pk,) in rows]


# Writing many rows at once (PostgreSQL). Up to FEW_ROWS rows go as a VALUES list, which the
# server plans fastest. More go as one array per column (``unnest``), bound by the server:
# the statement's text stays short and the same for any number of rows, where a VALUES list
# of a hundred rows is thousands of placeholders that the client splits and the server parses.
FEW_ROWS = 4


def _array_types(fields) -> str:
    # The columns' base types (varchar, not varchar(200); numeric, not numeric(20, 8)): an
    # explicit cast would cut a long text short, where the column's own assignment refuses it.
    return ", ".join(f"%s::{f.db_type(connection).split('(')[0]}[]" for f in fields)


@functools.cache
def _insert_statement(
    model: type[Model], rows: int | None, with_pks: bool, on_conflict: str, match_on: str | None
) -> tuple[tuple, str]:
    """The INSERT of ``rows`` rows as a VALUES list, or of any number as arrays (None)."""
    fields = tuple(model._meta.concrete_fields) if with_pks else _writable(model)
    if rows is None:
        source = f"SELECT * FROM unnest({_array_types(fields)})"
    else:
        source = "VALUES " + ", ".join([f"({', '.join(['%s'] * len(fields))})"] * rows)
    returning = ""
    if not with_pks:
        returned = [model._meta.pk, *([model._meta.get_field(match_on)] if match_on else [])]
        returning = f" RETURNING {', '.join(quote(f.column) for f in returned)}"
    conflict = f" {on_conflict}" if on_conflict else ""
    return fields, (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "
        f"{source}{conflict}{returning}"
    )


@functools.cache
def _update_unnest_statement(
    model: type[Model], names: tuple[str, ...] | None
) -> tuple[tuple, str]:
    chosen = _writable(model) if names is None else tuple(model._meta.get_field(n) for n in names)
    pk = model._meta.pk
    columns_sql = ", ".join(quote(f.column) for f in (pk, *chosen))
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in chosen)
    return chosen, (
        f"UPDATE {table(model)} t SET {assignments} "
        f"FROM unnest({_array_types((pk, *chosen))}) AS v({columns_sql}) "
        f"WHERE t.{quote(pk.column)} = v.{quote(pk.column)}"
    )


def _bound_cursor():
    """A cursor that sends the parameters apart from the statement (server-side binding),
    wrapped like every Django cursor (so query logging and counting see it)."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    return connection._prepare_cursor(ServerBindingCursor(connection.connection))


def insert_rows(
    objs: Sequence[Model],
    *,
    with_pks: bool = False,
    on_conflict: str = "",
    match_on: str | None = None,
) -> list[Model]:
    """INSERT instances of one model in one statement (PostgreSQL); returns those written.

    ``with_pks``: their primary keys were set beforehand (``allocate_pks`` or the caller's
    own); otherwise the database gives them theirs. ``on_conflict`` (``ON CONFLICT ... DO
    NOTHING``) skips the rows a unique index refuses: RETURNING then gives only the rows
    written, in no promised order, so more than one row needs ``match_on``, a unique field
    the rows are matched back by (a uid)."""
    if not objs:
        return []
    assert not on_conflict or match_on or len(objs) == 1, "rows skipped need matching back"
    model = type(objs[0])
    rows = len(objs) if len(objs) <= FEW_ROWS else None
    fields, statement = _insert_statement(model, rows, with_pks, on_conflict, match_on)
    prep = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs] for f in fields]
    if rows is None:  # one array per column
        cursor, params = _bound_cursor(), prep
    else:
        cursor, params = (
            connection.cursor(),
            [prep[c][r] for r in range(rows) for c in range(len(fields))],
        )
    with cursor:
        cursor.execute(statement, params)
        returned = [] if with_pks else cursor.fetchall()
    if with_pks:
        written = list(objs)
    elif match_on:
        by_key = {getattr(obj, match_on): obj for obj in objs}
        written = []
        for pk, key in returned:
            by_key[key].pk = pk
            written.append(by_key[key])
    elif on_conflict and not returned:  # the one row was skipped
        written = []
    else:  # every row, in the order given (as Django's bulk_create relies on too)
        written = list(objs)
        for obj, (pk,) in zip(objs, returned, strict=True):
            obj.pk = pk
    for obj in written:
        obj._state.adding = False
        obj._state.db = connection.alias
    return written


def update_many(objs: Sequence[Model], fields: Sequence[str] | None = None) -> None:
    """``update`` for several saved instances of one model in one statement (auto_now fields
    set); an error when a row is gone."""
    if not objs:
        return
    if len(objs) <= FEW_ROWS:
        for obj in objs:
            update(obj, fields)
        return
    model = type(objs[0])
    chosen, statement = _update_unnest_statement(model, None if fields is None else tuple(fields))
    columns_values = [[obj.pk for obj in objs]] + [
        [f.get_db_prep_save(f.pre_save(obj, False), connection) for obj in objs] for f in chosen
    ]
    with _bound_cursor() as cursor:
        cursor.execute(statement, columns_values)
        if cursor.rowcount != len(objs):
            raise DatabaseError(
                f"{model.__name__}: {cursor.rowcount} of {len(objs)} rows updated (rows gone?)."
            )


class _PkPool:
    """Primary keys drawn from the sequences a block at a time and handed out across
    transactions (per process and database): a lone signal's batch costs no statement for
    them. A key left unused when the process ends is a gap, as after a rollback."""

    BLOCK = 64

    def __init__(self) -> None:
        self._free: dict[tuple, list[int]] = {}
        self._pid = os.getpid()

    def take(self, model: type[Model]) -> int:
        if self._pid != os.getpid():  # a forked child must not hand out its parent's keys
            self._free, self._pid = {}, os.getpid()
        key = (connection.alias, connection.settings_dict["NAME"], model)
        free = self._free.setdefault(key, [])
        if not free:
            free.extend(reversed(allocate_pks(model, self.BLOCK)))
        return free.pop()


_pk_pool = _PkPool()


class WriteBehind:
    """The inserts and updates of one transaction, held back and sent at ``flush`` as one
    statement per model (and set of fields): for a batch that writes many rows of a few
    kinds and reads none of them back (PostgreSQL only).

    ``insert(obj, pk_now=True)`` gives the row its primary key at once (from the sequence,
    a block at a time), for rows that others refer to before the flush. An update of a row
    still waiting to be inserted changes nothing: the insert writes its final state. Several
    updates of one row become one, with the union of their fields."""

    def __init__(self) -> None:
        self._inserts: dict[type[Model], list[Model]] = {}
        self._waiting: set[int] = set()  # id() of rows waiting to be inserted
        self._updates: dict[int, tuple[Model, dict[str, None] | None]] = {}

    def _next_pk(self, model: type[Model]) -> int:
        return _pk_pool.take(model)

    def assign_pk(self, obj: Model) -> None:
        """Give ``obj`` its primary key now (it is written only if inserted later)."""
        if obj.pk is None:
            obj.pk = self._next_pk(type(obj))

    def insert(self, obj: Model, *, pk_now: bool = False) -> None:
        if pk_now:
            self.assign_pk(obj)
        self._inserts.setdefault(type(obj), []).append(obj)
        self._waiting.add(id(obj))

    def update(self, obj: Model, fields: Sequence[str] | None = None) -> None:
        if id(obj) in self._waiting:
            return
        _, known = self._updates.get(id(obj), (obj, {}))
        merged = None if fields is None or known is None else {**known, **dict.fromkeys(fields)}
        self._updates[id(obj)] = (obj, merged)

    def flush(self) -> None:
        """Send everything held back: the updates first (they touch only rows that existed
        before: an update of a row waiting to be inserted is in its insert), then the
        inserts, by model in first-use order. So a row that a partial unique index allows
        once (say one open trade per instrument) is closed before its successor arrives;
        foreign keys are checked at commit, so the order among models does not matter."""
        inserts, self._inserts, self._waiting = self._inserts, {}, set()
        updates, self._updates = self._updates, {}
        groups: dict[tuple, list[Model]] = {}
        for obj, fields in updates.values():
            key = (type(obj), None if fields is None else tuple(fields))
            groups.setdefault(key, []).append(obj)
        for (_, fields), objs in groups.items():
            update_many(objs, fields)
        for objs in inserts.values():
            insert_rows([o for o in objs if o.pk is not None], with_pks=True)
            insert_rows([o for o in objs if o.pk is None], with_pks=False)
