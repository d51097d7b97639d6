"""Specs safe by construction: :func:`check_spec` finds a hyperparameter that is not static.

A spec (a device, controller, halting policy or machine) is an :class:`equinox.Module` whose
hyperparameters are ``eqx.field(static=True)``: JAX then sees them as part of the function, not
as traced inputs. A field left non-static is a leaf of the pytree, so once the spec passes
through ``jax.jit`` (a compiled machine carries its spec) an ``int`` used as a shape becomes a
tracer and the run dies deep inside JAX. :func:`check_spec` says so in one line instead, naming
the class, the field, its value and the fix.

Non-static fields may hold only: modules (checked in turn), tuples, lists or dicts of them,
``None``, or arrays (specs normally hold none). Static fields must hold hashable values (a
``tuple``, not a ``list``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .errors import SpecError


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _annotation(field: dataclasses.Field, value: Any) -> str:
    if isinstance(field.type, str) and field.type:
        return field.type
    if isinstance(field.type, type):
        return field.type.__name__
    return type(value).__name__


def _is_array(value: Any) -> bool:
    return isinstance(value, (jax.Array, np.ndarray, np.generic)) and not isinstance(
        value, (np.bool_,)
    )


def _children(value: Any) -> list[tuple[str, Any]] | None:
    """``[(suffix, child)]`` when ``value`` is a container a non-static field may hold."""
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return [(f"[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return [(f"[{k!r}]", v) for k, v in value.items()]
    return None


def _allowed(value: Any) -> bool:
    if value is None or isinstance(value, eqx.Module) or _is_array(value):
        return True
    children = _children(value)
    return children is not None and all(_allowed(v) for _, v in children)


def _check(spec: eqx.Module, where: str) -> None:
    owner = type(spec).__name__
    at = f" (at {where})" if where else ""
    for field in dataclasses.fields(spec):
        if not field.init and not hasattr(spec, field.name):
            continue
        value = getattr(spec, field.name, None)
        if field.metadata.get("static", False):
            try:
                hash(value)
            except TypeError:
                hint = (
                    f"a tuple, {_short(tuple(value))},"
                    if isinstance(value, list)
                    else "a hashable value"
                )
                raise SpecError(
                    f"{owner} field {field.name!r}{at} is static but holds {_short(value)}, "
                    f"which cannot be hashed: give it {hint} instead"
                ) from None
            continue
        if not _allowed(value):
            raise SpecError(
                f"{owner} field {field.name!r}{at} holds {_short(value)}, a hyperparameter: "
                f"declare it `{field.name}: {_annotation(field, value)} = eqx.field(static=True)`"
            )
        _walk(value, f"{where}.{field.name}" if where else f"{owner}.{field.name}")


def _walk(value: Any, where: str) -> None:
    if isinstance(value, eqx.Module):
        _check(value, where)
        return
    for suffix, child in _children(value) or ():
        _walk(child, where + suffix)


def check_spec(spec: Any) -> None:
    """Raise :class:`~difmachine.errors.SpecError` (one line: class, field, value and fix) if
    ``spec`` or a module nested in its fields keeps a hyperparameter in a non-static field, or
    a static field holds an unhashable value. Returns ``None`` for a sound spec::

        class MyMemory(dm.AbstractDevice):
            slots: int = eqx.field(static=True)   # not `slots: int`
    """
    if not isinstance(spec, eqx.Module):
        raise SpecError(f"expected a spec (an equinox Module such as LSTM(8)), got {_short(spec)}")
    _check(spec, "")


def full_repr(spec: Any) -> str:
    """``spec`` with every field spelled out, defaults included (``Copy(bits=8, min_length=1,
    max_length=20)``, where ``repr`` gives ``Copy()``): what ``difmachine show`` prints."""
    if isinstance(spec, eqx.Module) and dataclasses.is_dataclass(spec):
        fields = (f for f in dataclasses.fields(spec) if f.repr)
        inner = ", ".join(f"{f.name}={full_repr(getattr(spec, f.name))}" for f in fields)
        return f"{type(spec).__name__}({inner})"
    if isinstance(spec, (tuple, list)) and not hasattr(spec, "_fields"):
        items = [full_repr(v) for v in spec]
        if isinstance(spec, tuple):
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        return "[" + ", ".join(items) + "]"
    if isinstance(spec, Mapping):
        return "{" + ", ".join(f"{k!r}: {full_repr(v)}" for k, v in spec.items()) + "}"
    if _is_array(spec):
        return f"{spec.dtype}{list(spec.shape)}"
    return repr(spec)


__all__ = ["check_spec", "full_repr"]
