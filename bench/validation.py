"""Validation benchmark: the archive's codec against msgspec doing the same job.

    pip install msgspec && python bench/validation.py

Issue 12 asks whether a well-kept library validates and converts a snapshot faster than our
codec (``codec.normalize``: the writer's ``WriteItem.of``). msgspec's nearest equivalent is
``to_builtins`` (the dataclass tree as dicts and lists) followed by ``convert`` into Struct
types generated from the same schema (field types checked in C). The bench prints both times
per snapshot and where msgspec's tree differs from the tree the archive stores (datetimes come
out as text, and the unknown fields real esper snapshots carry are not kept), which is why
using it would mean keeping our codec beside it.
"""

from __future__ import annotations

import datetime
import pickle
import sys
import timeit
import typing
from functools import partial

from sanctum_store import codec, demo, schema

try:
    import msgspec
except ImportError:  # pragma: no cover - the bench says what to install
    sys.exit("bench/validation.py needs msgspec: pip install msgspec")

_SCALARS = {"int": int, "float": float, "str": str, "bool": bool, "datetime": datetime.datetime}
_STRUCTS: dict[type, type] = {}


def _type(spec: codec.Spec) -> typing.Any:
    kind = spec.kind
    if kind in _SCALARS:
        out = _SCALARS[kind]
    elif kind == "object":
        out = _struct(spec.cls)
    elif kind in ("list", "deque"):
        out = list[_type(spec.item)]
    elif kind == "tuple":
        out = tuple[_type(spec.item), ...]
    elif kind == "pair":
        out = tuple[tuple(_type(item) for item in spec.items)]
    elif kind == "dict":
        out = dict[_type(spec.key), _type(spec.item)]
    else:
        out = typing.Any
    return out | None if spec.optional else out


def _struct(cls: type) -> type:
    if cls not in _STRUCTS:
        fields = [(f.name, _type(f.spec)) for f in codec.CLASSES[cls].fields]
        _STRUCTS[cls] = msgspec.defstruct(cls.__name__, fields, forbid_unknown_fields=True)
    return _STRUCTS[cls]


def _with_msgspec(snapshot, struct: type) -> dict:
    tree = msgspec.to_builtins(snapshot, enc_hook=list)  # deques as lists
    msgspec.convert(tree, struct)  # raises on a wrong type, naming the path
    return tree


def main() -> int:
    struct = _struct(schema.SanctumSnapshot)
    print(f"{'snapshot':>10} {'codec ms':>9} {'msgspec ms':>11} {'speed-up':>9}  same tree")
    for n_envs, number in ((4, 200), (128, 20)):
        snapshot = list(demo.snapshot_stream(n_envs, 3, 4, seed=1))[2]
        ours = min(timeit.repeat(partial(codec.normalize, snapshot), number=number, repeat=5))
        theirs = min(
            timeit.repeat(partial(_with_msgspec, snapshot, struct), number=number, repeat=5)
        )
        differences = list(_differences(codec.normalize(snapshot), _with_msgspec(snapshot, struct)))
        print(
            f"{n_envs:>5} envs {ours / number * 1e3:>9.3f} {theirs / number * 1e3:>11.3f}"
            f" {ours / theirs:>8.2f}x  {not differences}"
        )
        for path, what in differences[:3]:
            print(f"{'':>16}{path or '(top)'}: {what}")
        if len(differences) > 3:
            print(f"{'':>16}... {len(differences) - 3} more")
    return 0


def _differences(ours, theirs, path: str = ""):
    """Where two trees differ: (path, what), our value first."""
    if type(ours) is not type(theirs):
        yield path, f"{type(ours).__name__} {ours!r:.40} vs {type(theirs).__name__} {theirs!r:.40}"
    elif isinstance(ours, dict):
        for key in ours.keys() - theirs.keys():
            yield f"{path}.{key}", "not kept by msgspec"
        for key in ours.keys() & theirs.keys():
            yield from _differences(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(ours, (list, tuple)):
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            yield from _differences(a, b, f"{path}[{i}]")
    elif pickle.dumps(ours) != pickle.dumps(theirs):
        yield path, f"{ours!r:.40} vs {theirs!r:.40}"


if __name__ == "__main__":
    sys.exit(main())
