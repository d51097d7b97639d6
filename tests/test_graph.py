"""GraphTraversal: random graphs as edge triples, walks checked against plain Python."""

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import difmachine as dm
from difmachine.tasks.graph import random_graph, shortest_paths


def _walk(edges, start, labels):
    """Follow ``labels`` from ``start`` by scanning the triples (no dict built by the task)."""
    node, reached = start, []
    for label in labels:
        (node,) = [d for s, k, d in edges if s == node and k == label]  # exactly one edge
        reached.append(node)
    return reached


def _reachable(edges, start):
    seen, todo = {start}, deque([start])
    while todo:
        u = todo.popleft()
        for s, _, d in edges:
            if s == u and d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


@settings(max_examples=15)
@given(
    seed=st.integers(0, 2**32 - 1),
    nodes=st.integers(2, 6),
    degree=st.integers(1, 3),
    hops=st.integers(1, 5),
)
def test_answers_are_the_nodes_a_plain_walk_reaches(seed, nodes, degree, hops):
    task = dm.GraphTraversal(
        min_nodes=2, max_nodes=6, degree=degree, edge_labels=3, ids=8, min_hops=1, max_hops=hops
    )
    batch = task.sample(np.random.default_rng(seed), 2, length=nodes)
    for b in range(2):
        edges, query, reached = task.decode(batch, b)
        start, labels = query[0][0], [label for _, label, _ in query]
        names = {s for s, _, _ in edges}
        assert len(names) == nodes and len(edges) == nodes * degree
        assert all(s != d for s, _, d in edges)  # no self loops
        for n in names:  # degree edges out of every node, labels distinct
            assert sorted(k for s, k, _ in edges if s == n) == sorted(
                {k for s, k, _ in edges if s == n}
            )
        assert 1 <= len(labels) <= hops and len(reached) == len(labels)
        assert _walk(edges, start, labels) == reached
        assert set(reached) <= _reachable(edges, start)  # BFS agrees the walk stays in reach


def test_layout_masks_and_phases():
    task = dm.GraphTraversal(
        min_nodes=3, max_nodes=5, degree=2, edge_labels=3, ids=8, max_hops=3, plan=2
    )
    batch = task.sample(np.random.default_rng(0), 4)
    T = 5 * 2 + 2 * 3 + 2
    assert batch.inputs.shape == (4, T, 2 * 8 + 3 + 4) and batch.targets.shape == (4, T, 8)
    N_ID, K = 8, 3
    for b in range(4):
        L = int(batch.mask[b].sum())
        edges, query, _ = task.decode(batch, b)
        labels = [label for _, label, _ in query]
        h, E = len(labels), len(edges)
        assert L == E + 2 * h + 2 and np.all(batch.mask[b, L:] == 0)
        phase = batch.inputs[b, :L, 2 * N_ID + K :].argmax(-1).tolist()
        assert phase == [0] * E + [1] * h + [2] * 2 + [3] * h
        # only the answer steps are scored, each with one target node
        assert np.flatnonzero(batch.loss_mask[b]).tolist() == list(range(L - h, L))
        assert np.all(batch.targets[b].sum(-1) == batch.loss_mask[b])
        assert np.all(batch.inputs[b, L - h - 2 :, : 2 * N_ID + K] == 0)  # plan/answer: blank


def test_deterministic_by_seed_and_sizes_checked():
    task = dm.GraphTraversal()
    a, b = (task.sample(np.random.default_rng(3), 3) for _ in range(2))
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.inputs, task.sample(np.random.default_rng(4), 3).inputs)
    assert task.sample(np.random.default_rng(0), 1, length=16).inputs.shape[1] == 16 * 2 + 10
    with pytest.raises(ValueError, match="2..ids=16 nodes"):
        task.sample(np.random.default_rng(0), 1, length=17)
    with pytest.raises(ValueError, match="degree <= edge_labels"):
        dm.GraphTraversal(degree=5, edge_labels=4)
    with pytest.raises(ValueError, match="max_nodes <= ids"):
        dm.GraphTraversal(max_nodes=20, ids=16)
    names, edges = random_graph(np.random.default_rng(0), 5, 2, 4, 16)
    assert len(set(names)) == 5 and len(edges) == 10


def test_metrics_score_the_whole_walk():
    task = dm.GraphTraversal(min_nodes=3, max_nodes=3, max_hops=3, min_hops=3)
    batch = task.sample(np.random.default_rng(1), 1)
    y, lm = batch.targets[0], batch.loss_mask[0]
    right = y * 5.0
    m = task.metrics(right, y, lm)
    assert float(m["errors"]) == 0.0 and float(m["token_accuracy"]) == 1.0
    one_wrong = right.copy()
    t = int(np.flatnonzero(lm)[0])
    one_wrong[t] = np.roll(one_wrong[t], 1)
    m = task.metrics(one_wrong, y, lm)
    assert float(m["errors"]) == 1.0 and float(m["token_accuracy"]) == pytest.approx(2 / 3)


