"""Tree nodes ⇄ table rows, following each class's :class:`~sanctum_store.layouts.Layout` and
each table's role (:data:`~sanctum_store.models.ROLES`); values take their storage forms from
:mod:`sanctum_store.forms`.

Pure functions, no database: :mod:`sanctum_store.persist` and :mod:`sanctum_store.reader`
share them so that what is written is exactly what is read back.
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
from collections.abc import Mapping
from typing import Any

from sanctum_store import codec, forms
from sanctum_store.layouts import LAYOUTS
from sanctum_store.models import ROLES, Items, Key


def _plan(cls: type, prefix: str):
    """Per class and prefix: the columns to fill, computed once."""
    plan = _PLANS.get((cls, prefix))
    if plan is None:
        layout = LAYOUTS[cls]
        info = {f.name: f for f in codec.class_info(cls).fields}
        scalars = tuple(
            (f.name, prefix + f.name, f.spec.kind, f.spec.optional) for f in layout.scalar_fields()
        )
        json_fields = tuple((name, prefix + name, info[name].spec) for name in layout.json)
        flattened = tuple(
            (name, info[name].spec.cls, prefix + child) for name, child in layout.flatten.items()
        )
        masks = tuple((name, prefix + name) for name in layout.masks)
        order = tuple(info)  # a tree's keys in schema order, whoever fills them
        plan = (scalars, json_fields, flattened, masks, prefix + "extra", order)
        _PLANS[(cls, prefix)] = plan
    return plan


_PLANS: dict[tuple[type, str], tuple] = {}


def to_row(cls: type, tree: Mapping, prefix: str = "", out: dict | None = None, marks=None) -> dict:
    """The column values of a tree node: scalars, JSON fields, flattened children, extras.

    NaN floats become NULL; ``float_marks`` keeps what NULL and SQLite lose (see
    :func:`store_float`). References, histories and special fields are the caller's to add.
    """
    top = out is None
    if top:
        out = {}
    if marks is None:
        marks = []  # a caller filling its own row (runs' config_*) keeps no marks
    scalars, json_fields, flattened, masks, extra_column, _ = _plan(cls, prefix)
    for name, column, kind, optional in scalars:
        value = tree[name]
        if kind == "float" and value is not None:
            value = forms.store_float(value, column, optional, marks)
        out[column] = value
    for name, column, spec in json_fields:
        out[column] = codec._json(spec, tree[name])
    for name, column in masks:
        out[column] = forms.mask_to_text(tree[name])
    for name, child_cls, child_prefix in flattened:
        to_row(child_cls, tree[name], child_prefix, out, marks)
    out[extra_column] = tree.get(codec.EXTRA)
    if top and not prefix:
        out["float_marks"] = ",".join(marks) if marks else None
    return out


def from_row(cls: type, row: Mapping, prefix: str = "", marks: dict | None = None) -> dict:
    """The tree node of a row, its fields in schema order; references, histories and fields
    stored by the table's role are None, for the reader to fill in place."""
    if marks is None:
        marks = forms.parse_marks(row["float_marks"]) if not prefix else {}
    scalars, json_fields, flattened, masks, extra_column, order = _plan(cls, prefix)
    tree: dict[str, Any] = dict.fromkeys(order)
    for name, column, kind, optional in scalars:
        value = row[column]
        if kind == "float":
            value = forms.load_float(value, column, optional, marks)
        elif value is not None:
            if kind == "int":
                value = int(value)
            elif kind == "bool":
                value = bool(value)
        tree[name] = value
    for name, column, spec in json_fields:
        value = row[column]
        tree[name] = None if value is None else codec._convert(spec, value)
    for name, child_cls, child_prefix in flattened:
        tree[name] = from_row(child_cls, row, child_prefix, marks)
    for name, column in masks:
        tree[name] = forms.text_to_mask(row[column])
    extra = row[extra_column]
    if extra:
        if not tree.keys().isdisjoint(extra):
            extra = _fields_from_extra(cls, tree, extra)
        if extra:
            tree[codec.EXTRA] = extra
    return tree


def _fields_from_extra(cls: type, tree: dict, extra: dict) -> dict:
    """A field the schema gained after a row was stored was kept with the row's unknown
    fields (``TamiyoState._previous_risk`` before revision 0004): it fills the field."""
    specs = {f.name: f.spec for f in codec.class_info(cls).fields}
    rest = {}
    for name, value in extra.items():
        if name in specs:
            tree[name] = codec._convert(specs[name], value)
        else:
            rest[name] = value
    return rest


