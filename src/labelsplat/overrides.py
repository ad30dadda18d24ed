"""``KEY=VALUE`` overrides of a typed dataclass config, as the CLI's repeatable ``--*-set`` options
take them (``--fit-set`` for :class:`labelsplat.splat.config.FitConfig`, ``--pp-set`` for
:class:`labelsplat.extract.PostprocessConfig`).

Values are read by the field's annotation: ``true``/``false`` for switches, numbers, words,
comma-separated tuples (``nose,neck`` or ``1,1,5``), and ``none`` (also ``null``/``off``) for an
optional field. A field whose value has its own grammar (e.g. ``l_eye:10,mouth:5``) passes a reader
in ``readers``; a field typed with a class that has ``parse(text)`` is read by it. Every problem is
one :class:`~labelsplat.errors.LabelsplatError` naming the option.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable

from .errors import LabelsplatError

VALUE_HINT = ("numbers as 0.1, switches as true/false, optional settings also as none, "
              "lists comma-separated (e.g. 1,1,5 or neck,nose)")


def parse_value(option: str, name: str, text: str, hint: Any,
                readers: dict[str, Callable[[str], Any]] | None = None, value_hint: str = VALUE_HINT) -> Any:
    """``text`` read as the type ``hint`` of field ``name`` (``option`` names the CLI option in errors)."""
    t = text.strip()
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
    grammar = getattr(base, "parse", None) if isinstance(base, type) else None  # a typed value read from its text
    if t.lower() in ("none", "null", "off"):
        if optional:
            return None
        if base is str or grammar is not None:  # a word of the setting's own grammar, e.g. semantic_grad=none
            return t if grammar is None else grammar(t)
        raise LabelsplatError(f"{option} {name}: this setting cannot be none")
    origin = typing.get_origin(base)
    try:
        if readers and name in readers:
            return readers[name](t)
        if grammar is not None:
            return grammar(t)
        if base is bool:
            if t.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(t)
            return t.lower() in ("true", "1", "yes")
        if base is int:
            return int(t)
        if base is float:
            return float(t)
        if base is str:
            return t
        if origin is tuple:
            item = (typing.get_args(base) or (str,))[0]
            parts = [p.strip() for p in t.split(",") if p.strip()]
            return tuple(p for p in parts) if item is str else tuple(float(p) for p in parts)
    except ValueError:
        pass
    raise LabelsplatError(f"{option} {name}={text}: cannot read the value as {hint}", hint=value_hint)


def parse_overrides(items: list[str] | None, cls: type, *, option: str, exclude: tuple[str, ...] = (),
                    readers: dict[str, Callable[[str], Any]] | None = None, example: str = "",
                    what: str = "setting", names_hint: str | None = None,
                    value_hint: str = VALUE_HINT) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> ``{field: typed value}`` for the dataclass ``cls``.

    ``exclude``: fields that cannot be set this way. ``none`` values are kept in the dict (an
    optional field set to None). Unknown keys and unreadable values raise one LabelsplatError
    (``what`` names a setting in it, ``names_hint`` replaces the list of valid names,
    ``value_hint`` the reminder of how values are written).
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in exclude]
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise LabelsplatError(f"{option} expects KEY=VALUE, got {item!r}", hint=f"e.g. {option} {example}".strip())
        key, value = (x.strip() for x in item.split("=", 1))
        if key not in names:
            raise LabelsplatError(f"{option}: unknown {what} {key!r}",
                                  hint=names_hint or f"the settings are {', '.join(names)}")
        out[key] = parse_value(option, key, value, hints[key], readers, value_hint)
    return out
