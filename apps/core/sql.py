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

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def columns(alias: str, model: type[Model]) -> str:
    """Every concrete column of ``model`` under ``alias``, in the order ``instances`` reads."""
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


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