def digest(value: Any) -> str:
    """A stable content digest of a tree node (NaN-safe: it hashes the repr). What the archive
    keeps as an identity (a snapshot without captured_at, a record without an id) uses it."""
    return hashlib.blake2b(repr(value).encode(), digest_size=16).hexdigest()


def _exact_bytes(value: Any) -> bytes:
    """A tree node's pickle without memo: equal content gives equal bytes, and unlike ``==``
    it tells -0.0 from 0.0 and True from 1 (about twice as fast as ``repr``)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, 5)
    pickler.fast = True  # no memo: shared objects are written out each time
    pickler.dump(value)
    return buffer.getvalue()


def content_digest(value: Any) -> str:
    """A content digest of a value record (see :func:`_exact_bytes`). Only the writer's dedup
    of value records uses it: a record digested another way is stored again, never confused."""
    return hashlib.blake2b(_exact_bytes(value), digest_size=16).hexdigest()


def same(a: Any, b: Any) -> bool:
    """Whether two tree nodes hold exactly the same values (see :func:`_exact_bytes`)."""
    return a is b or _exact_bytes(a) == _exact_bytes(b)


@functools.cache
def series_plan(cls: type) -> tuple[tuple[tuple[str, ...], str, bool], ...]:
    """Every history of a class's row, its 1:1 records' included: ``(path in the tree,
    column, text)`` (``text``: a history of strings, such as actions)."""
    layout = LAYOUTS[cls]
    specs = {f.name: f.spec for f in codec.class_info(cls).fields}
    plan = [((name,), name, specs[name].item.kind == "str") for name in layout.series]
    for name, prefix in layout.flatten.items():
        for path, column, text in series_plan(specs[name].cls):
            plan.append(((name, *path), prefix + column, text))
    return tuple(plan)


# --------------------------------------------------------------------------------------------
# Child rows, keyed records and overlays (driven by models.ROLES)
# --------------------------------------------------------------------------------------------


def item_rows(items: Items, tree: Any) -> list[dict]:
    """The child rows of a record's collection (see :class:`~sanctum_store.models.Items`),
    with their ``position`` and key but not yet their parent's id."""
    collection = tree if items.field is None else tree[items.field]
    entries = collection.items() if items.key_column else ((None, v) for v in collection)
    cls = ROLES[items.table].cls
    out = []
    for position, (key, item) in enumerate(entries):
        if items.pair:
            text_column, float_column = items.pair
            marks: list[str] = []
            row = {
                text_column: item[0],
                float_column: forms.store_float(item[1], float_column, False, marks),
                "float_marks": ",".join(marks) or None,
            }
        else:
            row = to_row(cls, item)
        row["position"] = position
        if items.key_column:
            row[items.key_column] = key
        out.append(row)
    return out


def items_from_rows(items: Items, child_rows: list[Mapping]) -> dict | list:
    """Inverse of :func:`item_rows`, for the rows of one parent in position order."""
    cls = ROLES[items.table].cls
    if items.pair:
        text_column, float_column = items.pair
        values = [
            (
                r[text_column],
                forms.load_float(
                    r[float_column], float_column, False, forms.parse_marks(r["float_marks"])
                ),
            )
            for r in child_rows
        ]
    else:
        values = [from_row(cls, r) for r in child_rows]
    if items.key_column:
        return {r[items.key_column]: v for r, v in zip(child_rows, values, strict=True)}
    return values


def record_key(key: Key, item: dict) -> str:
    """A keyed record's identity within its run: its own id, else a digest of its core."""
    if item[key.field]:
        return item[key.field]
    core = item if key.core is None else tuple(item[name] for name in key.core)
    return "digest:" + digest(core)


def make_overlay(cls: type, canonical: dict, version: dict) -> dict | None:
    """The fields of ``version`` that differ from ``canonical``, in JSON form."""
    if version is canonical:
        return None
    overlay = {}
    for f in codec.class_info(cls).fields:
        if repr(canonical[f.name]) != repr(version[f.name]):
            overlay[f.name] = codec._json(f.spec, version[f.name])
    if repr(canonical.get(codec.EXTRA)) != repr(version.get(codec.EXTRA)):
        overlay[codec.EXTRA] = version.get(codec.EXTRA)
    return overlay or None


def apply_overlay(cls: type, canonical: dict, overlay: dict | None) -> dict:
    """The version a link stands for: the canonical tree with the overlay's fields."""
    if not overlay:
        return canonical
    version = dict(canonical)
    specs = {f.name: f.spec for f in codec.class_info(cls).fields}
    for name, value in overlay.items():
        if name == codec.EXTRA:
            if value is None:
                version.pop(codec.EXTRA, None)
            else:
                version[codec.EXTRA] = value
        else:
            version[name] = codec._convert(specs[name], value)
    return version