def _all_paths(edges, a, b, length):
    """Every path of ``length`` edges from ``a`` to ``b`` (node lists after ``a``), by DFS."""
    if length == 0:
        return [[]] if a == b else []
    return [
        [d, *rest] for s, _, d in edges if s == a for rest in _all_paths(edges, d, b, length - 1)
    ]


def _bfs_distance(edges, a, b):
    frontier, dist, seen = {a}, 0, {a}
    while frontier:
        if b in frontier:
            return dist
        frontier = {d for s, _, d in edges if s in frontier} - seen
        seen |= frontier
        dist += 1
    return None


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), nodes=st.integers(3, 6), degree=st.integers(1, 2))
def test_shortest_path_answers_are_the_unique_shortest_path(seed, nodes, degree):
    task = dm.ShortestPath(
        min_nodes=2, max_nodes=6, degree=degree, edge_labels=3, ids=8, min_hops=1, max_hops=3
    )
    batch = task.sample(np.random.default_rng(seed), 2, length=nodes)
    for b in range(2):
        edges, query, path = task.decode(batch, b)
        ((a, label, end),) = query
        assert label is None and path[-1] == end
        assert len(path) == _bfs_distance(edges, a, end)  # a shortest path, by plain BFS
        assert _all_paths(edges, a, end, len(path)) == [path]  # and the only one
        L = int(batch.mask[b].sum())
        assert L == nodes * degree + 1 + task.plan + len(path)
        assert np.flatnonzero(batch.loss_mask[b]).tolist() == list(range(L - len(path), L))


def test_shortest_paths_counts_paths():
    edges = [(0, 0, 1), (0, 1, 2), (1, 0, 3), (2, 0, 3), (3, 0, 4)]
    found = shortest_paths(edges, 0)
    assert {n: found[n][:2] for n in found} == {
        0: (0, 1),
        1: (1, 1),
        2: (1, 1),
        3: (2, 2),
        4: (3, 2),
    }


@pytest.mark.parametrize("kind", [dm.GraphTraversal, dm.ShortestPath])
def test_a_graph_task_traces_and_checks_its_sizes(kind):
    """A DNC traced on each graph task (the renderer draws inputs, targets and outputs)."""
    import io

    import jax
    from rich.console import Console

    from difmachine.trace import print_trace, run_example

    task = kind(min_nodes=3, max_nodes=4, ids=6, max_hops=2)
    model = dm.compile(
        dm.Machine(dm.LSTM(8), dm.DNCMemory(slots=6, width=4)),
        task.input_size,
        task.output_size,
        key=jax.random.key(0),
    )
    example = run_example(model, task, length=4, seed=0)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    print_trace(example, model, console)
    assert "read head 0 forward weighting" in console.file.getvalue()
    with pytest.raises(ValueError, match="plan must be a non-negative integer"):
        kind(plan=-1)
    if kind is dm.ShortestPath:  # 2 nodes, 2 edges each: both paths tie, no query to ask
        with pytest.raises(ValueError, match="no query to ask"):
            kind(min_nodes=2, max_nodes=2).sample(np.random.default_rng(0), 1)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level=st.integers(1, 4))
def test_the_hop_curriculum_draws_walks_up_to_its_level_in_one_shape(seed, level):
    """A curriculum level bounds the walks (and paths) drawn for training, mixing every length
    from min_hops up to it, without changing the padded shape (no recompile per level)."""
    for kind in (dm.GraphTraversal, dm.ShortestPath):
        task = kind(min_nodes=4, max_nodes=6, adaptive=0.1)
        batch = task.at_level(level).sample(np.random.default_rng(seed), 64)
        hops = set(batch.loss_mask.sum(1).astype(int))
        assert hops <= set(range(1, level + 1))
        if kind is dm.GraphTraversal:  # walks of every allowed length turn up in 64 draws
            assert hops == set(range(1, level + 1))
        full = task.sample(np.random.default_rng(seed), 64)
        assert batch.inputs.shape == full.inputs.shape


def test_the_hop_curriculum_moves_up_below_its_threshold_and_checks_its_values():
    task = dm.GraphTraversal(min_hops=1, max_hops=3, adaptive=0.1)
    assert task.curriculum_start() == 1 and dm.GraphTraversal().curriculum_start() is None
    assert task.next_level(1, 0.05) == 2 and task.next_level(1, 0.2) == 1
    assert task.next_level(3, 0.0) == 3  # the last level is max_hops
    assert "level" not in repr(task.at_level(2))  # training's state, not a setting
    with pytest.raises(ValueError, match="adaptive must be an error rate"):
        dm.GraphTraversal(adaptive=1.0)
    with pytest.raises(ValueError, match="level must be within 1..3 hops"):
        task.at_level(4)
