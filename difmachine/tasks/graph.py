"""Graph traversal on small random graphs described as edge triples (after Graves et al. 2016).

The DNC paper's graph tasks read a graph as a sequence of ``(source, edge label, destination)``
triples, then answer queries about it. :class:`GraphTraversal` is our own generator of the
traversal query: a random directed graph whose nodes have ``degree`` outgoing edges with
distinct labels (so a start node and a sequence of labels name one walk), the triples in random
order, then the query: the start node and the labels to follow; then ``plan`` blank steps to
think; then one answer step per label: the node reached after following it.

Node names are drawn at random (without repeats) from ``ids`` codes, so a graph of any size up
to ``ids`` nodes has the same input width: evaluation can use graphs larger than training's.
:class:`ShortestPath` asks for the shortest path between two nodes of such a graph instead.
"""

from __future__ import annotations

import abc
from collections import deque
from typing import ClassVar

import equinox as eqx
import jax
import numpy as np

from ..protocol import check_count
from .base import Batch, LevelCurriculum, check_range, positive
from .symbols import sequence_metrics, softmax_cross_entropy

EDGE, QUERY, PLAN, ANSWER = range(4)  # the phase channels, after the triple's channels
PHASES = ("edge", "query", "plan", "answer")


def random_graph(rng: np.random.Generator, nodes: int, degree: int, labels: int, ids: int):
    """``(names, edges)``: distinct node names from ``0..ids-1`` and the edges
    ``[(source, label, destination)]`` between names, ``degree`` per node with distinct labels
    (destinations uniform over the other nodes), in random order."""
    names = rng.choice(ids, size=nodes, replace=False)
    edges = []
    for i in range(nodes):
        for label in rng.choice(labels, size=degree, replace=False):
            j = int(rng.integers(nodes - 1))
            j += j >= i  # any node but i
            edges.append((int(names[i]), int(label), int(names[j])))
    order = rng.permutation(len(edges))
    return [int(n) for n in names], [edges[k] for k in order]


def random_walk(rng: np.random.Generator, names, edges, hops: int):
    """``(start, labels, reached)``: a random start node and ``hops`` labels of edges to follow
    from it, and the nodes each step reaches."""
    out: dict[int, dict[int, int]] = {}
    for s, label, d in edges:
        out.setdefault(s, {})[label] = d
    node = start = names[int(rng.integers(len(names)))]
    labels, reached = [], []
    for _ in range(hops):
        choices = sorted(out[node])
        label = choices[int(rng.integers(len(choices)))]
        node = out[node][label]
        labels.append(label)
        reached.append(node)
    return start, labels, reached


def shortest_paths(edges, start: int):
    """Breadth-first search from ``start``: ``{node: (distance, number of shortest paths,
    a predecessor on one)}`` for every node reachable from it."""
    out: dict[int, list[int]] = {}
    for s, _, d in edges:
        out.setdefault(s, []).append(d)
    found = {start: (0, 1, None)}
    todo = deque([start])
    while todo:
        u = todo.popleft()
        du, nu, _ = found[u]
        for v in out.get(u, []):
            if v not in found:
                found[v] = (du + 1, nu, u)
                todo.append(v)
            elif found[v][0] == du + 1:
                dv, nv, pv = found[v]
                found[v] = (dv, nv + nu, pv)
    return found


