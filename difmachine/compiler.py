"""``compile``: any machine spec into its compiled machine, through the machine-kind protocol.

The compiler names no machine kind: a spec (:class:`~difmachine.protocol.AbstractMachine`) knows
how to compile itself (``Machine``, ``Seq2Seq`` and any kind a user writes).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax

from .protocol import AbstractCompiledMachine, AbstractMachine
from .specs import check_spec


def compile(
    machine: AbstractMachine,
    input_size: int,
    output_size: int,
    *,
    key: jax.Array,
    remat: bool = False,
    contexts: Mapping[str, int | None] | None = None,
    context_size: int | None = None,
) -> AbstractCompiledMachine:
    """Compile ``machine`` for inputs of width ``input_size`` and outputs of width
    ``output_size``, with fresh parameters from ``key``.

    ``contexts``: the widths of the named contexts the machine will be run with (a task's
    ``contexts``, e.g. ``{"source": 12}``); ``context_size=n`` is short for
    ``contexts={"source": n}``. ``remat=True`` wraps the time step in ``jax.checkpoint``: the
    backward pass recomputes each step instead of storing its intermediates (less memory
    traffic at large batches).
    """
    if not isinstance(machine, AbstractMachine):
        raise TypeError(
            "compile expects a machine spec such as Machine(...) or Seq2Seq(...), "
            f"got {type(machine).__name__}"
        )
    check_spec(machine)  # a hyperparameter that is not static: one line, not a tracer error
    contexts = dict(contexts or {})
    if context_size is not None:
        contexts.setdefault("source", context_size)
    return machine.compile(input_size, output_size, key=key, remat=remat, contexts=contexts)


__all__ = ["compile"]
