"""The Neural Turing Machine memory (Graves, Wayne & Danihelka 2014)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import addressing
from .._init import full, zeros
from ..protocol import AbstractDevice, Field, TraceField, check_counts

_MEMORY_INITS = ("constant", "learned")


class NTMMemory(AbstractDevice):
    """An ``slots x width`` memory with location- and content-addressed read and write heads.

    Each step: every write head addresses the memory of the previous step, all write heads erase,
    then all add; then every read head addresses the *written* memory and reads. The controller
    receives the concatenated read vectors (``read_heads * width`` values).

    ``memory_init="constant"`` (the default) starts every slot at ``1e-6``: Collier & Beel (2018)
    found this small constant converges about twice as fast as learned or random initial memories.
    ``"learned"`` makes the initial memory a parameter (``[slots, width]``).

    The state stores the memory transposed, ``state["memory"]`` of shape ``[width, slots]`` (slot
    ``i`` is the column ``[:, i]``): the slot axis innermost makes the step's reductions over the
    memory contiguous (``difmachine.addressing``, ``slots_last``). Initial head weightings are
    learned (softmax of logits), starting focused on slot 0 so that location-based iteration (shift
    by +1 each step) has a place to start from; a uniform start could never focus.
    """

    slots: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    read_heads: int = eqx.field(static=True, default=1)
    write_heads: int = eqx.field(static=True, default=1)
    shifts: tuple[int, ...] = eqx.field(static=True, default=(-1, 0, 1), converter=tuple)
    memory_init: str = eqx.field(static=True, default="constant")
    init_value: float = eqx.field(static=True, default=1e-6)

    def __check_init__(self):
        check_counts(self, ("slots", "width"), ("read_heads", "write_heads"))
        if self.read_heads + self.write_heads == 0:
            raise ValueError(
                "NTMMemory needs at least one head: set read_heads or write_heads >= 1"
            )
        if 0 not in self.shifts:
            raise ValueError(f"NTMMemory shifts must contain 0 (staying put), got {self.shifts}")
        if len(set(self.shifts)) != len(self.shifts):
            raise ValueError(f"NTMMemory shifts must be distinct, got {self.shifts}")
        if any(abs(s) >= self.slots for s in self.shifts):
            raise ValueError(
                f"NTMMemory shifts {self.shifts} must be smaller in size than slots={self.slots}"
            )
        if self.memory_init not in _MEMORY_INITS:
            raise ValueError(
                f"NTMMemory memory_init must be one of {_MEMORY_INITS}, got {self.memory_init!r}"
            )

    # -- protocol -----------------------------------------------------------------------------

    def _head_fields(self, prefix: str, heads: int) -> dict[str, Field]:
        if heads == 0:
            return {}
        return {
            f"{prefix}_key": Field((heads, self.width), "tanh"),
            f"{prefix}_beta": Field((heads,), "softplus"),
            f"{prefix}_gate": Field((heads,), "sigmoid"),
            f"{prefix}_shift": Field((heads, len(self.shifts)), "softmax"),
            f"{prefix}_gamma": Field((heads,), "oneplus"),
        }

    def interface(self) -> dict[str, Field]:
        fields = self._head_fields("write", self.write_heads)
        if self.write_heads:
            fields["erase"] = Field((self.write_heads, self.width), "sigmoid")
            fields["add"] = Field((self.write_heads, self.width), "tanh")
        fields.update(self._head_fields("read", self.read_heads))
        return fields

    @property
    def read_size(self) -> int:
        return self.read_heads * self.width

    def init_params(self, key):
        def focused(heads):
            return zeros(heads, self.slots).at[:, 0].set(10.0)

        params = {
            "read_logits": focused(self.read_heads),
            "write_logits": focused(self.write_heads),
        }
        if self.memory_init == "learned":
            params["memory"] = 0.01 * jax.random.normal(key, (self.slots, self.width), jnp.float32)
        return params

    def init_state(self, params, context=None):
        if self.memory_init == "learned":
            memory = params["memory"].T
        else:
            memory = full((self.width, self.slots), self.init_value)
        return {
            "memory": memory,
            "read_w": jax.nn.softmax(params["read_logits"], axis=-1),
            "write_w": jax.nn.softmax(params["write_logits"], axis=-1),
        }

    def trace_spec(self):
        return {
            "write_weights": TraceField("heatmap", "write head {head} weighting"),
            "read_weights": TraceField("heatmap", "read head {head} weighting"),
            "write_gate": TraceField("scalars", "write gate g"),
            "write_gamma": TraceField("scalars", "write sharpen γ"),
            "write_beta": TraceField("scalars", "write key strength β"),
            "erase": TraceField("scalars", "mean erase"),
            "read_gate": TraceField("scalars", "read gate g"),
            "read_gamma": TraceField("scalars", "read sharpen γ"),
            "read_beta": TraceField("scalars", "read key strength β"),
        }

    def _address(self, prefix, memory, iface, w_prev):
        # a loop over the (few, static) heads: vmapping carried a size-1 head axis through
        # every op of the usual one-head machine
        heads = [
            addressing.address(
                memory,
                iface[f"{prefix}_key"][h],
                iface[f"{prefix}_beta"][h],
                iface[f"{prefix}_gate"][h],
                iface[f"{prefix}_shift"][h],
                iface[f"{prefix}_gamma"][h],
                w_prev[h],
                self.shifts,
                slots_last=True,
            )
            for h in range(w_prev.shape[0])
        ]
        return jnp.stack(heads)

    def step(self, params, state, iface):
        memory, read_w, write_w = state["memory"], state["read_w"], state["write_w"]
        trace = {}
        if self.write_heads:
            write_w = self._address("write", memory, iface, write_w)
            memory = addressing.write_many(
                memory, write_w, iface["erase"], iface["add"], slots_last=True
            )
            trace.update(
                write_weights=write_w,
                write_gate=iface["write_gate"],
                write_gamma=iface["write_gamma"],
                write_beta=iface["write_beta"],
                erase=jnp.mean(iface["erase"], axis=-1),
            )
        if self.read_heads:
            read_w = self._address("read", memory, iface, read_w)
            trace.update(
                read_weights=read_w,
                read_gate=iface["read_gate"],
                read_gamma=iface["read_gamma"],
                read_beta=iface["read_beta"],
            )
        reads = [
            addressing.read(memory, read_w[h], slots_last=True) for h in range(self.read_heads)
        ]
        reads = jnp.concatenate(reads) if reads else jnp.zeros((0,), memory.dtype)
        return reads, {"memory": memory, "read_w": read_w, "write_w": write_w}, trace


__all__ = ["NTMMemory"]
