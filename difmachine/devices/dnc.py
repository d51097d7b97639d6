"""The Differentiable Neural Computer memory (Graves et al. 2016)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._init import zeros
from ..protocol import AbstractDevice, Field, TraceField, check_count, check_counts
from . import dnc_addressing as dnc

READ_MODES = ("backward", "content", "forward")


class DNCMemory(AbstractDevice):
    """A ``slots x width`` memory with one write head and ``read_heads`` read heads, addressed by
    content, by dynamic allocation (usage, free gates) and by temporal links (the order of writes).

    Each step (Graves et al. 2016, Methods; the equations are in
    :mod:`difmachine.devices.dnc_addressing`): the free gates and the previous read weights give
    the retention and the new usage; the write head writes to a mix of the least used slot
    (allocation) and a content lookup in the previous memory, erase then add; the link matrix
    and precedence record the order of writes; each read head reads with a distribution over
    following the links backward, a content lookup in the written memory, or forward. The
    controller receives the ``read_heads * width`` read values.

    The state starts all zero (memory, usage, links, precedence, weightings), as in the paper;
    the device has no parameters. The memory is stored slots last, ``[width, slots]``, like
    ``NTMMemory``. The link matrix is dense ``[slots, slots]``, so a step costs ``O(slots^2)``;
    ``sparse_links=K`` keeps only K entries per row and column of it (Rae et al. 2016), adding
    new links only between the K most written slots and the K slots of highest precedence, so a
    step costs ``O(slots (width + K + log slots))`` (``dnc_addressing.sparse_link_update``).
    """

    slots: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    read_heads: int = eqx.field(static=True, default=1)
    sparse_links: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_counts(self, ("slots", "width", "read_heads"))
        check_count("DNCMemory", "sparse_links", self.sparse_links, optional=True)
        if self.sparse_links is not None and self.sparse_links > self.slots:
            raise ValueError(
                f"DNCMemory sparse_links={self.sparse_links} exceeds slots={self.slots}: "
                "use sparse_links <= slots (or None for the dense link matrix)"
            )

    # -- protocol -----------------------------------------------------------------------------

    def interface(self) -> dict[str, Field]:
        R, W = self.read_heads, self.width
        return {
            "read_keys": Field((R, W), "identity"),
            "read_strengths": Field((R,), "oneplus"),
            "write_key": Field((W,), "identity"),
            "write_strength": Field((), "oneplus"),
            "erase": Field((W,), "sigmoid"),
            "write_vector": Field((W,), "identity"),
            "free_gates": Field((R,), "sigmoid"),
            "allocation_gate": Field((), "sigmoid"),
            "write_gate": Field((), "sigmoid"),
            "read_modes": Field((R, len(READ_MODES)), "softmax"),
        }

    @property
    def read_size(self) -> int:
        return self.read_heads * self.width

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        N, R = self.slots, self.read_heads
        if self.sparse_links is None:
            link = zeros(N, N)
        else:
            link = dnc.sparse_link_init(N, self.sparse_links)
        return {
            "memory": zeros(self.width, N),
            "usage": zeros(N),
            "link": link,
            "precedence": zeros(N),
            "read_w": zeros(R, N),
            "write_w": zeros(N),
        }

    def trace_spec(self):
        return {
            "allocation": TraceField("heatmap", "allocation weighting a"),
            "usage": TraceField("heatmap", "usage u"),
            "write_weights": TraceField("heatmap", "write weighting"),
            "read_weights": TraceField("heatmap", "read head {head} weighting"),
            "read_modes": TraceField(
                "options", "read head {head} mode", axis="mode", options=READ_MODES
            ),
            "forward": TraceField("heatmap", "read head {head} forward weighting f (links)"),
            "backward": TraceField("heatmap", "read head {head} backward weighting b (links)"),
            "free_gates": TraceField("scalars", "free gate f"),
            "allocation_gate": TraceField("scalars", "allocation gate"),
            "write_gate": TraceField("scalars", "write gate"),
        }

    def step(self, params, state, iface):
        memory, prev_read_w, prev_write_w = state["memory"], state["read_w"], state["write_w"]
        # dynamic allocation
        psi = dnc.retention(iface["free_gates"], prev_read_w)
        usage = dnc.usage_update(state["usage"], prev_write_w, psi)
        allocation = dnc.allocation_weights(usage)
        # write: allocation or content in the previous memory, then erase and add
        write_content = dnc.content_weights(memory, iface["write_key"], iface["write_strength"])
        write_w = dnc.write_weights(
            allocation, write_content, iface["allocation_gate"], iface["write_gate"]
        )
        memory = dnc.erase_and_add(memory, write_w, iface["erase"], iface["write_vector"])
        # temporal links
        if self.sparse_links is None:
            link = dnc.link_update(state["link"], write_w, state["precedence"])
            forward, backward = dnc.directional_weights(link, prev_read_w)
        else:
            link = dnc.sparse_link_update(state["link"], write_w, state["precedence"])
            forward, backward = dnc.sparse_directional_weights(link, prev_read_w)
        precedence = dnc.precedence_update(state["precedence"], write_w)
        # read: backward / content in the written memory / forward
        keys, strengths = iface["read_keys"], iface["read_strengths"]
        read_content = jnp.stack(
            [dnc.content_weights(memory, keys[h], strengths[h]) for h in range(self.read_heads)]
        )
        read_w = dnc.read_weights(iface["read_modes"], backward, read_content, forward)
        reads = dnc.read(memory, read_w).reshape(-1)
        new_state = {
            "memory": memory,
            "usage": usage,
            "link": link,
            "precedence": precedence,
            "read_w": read_w,
            "write_w": write_w,
        }
        trace = {
            "allocation": allocation[None],
            "usage": usage[None],
            "write_weights": write_w[None],
            "read_weights": read_w,
            "read_modes": iface["read_modes"],
            "forward": forward,
            "backward": backward,
            "free_gates": iface["free_gates"],
            "allocation_gate": iface["allocation_gate"][None],
            "write_gate": iface["write_gate"][None],
        }
        return reads, new_state, trace


__all__ = ["DNCMemory", "READ_MODES"]
