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
def _insert_statement(model: type[Model], rows: int, skip_conflicts: bool) -> str:
    fields = _writable(model)
    row = f"({', '.join(['%s'] * len(fields))})"
    conflicts = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    return (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * rows)}{conflicts} RETURNING {quote(model._meta.pk.column)}"
    )


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
    model = type(obj)
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
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in _writable(model)]
    row = fetchone(_insert_statement(model, 1, skip_conflicts), values)
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True


def insert_many(objs: Sequence[Model]) -> None:
    """INSERT several unsaved instances of one model in one statement; sets their pks."""
    if not objs:
        return
    model = type(objs[0])
    if not is_postgresql():
        model.objects.bulk_create(objs)
        return
    fields = _writable(model)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(model, len(objs), False), values)
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = connection.alias


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