class _AbstractGraphTask(LevelCurriculum):
    """A random graph as edge triples, a query, ``plan`` blank steps, scored answer steps;
    subclasses define the query (:meth:`query`) and its longest length (:meth:`longest`)."""

    min_nodes: eqx.AbstractVar[int]
    max_nodes: eqx.AbstractVar[int]
    degree: eqx.AbstractVar[int]
    edge_labels: eqx.AbstractVar[int]
    ids: eqx.AbstractVar[int]
    min_hops: eqx.AbstractVar[int]
    max_hops: eqx.AbstractVar[int]
    plan: eqx.AbstractVar[int]
    main_metric: ClassVar[str] = "errors"
    length_name: ClassVar[str] = "nodes"
    level_range: ClassVar[str] = "within {lo}..{hi} hops"
    adaptive_hint: ClassVar[str] = ", e.g. 0.1"

    def __check_init__(self):
        name = type(self).__name__
        check_range(name, "nodes", self.min_nodes, self.max_nodes, 2)
        check_range(name, "hops", self.min_hops, self.max_hops)
        positive(name, "degree", self.degree)
        positive(name, "edge_labels", self.edge_labels)
        check_count(name, "plan", self.plan, 0)
        self.check_curriculum()
        if self.degree > self.edge_labels:
            raise ValueError(
                f"{name} degree={self.degree} exceeds edge_labels={self.edge_labels}: a node's "
                "edges need distinct labels, so use degree <= edge_labels"
            )
        if self.max_nodes > self.ids:
            raise ValueError(
                f"{name} max_nodes={self.max_nodes} exceeds ids={self.ids}: every node "
                "needs its own name, so use max_nodes <= ids"
            )

    @abc.abstractmethod
    def query(self, rng, names, edges):
        """``(rows, answers)``: the query steps as ``(source, label, destination)`` with
        ``None`` for an empty slot, and the answer nodes; ``None`` to draw another graph."""

    @abc.abstractmethod
    def longest(self) -> tuple[int, int]:
        """The most query steps and answer steps an example can have."""

    @property
    def hops(self) -> tuple[int, int]:
        """The range of walk (or path) lengths drawn: up to the curriculum's level if any."""
        return self.min_hops, self.max_hops if self.level is None else self.level

    def curriculum_range(self):
        return self.min_hops, self.max_hops

    @property
    def input_size(self) -> int:
        return 2 * self.ids + self.edge_labels + len(PHASES)

    @property
    def output_size(self) -> int:
        return self.ids

    def steps(self, nodes: int) -> int:
        """Steps a batch of graphs of up to ``nodes`` nodes is padded to."""
        queries, answers = self.longest()
        return nodes * self.degree + queries + self.plan + answers

    def sample(self, rng, batch_size, length=None):
        name = type(self).__name__
        if length is not None:
            if not isinstance(length, (int, np.integer)) or isinstance(length, bool):
                raise ValueError(f"{name} sample(length=...) must be a node count, got {length!r}")
            if not 2 <= length <= self.ids:
                raise ValueError(
                    f"{name} graphs have 2..ids={self.ids} nodes, got length={length}; "
                    "raise ids (with --set) for larger graphs"
                )
        N = self.max_nodes if length is None else int(length)
        T, N_ID, K = self.steps(N), self.ids, self.edge_labels
        src, lab, dst, phase = 0, N_ID, N_ID + K, 2 * N_ID + K
        inputs = np.zeros((batch_size, T, self.input_size), np.float32)
        targets = np.zeros((batch_size, T, N_ID), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        for b in range(batch_size):
            n = N if length is not None else int(rng.integers(self.min_nodes, N + 1))
            drawn = None
            for _ in range(1000):
                names, edges = random_graph(rng, n, self.degree, K, N_ID)
                drawn = self.query(rng, names, edges)
                if drawn is not None:
                    break
            else:
                raise ValueError(
                    f"{name}: 1000 random graphs of {n} nodes had no query to ask (e.g. no "
                    f"unique shortest path of {self.min_hops}..{self.max_hops} edges); use more "
                    "nodes, fewer edges per node (degree) or another hop range"
                )
            rows, answers = drawn
            t = 0
            for s, label, d in edges:
                inputs[b, t, [src + s, lab + label, dst + d, phase + EDGE]] = 1.0
                t += 1
            for s, label, d in rows:
                inputs[b, t, phase + QUERY] = 1.0
                for offset, value in ((src, s), (lab, label), (dst, d)):
                    if value is not None:
                        inputs[b, t, offset + value] = 1.0
                t += 1
            inputs[b, t : t + self.plan, phase + PLAN] = 1.0
            t += self.plan
            for node in answers:
                inputs[b, t, phase + ANSWER] = 1.0
                targets[b, t, node] = 1.0
                loss_mask[b, t] = 1.0
                t += 1
            mask[b, :t] = 1.0
        return Batch(inputs, targets, mask, loss_mask)

    def decode(self, batch: Batch, index: int):
        """``(edges, query, answers)`` of one example, read back from its arrays: the triples,
        the query steps as ``(source, label, destination)`` (``None`` where blank), the
        answer nodes."""
        N_ID, K = self.ids, self.edge_labels
        x, L = batch.inputs[index], int(batch.mask[index].sum())
        phase = x[:L, 2 * N_ID + K :].argmax(-1)

        def slot(v, lo, hi):
            return int(v[lo:hi].argmax()) if v[lo:hi].any() else None

        triples = [
            (slot(v, 0, N_ID), slot(v, N_ID, N_ID + K), slot(v, N_ID + K, 2 * N_ID + K))
            for v in x[:L]
        ]
        edges = [tr for tr, p in zip(triples, phase) if p == EDGE]
        query = [tr for tr, p in zip(triples, phase) if p == QUERY]
        answers = [int(v.argmax()) for v in batch.targets[index][batch.loss_mask[index] > 0]]
        return edges, query, answers

    def loss(self, outputs, targets, loss_mask):
        return softmax_cross_entropy(outputs, targets, loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        m = sequence_metrics(outputs, targets, loss_mask)
        return {"errors": m["errors"], "token_accuracy": m["token_accuracy"]}

    def present(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)


class GraphTraversal(_AbstractGraphTask):
    """Follow a sequence of edge labels from a start node in a graph given as edge triples.

    Input channels (``2 ids + edge_labels + 4``): the source node (one-hot over ``ids``), the edge
    label (one-hot over ``edge_labels``), the destination node (one-hot over ``ids``), then a phase
    flag (``edge``, ``query``, ``plan``, ``answer``). An example on ``n`` nodes with a walk of
    ``h`` hops takes ``n degree + h + plan + h`` steps:

    - ``n degree`` edge steps, one triple each, in random order;
    - ``h`` query steps: the first carries the start node (source slot) and the first label,
      the others the next labels;
    - ``plan`` blank steps (phase ``plan``) to think;
    - ``h`` answer steps (phase ``answer``): the target is the node reached after each label
      (classes = the ``ids`` node names); only these steps are scored.

    ``length`` (``--lengths``) is the number of **nodes**: training batches mix
    ``min_nodes..max_nodes``, evaluation on larger graphs takes ``sample(length=n)`` (up to
    ``ids``), with walks of ``min_hops..max_hops`` either way (change ``max_hops`` with
    ``--set`` to test longer walks). Batches are padded to the longest possible example, so a
    run compiles once. Metrics as the symbol tasks': ``errors`` (1 unless every node reached is
    right, the main metric), ``token_accuracy`` (the fraction of answer steps right).

    ``adaptive = b > 0``: a curriculum over the walk's length, as the DNC paper trained its
    graph tasks in lessons of growing difficulty. Training starts with walks of ``min_hops``
    and allows one hop more (walks drawn uniformly from ``min_hops`` up to the level, so the
    easier ones stay in the mix) whenever fewer than a fraction ``b`` of the training walks
    over a window of 200 steps were wrong, up to ``max_hops``. The level is logged (column
    ``level``) and kept in checkpoints; evaluation draws every walk length. Batches keep their
    padded shape at every level, so the run still compiles once.
    """

    min_nodes: int = eqx.field(static=True, default=4)
    max_nodes: int = eqx.field(static=True, default=8)
    degree: int = eqx.field(static=True, default=2)
    edge_labels: int = eqx.field(static=True, default=4)
    ids: int = eqx.field(static=True, default=16)
    min_hops: int = eqx.field(static=True, default=1)
    max_hops: int = eqx.field(static=True, default=4)
    plan: int = eqx.field(static=True, default=2)
    adaptive: float = eqx.field(static=True, default=0.0)
    level: int | None = eqx.field(static=True, default=None, repr=False)  # set by training

    def longest(self):
        return self.max_hops, self.max_hops

    def query(self, rng, names, edges):
        lo, hi = self.hops
        h = int(rng.integers(lo, hi + 1))
        start, labels, reached = random_walk(rng, names, edges, h)
        rows = [(start if i == 0 else None, label, None) for i, label in enumerate(labels)]
        return rows, reached


class ShortestPath(_AbstractGraphTask):
    """The shortest path between two nodes of a graph given as edge triples.

    The layout of :class:`GraphTraversal` (triples, query, ``plan`` blank steps, answers) with
    one query step, the start node in the source slot and the end node in the destination
    slot, and one answer step per edge of the shortest path: the nodes it passes through after
    the start, the end last. Queries are drawn among the pairs whose shortest path is unique
    and ``min_hops..max_hops`` edges long (a graph without one is redrawn), so every answer is
    determined. The number of answer steps tells the machine the path's length (the answer
    phase is marked in the input); the nodes are what it must find. ``length`` is the number of
    nodes, and ``adaptive`` a curriculum over the path's length, as for
    :class:`GraphTraversal`.
    """

    min_nodes: int = eqx.field(static=True, default=4)
    max_nodes: int = eqx.field(static=True, default=8)
    degree: int = eqx.field(static=True, default=2)
    edge_labels: int = eqx.field(static=True, default=4)
    ids: int = eqx.field(static=True, default=16)
    min_hops: int = eqx.field(static=True, default=1)
    max_hops: int = eqx.field(static=True, default=4)
    plan: int = eqx.field(static=True, default=4)
    adaptive: float = eqx.field(static=True, default=0.0)
    level: int | None = eqx.field(static=True, default=None, repr=False)  # set by training

    def longest(self):
        return 1, self.max_hops

    def query(self, rng, names, edges):
        pairs = []
        for a in names:
            for b, (dist, count, _) in sorted(shortest_paths(edges, a).items()):
                if count == 1 and self.hops[0] <= dist <= self.hops[1]:
                    pairs.append((a, b))
        if not pairs:
            return None
        a, b = pairs[int(rng.integers(len(pairs)))]
        found = shortest_paths(edges, a)
        path = [b]
        while path[-1] != a:
            path.append(found[path[-1]][2])
        return [(a, None, b)], path[::-1][1:]


__all__ = ["GraphTraversal", "ShortestPath", "random_graph", "random_walk", "shortest_paths"]
