"""Snapshots in, plain values out: the one place that knows about input forms and odd values.

A snapshot arrives as a :mod:`sanctum_store.schema` dataclass, as any object with the same
attribute names (esper's own classes, which this package never imports), or as a dict in
``dataclasses.asdict``/JSON form. :func:`normalize` validates it against the schema and turns it
into a *tree*: nested plain dicts keyed by field name, every known field present (missing ones
take the schema default), values converted to their annotated type (int dict keys, datetimes,
tuples, lists for deques), and fields the schema does not know kept under :data:`EXTRA` as
JSON-ready values. Everything downstream (rows, reader, JSON output) works on trees.

Invalid input raises :class:`~sanctum_store.errors.SnapshotInvalid` naming the field path, e.g.
``envs['3'].host_accuracy: expected float, got 'abc'``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import partial
from numbers import Integral, Real
from types import UnionType
from typing import Any

from sanctum_store import schema
from sanctum_store.errors import SnapshotInvalid

#: Key under which a tree node keeps the fields its class does not know.
EXTRA = "__extra__"

#: Deepest nesting accepted in free-form values (event metadata, unknown fields).
MAX_FREE_DEPTH = 64

_INT64 = (-(2**63), 2**63 - 1)
_MISSING = object()


# --------------------------------------------------------------------------------------------
# Type specs compiled from the schema's annotations
# --------------------------------------------------------------------------------------------

SCALAR_KINDS = frozenset({"int", "float", "str", "bool", "datetime"})


@dataclasses.dataclass(frozen=True, slots=True)
class Spec:
    """What a field holds: a scalar kind, a schema class, a container of specs, or free JSON."""

    kind: str  # int float str bool datetime | object | list deque tuple pair dict | free
    optional: bool = False
    cls: type | None = None
    item: Spec | None = None
    items: tuple[Spec, ...] = ()
    key: Spec | None = None
    maxlen: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    spec: Spec
    required: bool
    default: Callable[[], Any]  # returns the default in tree form


@dataclasses.dataclass(frozen=True, slots=True)
class ClassInfo:
    cls: type
    fields: tuple[FieldInfo, ...]
    names: frozenset[str]
    slots: bool


_SIMPLE = {int: "int", float: "float", str: "str", bool: "bool", datetime: "datetime"}


def _spec(annotation: Any, default: Any = _MISSING) -> Spec:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, UnionType):
        members = [a for a in args if a is not type(None)]
        optional = len(members) < len(args)
        if len(members) == 1:
            return dataclasses.replace(_spec(members[0], default), optional=optional)
        return Spec("free", optional=optional)  # e.g. str | int | float metadata values
    if annotation in _SIMPLE:
        return Spec(_SIMPLE[annotation])
    if dataclasses.is_dataclass(annotation):
        return Spec("object", cls=annotation)
    if origin is list:
        return Spec("list", item=_spec(args[0]))
    if origin is deque:
        maxlen = default.maxlen if isinstance(default, deque) else None
        return Spec("deque", item=_spec(args[0]), maxlen=maxlen)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return Spec("tuple", item=_spec(args[0]))
        return Spec("pair", items=tuple(_spec(a) for a in args))
    if origin is dict:
        return Spec("dict", key=_spec(args[0]), item=_spec(args[1]))
    raise TypeError(f"unsupported annotation {annotation!r}")


def _class_info(cls: type) -> ClassInfo:
    hints = typing.get_type_hints(cls, vars(schema))
    infos = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        sample = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        spec = _spec(hints[f.name], sample)
        if required:
            default = _required
        elif f.default_factory is not dataclasses.MISSING:
            default = _factory_default(spec, f.default_factory)
        else:
            default = _literal_default(f.default)
        infos.append(FieldInfo(f.name, spec, required, default))
    return ClassInfo(
        cls,
        tuple(infos),
        frozenset(i.name for i in infos),
        slots="__slots__" in vars(cls),
    )


def _required():
    raise AssertionError("required fields have no default")


def _literal_default(value):
    return lambda: value


def _factory_default(spec: Spec, factory):
    return lambda: _convert(spec, factory())


#: Every schema dataclass and how to read it.
CLASSES: dict[type, ClassInfo] = {}
for _cls in vars(schema).values():
    if (
        isinstance(_cls, type)
        and dataclasses.is_dataclass(_cls)
        and _cls.__module__ == schema.__name__
    ):
        CLASSES[_cls] = None  # type: ignore[assignment]  # placeholder keeps definition order
for _cls in CLASSES:
    CLASSES[_cls] = _class_info(_cls)


def class_info(cls: type) -> ClassInfo:
    return CLASSES[cls]


#: Each schema class's compiled converter (see _compile), made at import.
_FAST: dict[type, Callable[[Callable[[str, Any], Any]], dict]] = {}


# --------------------------------------------------------------------------------------------
# Validation and conversion (input -> tree)
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """Raised deep in a conversion; each enclosing level prepends its path segment."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
        self.segments: list[str] = []

    def at(self, segment: str) -> _Invalid:
        self.segments.insert(0, segment)
        return self


