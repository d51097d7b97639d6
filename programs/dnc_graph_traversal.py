"""Differentiable Neural Computer on graph traversal (after Graves et al. 2016, figure 3).

A random directed graph of 4..8 nodes, each with 2 outgoing edges of distinct labels (4 labels,
16 node names), arrives as edge triples (source, label, destination), one a step, in random
order; then the query: a start node and 1..4 labels to follow; then 2 blank planning steps;
then, one step per label, the machine must name the node reached (only those steps are scored;
`errors` = 1 unless the whole walk is right). Our own generator, `GraphTraversal`: the DNC
must write each triple to memory and at each hop look up the current node and label by content.

`difmachine eval runs/dnc_graph_traversal --lengths 8,12,16` scores graphs with more nodes than
trained (length = nodes, up to the 16 names). Training follows a curriculum over the walk's
length (`adaptive`, 0.1: one hop first, one hop more once under 10% of a 200-step window's walks
were wrong; `--set adaptive=0` for none). With it, 5 of 5 seeds learned walks of 1-4 hops, by
steps 21,500-23,000 (15-21 min each on this CPU), with 91-97% of whole walks right (median over
seeds) on graphs of 8, 12 and 16 nodes; without it, no seed learned even one hop in 8,000 steps
(README, the DNC's results). The NTM (programs/ntm_graph_traversal.py, the same curriculum)
stayed at one hop for 25,000 steps.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 100)),
        devices=dm.DNCMemory(
            slots=dm.param("slots", 32), width=dm.param("width", 24), read_heads=2
        ),
    ),
    task=dm.GraphTraversal(
        min_nodes=dm.param("min_nodes", 4),
        max_nodes=dm.param("max_nodes", 8),
        degree=2,
        edge_labels=4,
        ids=16,
        min_hops=1,
        max_hops=dm.param("max_hops", 4),
        plan=dm.param("plan", 2),
        adaptive=dm.param("adaptive", 0.1),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 1e-3))),
    batch_size=dm.param("batch_size", 16),
    steps=dm.param("steps", 40_000),
    eval_every=500,
    target=dm.param("target", 0.05, optional=True),
)
