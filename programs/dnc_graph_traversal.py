"""Differentiable Neural Computer on graph traversal (after Graves et al. 2016, figure 3).

A random directed graph of 4..8 nodes, each with 2 outgoing edges of distinct labels (4 labels,
16 node names), arrives as edge triples (source, label, destination), one a step, in random
order; then the query: a start node and 1..4 labels to follow; then 2 blank planning steps;
then, one step per label, the machine must name the node reached (only those steps are scored;
`errors` = 1 unless the whole walk is right). Our own generator, `GraphTraversal`: the DNC
must write each triple to memory and at each hop look up the current node and label by content.

`difmachine eval runs/dnc_graph_traversal --lengths 8,12,16` scores graphs with more nodes than
trained (length = nodes, up to the 16 names). `--set adaptive=0.1` trains with a curriculum over
the walk's length (one hop first). Over 5 seeds and 8,000 steps the DNC has not learned even the
one-hop lookup, with or without it (README, the DNC's results): a longer budget is next.
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
        adaptive=dm.param("adaptive", 0.0),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 1e-3))),
    batch_size=dm.param("batch_size", 16),
    steps=dm.param("steps", 20_000),
    eval_every=500,
    target=dm.param("target", 0.05),
)