def _format_path(segments: list[str]) -> str:
    return "".join(segments).lstrip(".")


def _show(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return f"a {type(value).__name__}"


def _expected(kind: str, value: Any) -> _Invalid:
    return _Invalid(f"expected {kind}, got {_show(value)}")


def _check_str(value: str) -> str:
    if "\x00" in value:
        raise _Invalid("text contains a NUL character, which PostgreSQL cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Invalid(f"text is not valid Unicode ({e.reason} at position {e.start})") from None
    return value


def _is_numpy_bool(value: Any) -> bool:
    """numpy's boolean scalar: ``numpy.bool_``, named ``numpy.bool`` since numpy 2 (checked by
    name, so the codec never imports numpy)."""
    t = type(value)
    return t.__name__ in ("bool_", "bool") and t.__module__ == "numpy"


def _to_int(value: Any) -> int:
    if type(value) is int:
        result = value
    elif isinstance(value, bool) or _is_numpy_bool(value):
        raise _expected("int", value)
    elif isinstance(value, Integral) or (
        isinstance(value, Real) and math.isfinite(value) and float(value).is_integer()
    ):
        result = int(value)
    else:
        raise _expected("int", value)
    if not _INT64[0] <= result <= _INT64[1]:
        raise _Invalid(f"integer {result} is outside the 64-bit range the archive stores")
    return result


_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _to_float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, bool) or _is_numpy_bool(value):
        raise _expected("float", value)
    if isinstance(value, Real):
        try:
            return float(value)
        except OverflowError:
            raise _Invalid(f"number {value} is too large for a float") from None
    if isinstance(value, str) and value in _FLOAT_WORDS:
        return _FLOAT_WORDS[value]
    raise _expected("float", value)


def _to_str(value: Any) -> str:
    if type(value) is str:
        return _check_str(value)
    if isinstance(value, enum.Enum) and isinstance(value.value, str):
        return _check_str(value.value)
    if isinstance(value, str):
        return _check_str(str.__str__(value))
    raise _expected("str", value)


def _to_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    if _is_numpy_bool(value):
        return bool(value)
    raise _expected("bool", value)


def _to_datetime(value: Any) -> datetime:
    if type(value) is datetime:
        return value
    if isinstance(value, datetime):  # pandas Timestamp and friends
        return datetime.fromisoformat(value.isoformat())
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(f"expected an ISO-8601 datetime, got {_show(value)}") from None
    raise _expected("datetime", value)


_SCALAR = {
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "bool": _to_bool,
    "datetime": _to_datetime,
}


def _sequence(value: Any, kind: str) -> list:
    if isinstance(value, (list, tuple, deque)):
        return list(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        converted = value.tolist()
        if isinstance(converted, list):
            return converted
    raise _expected(kind, value)


def _convert(spec: Spec, value: Any) -> Any:
    kind = spec.kind
    # Fast paths for the values that make up almost every snapshot.
    t = type(value)
    if t is float:
        if kind == "float":
            return value
    elif t is int:
        if kind == "int" and _INT64[0] <= value <= _INT64[1]:
            return value
    elif t is str:
        if kind == "str" and value.isascii() and "\x00" not in value:
            return value
    elif t is bool and kind == "bool":
        return value
    if value is None:
        if spec.optional or spec.kind == "free":
            return None
        raise _Invalid(f"expected {_describe(spec)}, got None")
    try:
        return _convert_slow(spec, value)
    except (_Invalid, RecursionError):
        raise
    except Exception as e:  # the caller's own object failed while it was read
        raise _Invalid(f"reading it raised {type(e).__name__}: {e}") from None


def _convert_slow(spec: Spec, value: Any) -> Any:
    kind = spec.kind
    scalar = _SCALAR.get(kind)
    if scalar is not None:
        return scalar(value)
    if kind == "object":
        return _convert_object(CLASSES[spec.cls], value)
    if kind in ("list", "deque", "tuple"):
        # A deque longer than its maxlen is kept whole (real esper histories outgrow the
        # spec's maxlen); building the schema object keeps the last maxlen, as deque does.
        items = _sequence(value, _describe(spec))
        if spec.item.kind == "float" and all(type(item) is float for item in items):
            return tuple(items) if kind == "tuple" else items
        out = []
        for i, item in enumerate(items):
            try:
                out.append(_convert(spec.item, item))
            except _Invalid as e:
                raise e.at(f"[{i}]") from None
        return tuple(out) if kind == "tuple" else out
    if kind == "pair":
        items = _sequence(value, _describe(spec))
        if len(items) != len(spec.items):
            raise _Invalid(f"expected {len(spec.items)} items, got {len(items)}")
        out = []
        for i, (item_spec, item) in enumerate(zip(spec.items, items, strict=True)):
            try:
                out.append(_convert(item_spec, item))
            except _Invalid as e:
                raise e.at(f"[{i}]") from None
        return tuple(out)
    if kind == "dict":
        if not isinstance(value, Mapping):
            raise _expected("dict", value)
        out = {}
        int_keys = spec.key.kind == "int"
        for key, item in value.items():
            try:
                converted = _dict_key(key, int_keys)
                if converted in out:
                    raise _Invalid(
                        f"key {key!r} repeats another key once converted to {converted!r}"
                    )
                out[converted] = _convert(spec.item, item)
            except _Invalid as e:
                raise e.at(f"[{key!r}]") from None
        return out
    if kind == "free":
        return free_value(value)
    raise AssertionError(kind)


def _dict_key(key: Any, int_keys: bool) -> Any:
    if int_keys:
        if isinstance(key, str):
            try:
                return _to_int(int(key))
            except ValueError:
                raise _Invalid(f"key {key!r} is not an integer") from None
        try:
            return _to_int(key)
        except _Invalid:
            raise _Invalid(f"key {_show(key)} is not an integer") from None
    if isinstance(key, str):
        return _check_str(key)
    raise _Invalid(f"key {_show(key)} is not a string")


def _describe(spec: Spec) -> str:
    if spec.kind == "object":
        return spec.cls.__name__
    if spec.kind in ("list", "deque", "tuple", "pair"):
        return "a list"
    return spec.kind


def _known_and_unknown(info: ClassInfo, obj: Any) -> tuple[Callable[[str, Any], Any], list[str]]:
    """How to read a field of ``obj`` (``get(name, default)``), and its unknown field names."""
    if isinstance(obj, Mapping):
        if info.names.issuperset(obj):
            return obj.get, []
        return obj.get, [k for k in obj if k not in info.names]
    if type(obj) is info.cls and not info.slots:
        # Our own dataclass: fields live in __dict__, and only extra attributes are unknown.
        attributes = obj.__dict__
        if len(attributes) == len(info.names):
            return attributes.get, []
        return attributes.get, [k for k in attributes if k not in info.names]
    names: list[str] = []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [f.name for f in dataclasses.fields(obj)]
    instance_dict = getattr(obj, "__dict__", None)
    if instance_dict:
        names.extend(k for k in instance_dict if k not in names)
    return (lambda name, default: getattr(obj, name, default)), [
        n for n in names if n not in info.names
    ]


def _has(obj: Any, name: str) -> bool:
    """``hasattr``, except that an attribute whose reading raises counts as present (reading it
    then refuses the snapshot at that field)."""
    try:
        getattr(obj, name)
    except AttributeError:
        return False
    except Exception:
        return True
    return True


def _read(get: Callable[[str, Any], Any], name: str) -> Any:
    """A field of the caller's object: whatever its own code raises while it is read (a
    property, ``__getattr__``) refuses the snapshot at that field, never reaches the caller."""
    try:
        return get(name, _MISSING)
    except Exception as e:
        raise _Invalid(f"reading it raised {type(e).__name__}: {e}") from None


def _convert_object(info: ClassInfo, obj: Any) -> dict:
    """A schema object's tree. Dicts and the schema's own dataclasses take the class's compiled
    converter (:func:`_compile`); anything it does not take as given (another type, a value to
    convert, a bad one) goes the field-by-field way, which names a bad field's path."""
    t = type(obj)
    if t is dict:
        get, names = obj.get, obj
    elif t is info.cls and not info.slots:
        names = obj.__dict__
        get = names.get
    elif t is info.cls:
        get, names = partial(getattr, obj), ()  # slots: no attribute but the fields
    else:
        return _convert_any_object(info, obj)
    try:
        out = _FAST[info.cls](get)
    except Exception:  # the precise way finds the value, and names the field if it is bad
        return _convert_any_object(info, obj)
    if len(names) > len(info.names) or not info.names.issuperset(names):
        _add_extra(out, get, [k for k in names if k not in info.names])
    return out


def _compile(info: ClassInfo) -> Callable[[Callable[[str, Any], Any]], dict]:
    """A converter for one class whose code reads every field by name and keeps each value
    that already has its field's type (checked in C where it can: ``set(map(type, v))``);
    others go through :func:`_convert`. It raises (anything) where the field-by-field way
    has to look closer."""
    env: dict[str, Any] = {**_FAST_HELPERS, "M": _MISSING}
    lines = ["def convert(get):", "    out = {}"]
    for i, f in enumerate(info.fields):
        env[f"s{i}"], env[f"d{i}"] = f.spec, f.default
        name = repr(f.name)
        lines.append(f"    v = get({name}, M)")
        if f.required:
            lines.append("    if v is M: raise LookupError")
        else:
            lines.append(f"    if v is M: out[{name}] = d{i}()")
        form = _fast_form(f.spec, i, env)
        if form is not None:
            test, value = form
            lines.append(f"    elif {test}: out[{name}] = {value}")
        lines.append(f"    else: out[{name}] = _convert(s{i}, v)")
    lines.append("    return out")
    code = compile("\n".join(lines), f"<codec: {info.cls.__name__}>", "exec")
    exec(code, env)  # the code built above from the schema's own fields
    return env["convert"]


_SCALAR_TESTS = {  # on "v"; "{x}" stands for the values
    "float": ("type(v) is float", "set(map(type, {x})) <= _F"),
    "int": (
        f"type(v) is int and {_INT64[0]} <= v <= {_INT64[1]}",
        "set(map(type, {x})) <= _I and _ints({x})",
    ),
    "str": (
        "type(v) is str and v.isascii() and '\\x00' not in v",
        "set(map(type, {x})) <= _S and _text({x})",
    ),
    "bool": ("v is True or v is False", "set(map(type, {x})) <= _B"),
}


def _fast_form(spec: Spec, i: int, env: dict) -> tuple[str, str] | None:
    """``(test, value)``: code that tells a value already in tree form, and that value."""
    if spec.kind in _SCALAR_TESTS:
        test = _SCALAR_TESTS[spec.kind][0]
        return (f"v is None or {test}" if spec.optional else test), "v"
    if spec.kind == "object":
        env[f"c{i}"] = CLASSES[spec.cls]
        return "v is not None", f"_object(c{i}, v)"
    if spec.kind in ("list", "deque", "tuple"):
        sequence = "(type(v) is list or type(v) is deque or type(v) is tuple)"
        make = "tuple" if spec.kind == "tuple" else "list"
        if spec.item.kind in _SCALAR_TESTS:
            return f"{sequence} and {_SCALAR_TESTS[spec.item.kind][1].format(x='v')}", f"{make}(v)"
        if spec.item.kind == "object":
            env[f"c{i}"] = CLASSES[spec.item.cls]
            return sequence, f"{make}([_object(c{i}, x) for x in v])"
    if spec.kind == "dict" and spec.key.kind in ("str", "int"):
        keys = f"type(v) is dict and {_SCALAR_TESTS[spec.key.kind][1].format(x='v')}"
        if spec.item.kind in _SCALAR_TESTS:
            return (
                f"{keys} and {_SCALAR_TESTS[spec.item.kind][1].format(x='v.values()')}",
                "dict(v)",
            )
        if spec.item.kind == "object":
            env[f"c{i}"] = CLASSES[spec.item.cls]
            return keys, f"{{k: _object(c{i}, x) for k, x in v.items()}}"
        if spec.item.kind == "free":  # event metadata: usually flat, of plain values
            return f"{keys} and _plain(v.values())", "dict(v)"
    return None


_PLAIN = frozenset({str, int, float, bool, type(None)})
_F, _I, _S, _B = frozenset({float}), frozenset({int}), frozenset({str}), frozenset({bool})


def _plain(values) -> bool:
    """Values that are their own free form: plain scalars, their text ASCII without NUL."""
    values = list(values)
    if not set(map(type, values)) <= _PLAIN:
        return False
    return _text([v for v in values if type(v) is str])


def _text(values) -> bool:
    joined = "".join(values)
    return joined.isascii() and "\x00" not in joined


def _ints(values) -> bool:
    values = list(values)
    return not values or (_INT64[0] <= min(values) and max(values) <= _INT64[1])


def _convert_any_object(info: ClassInfo, obj: Any) -> dict:
    if (
        obj is None
        or isinstance(obj, (str, bytes, int, float, list, tuple, set, frozenset))
        or (
            # An object that has none of the class's fields is not one of its kind (and would
            # otherwise be stored as a record of defaults).
            not isinstance(obj, Mapping) and not any(_has(obj, name) for name in info.names)
        )
    ):
        raise _expected(f"{info.cls.__name__} (an object or dict)", obj)
    get, unknown = _known_and_unknown(info, obj)
    out: dict[str, Any] = {}
    for f in info.fields:
        name = f.name
        try:
            value = _read(get, name)
            if value is _MISSING:
                if f.required:
                    raise _Invalid("required field is missing")
                out[name] = f.default()
            else:
                out[name] = _convert(f.spec, value)
        except _Invalid as e:
            raise e.at(f".{name}") from None
    if unknown:
        _add_extra(out, get, unknown)
    return out


def _add_extra(out: dict, get: Callable[[str, Any], Any], unknown: list) -> None:
    """Keep the fields the class does not know, as JSON-ready values, under :data:`EXTRA`."""
    extra = {}
    for name in unknown:
        try:
            extra[_check_key(name)] = free_value(_read(get, name))
        except _Invalid as e:
            raise e.at(f".{name}") from None
        except RecursionError:
            raise
        except Exception as e:  # the caller's value failed while it was copied
            raise _Invalid(f"reading it raised {type(e).__name__}: {e}").at(f".{name}") from None
    out[EXTRA] = extra


def _check_key(name: Any) -> str:
    if not isinstance(name, str):
        raise _Invalid(f"field name {_show(name)} is not a string")
    return _check_str(name)


def free_value(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of a value the schema does not describe (unknown fields, metadata)."""
    if depth > MAX_FREE_DEPTH:
        raise _Invalid(f"value is nested deeper than {MAX_FREE_DEPTH} levels")
    if (  # a flat dict of plain values, text keys: the usual (event metadata)
        type(value) is dict
        and set(map(type, value)) <= _S
        and _text(value)
        and _plain(value.values())
    ):
        return dict(value)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return _to_str(value)
    if isinstance(value, bool) or _is_numpy_bool(value):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return free_value(value.value, depth + 1)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            try:
                name = _check_str(key if isinstance(key, str) else _free_key(key))
                if name in out:
                    raise _Invalid(f"key {key!r} repeats the key {name!r} once made text")
                out[name] = free_value(item, depth + 1)
            except _Invalid as e:
                raise e.at(f"[{key!r}]") from None
        return out
    if isinstance(value, (list, tuple, deque, set, frozenset)):
        out_list = []
        for i, item in enumerate(value):
            try:
                out_list.append(free_value(item, depth + 1))
            except _Invalid as e:
                raise e.at(f"[{i}]") from None
        return out_list
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return free_value(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1
        )
    if hasattr(value, "tolist"):
        return free_value(value.tolist(), depth + 1)
    raise _Invalid(f"cannot store a value of type {type(value).__name__}")


def _free_key(key: Any) -> str:
    if key is None or isinstance(key, (bool, Integral, Real)):
        return str(key)
    raise _Invalid(f"key {_show(key)} is not a string or number")


_FAST_HELPERS = {
    "deque": deque,
    "_convert": _convert,
    "_object": _convert_object,
    "_text": _text,
    "_ints": _ints,
    "_plain": _plain,
    "_F": _F,
    "_I": _I,
    "_S": _S,
    "_B": _B,
}
for _cls, _info in CLASSES.items():
    _FAST[_cls] = _compile(_info)


def normalize(snapshot: Any) -> dict:
    """Validate a snapshot in any accepted form and return its tree.

    Raises :class:`SnapshotInvalid` naming the first bad field's path.
    """
    if isinstance(snapshot, (str, bytes)):
        raise SnapshotInvalid("", "expected a snapshot object or dict, got text (parse JSON first)")
    try:
        return _convert_object(CLASSES[schema.SanctumSnapshot], snapshot)
    except _Invalid as e:
        raise SnapshotInvalid(_format_path(e.segments), e.problem) from None
    except RecursionError:
        raise SnapshotInvalid("", "snapshot is nested too deeply") from None


# --------------------------------------------------------------------------------------------
# Trees out: schema objects and JSON-ready dicts
# --------------------------------------------------------------------------------------------


def _build(spec: Spec, value: Any) -> Any:
    if value is None:
        return None
    kind = spec.kind
    if kind in SCALAR_KINDS:
        return value
    if kind == "object":
        return build_object(spec.cls, value)
    if kind == "list":
        return [_build(spec.item, v) for v in value]
    if kind == "deque":
        return deque((_build(spec.item, v) for v in value), maxlen=spec.maxlen)
    if kind == "tuple":
        return tuple(_build(spec.item, v) for v in value)
    if kind == "pair":
        return tuple(value)
    if kind == "dict":
        return {k: _build(spec.item, v) for k, v in value.items()}
    return value  # free values are already plain


def build_object(cls: type, tree: dict) -> Any:
    """The schema object of a tree. Unknown fields become plain attributes where the class
    allows (every class but the slotted SeedState); :func:`to_json` always keeps them."""
    info = CLASSES[cls]
    obj = cls(**{f.name: _build(f.spec, tree[f.name]) for f in info.fields})
    extra = tree.get(EXTRA)
    if extra and not info.slots:
        for name, value in extra.items():
            current = getattr(cls, name, _MISSING)
            if current is _MISSING or not (callable(current) or isinstance(current, property)):
                setattr(obj, name, value)
    return obj


def to_schema(tree: dict) -> schema.SanctumSnapshot:
    """The :class:`~sanctum_store.schema.SanctumSnapshot` of a snapshot tree."""
    return build_object(schema.SanctumSnapshot, tree)


def _json(spec: Spec, value: Any) -> Any:
    if value is None:
        return None
    kind = spec.kind
    if kind == "datetime":
        return value.isoformat()
    if kind in SCALAR_KINDS or kind == "free":
        return value
    if kind == "object":
        return object_to_json(spec.cls, value)
    if kind in ("list", "deque", "tuple", "pair"):
        if kind == "pair":
            return list(value)
        return [_json(spec.item, v) for v in value]
    if kind == "dict":
        return {str(k): _json(spec.item, v) for k, v in value.items()}
    raise AssertionError(kind)


def object_to_json(cls: type, tree: dict) -> dict:
    """A tree node in ``dataclasses.asdict``/JSON form, unknown fields included in place."""
    out = {f.name: _json(f.spec, tree[f.name]) for f in CLASSES[cls].fields}
    extra = tree.get(EXTRA)
    if extra:
        out.update(extra)
    return out


def to_json(tree: dict) -> dict:
    """A snapshot tree as a JSON-ready dict (string env keys, ISO datetimes, float NaN/inf)."""
    return object_to_json(schema.SanctumSnapshot, tree)
