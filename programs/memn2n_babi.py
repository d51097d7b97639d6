"""End-to-end memory network (Sukhbaatar et al. 2015) on generated bAbI-style stories.

Task: `Babi(task=1)`, single supporting fact ("where is mary?" after people moved around), or
`--set task=2`, two supporting facts ("where is the football?" after people picked up, carried
and dropped objects). Stories of 2..10 sentences are generated here (no downloads); the answer
is one word. Main metric `errors = 1 - accuracy`.

Machine, in this language: the story is the context of an `Attention("dot")` device whose
`StoryEmbedding` builds each sentence's key and value as position-encoded bags of words
(separate embeddings A and C) plus a temporal encoding; the question (a bag of words) is the
single input step, embedded by the compiler's input projection (the paper's B). `Fixed(hops)`
runs the cell `hops` times on it: each hop the controller emits a query, the device returns the
attention-weighted sum of the story's values, and the linear controller `RNN(dim,
activation="identity")` adds it to its state (`u' = H u + W o + B q`, the layer-wise variant).
The answer is read from the last hop.

The paper's two training aids, both off by default: `--set linear_start=N` trains the first N
steps without the memory's softmax ("linear start"), `--set empty=0.1` puts 10% random empty
memories into the training stories ("random noise"), which also trains the temporal encoding of
ages past the longest training story. `--set linear=true` never has the softmax (the weights are
the raw scores, which may be negative): on tasks 2 and 3 it learns far more than the softmax.
`--set task=3` asks three-fact questions ("where was the football before the kitchen?").

`difmachine trace runs/memn2n_babi` shows the attention over the story's sentences per hop
(one column per hop); `difmachine eval runs/memn2n_babi --lengths 5,10,15` varies the story
length (the temporal encoding covers up to `memory` sentences).
"""

import optax

import difmachine as dm

dim = dm.param("dim", 32)
memory = dm.param("memory", 20)
which = dm.param("task", 1)
task = dm.Babi(
    task=which,
    min_sentences=max(2, which),  # task 3 needs 3 sentences: an object carried between places
    max_sentences=dm.param("max_sentences", 10),
    empty=dm.param("empty", 0.0),
)
story = dm.StoryEmbedding(vocab=task.input_size, dim=dim, sentences=memory, words=task.words)

program = dm.Program(
    machine=dm.Machine(
        controller=dm.RNN(dim, activation="identity"),
        devices={
            "story": dm.Attention(
                "dot",
                story=story,
                linear_start=dm.param("linear_start", 0),
                linear=dm.param("linear", False),  # true: no softmax at all
            )
        },
        halting=dm.Fixed(dm.param("hops", 3)),
    ),
    task=task,
    optimizer=optax.chain(optax.clip_by_global_norm(40.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=dm.param("batch_size", 32),
    steps=dm.param("steps", 3000),
    eval_every=250,
    target=dm.param("target", 0.0, optional=True),
)
