"""``Fixed(n)``: exactly ``n`` inner steps per input step."""

from __future__ import annotations

import equinox as eqx
import jax

from ..protocol import AbstractHalting, CellOutput, Halted, check_counts


class Fixed(AbstractHalting):
    """Exactly ``n`` inner steps per input step, each seeing the same input; the output is the
    last inner step's. ``Fixed(1)`` is the plain recurrent machine. The devices' trace records
    of every inner step are kept (a memory network's attention per hop), so a trace has ``n``
    columns per input step."""

    n: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_counts(self, positive=("n",))

    @property
    def inner_steps(self) -> int:
        return self.n

    @property
    def trace_steps(self) -> int:
        return self.n

    @property
    def hoistable(self) -> bool:
        return self.n == 1

    def run(self, params, cell, carry, z):
        if self.n == 1:
            carry, out = cell(carry, z)
            return Halted(carry, out)

        def inner(c, _):
            return cell(c, z)

        carry, outs = jax.lax.scan(inner, carry, None, length=self.n)
        return Halted(carry, CellOutput(outs.h[-1], outs.reads[-1], outs.traces))
