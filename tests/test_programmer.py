"""The Neural Programmer: the operation selector, its tasks, its trace and its training aids."""

import dataclasses
import io
import re
from fractions import Fraction

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

import difmachine as dm
from difmachine import testing
from difmachine.devices.programmer import (
    ARITHMETIC_OPS,
    TABLE_OPS,
    describe_program,
    entropy_bonus,
    select,
    with_selection,
)
from difmachine.tasks.programmer import ARITHMETIC, COLUMN_NAMES, VOCAB
from difmachine.trace import RENDERERS

R, C, N = 5, 3, 2  # rows, columns, question numbers: one shape, so each jitted check compiles once
seeds = st.integers(0, 2**31 - 1)

# -- plain numpy references of every operation -----------------------------------------------

REFERENCES = {
    "sum": lambda col, rows: np.sum(rows * col),
    "count": lambda rows: np.sum(rows),
    "difference": lambda earlier, later: earlier - later,
    "print": lambda col, rows: np.sum(rows * col) / max(1.0, np.sum(rows)),
    "greater": lambda col, pivot: np.array([1.0 if v > pivot else 0.0 for v in col]),
    "lesser": lambda col, pivot: np.array([1.0 if v < pivot else 0.0 for v in col]),
    "and": lambda a, b: np.array([min(x, y) for x, y in zip(a, b)]),
    "or": lambda a, b: np.array([max(x, y) for x, y in zip(a, b)]),
    "reset": lambda mask: mask.copy(),
    "load": lambda col: col[0],
    "add": lambda s, col: s + col[0],
    "subtract": lambda s, col: s - col[0],
    "multiply": lambda s, col: s * col[0],
    "divide": lambda s, col: s / col[0] if abs(col[0]) >= 1e-3 else s / np.copysign(1e-3, col[0]),
}


def test_every_op_has_a_reference():
    assert {op.name for op in TABLE_OPS + ARITHMETIC_OPS} == set(REFERENCES)


def random_world(seed):
    """A random table (integers, some rows padded), question numbers and pipe history."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-20, 100, size=(R, C)).astype(np.float32)
    real = int(rng.integers(1, R + 1))
    mask = (np.arange(R) < real).astype(np.float32)
    numbers = rng.integers(-20, 100, size=N).astype(np.float32)
    numbers_mask = np.ones(N, np.float32)
    scalars = rng.normal(0, 50, size=3).astype(np.float32)
    rows = (rng.uniform(size=(2, R)) * mask).astype(np.float32)
    return rng, dm.Table(values, mask, numbers, numbers_mask), scalars, rows


def inputs_of(op, col, pivot, mask, scalars, rows):
    out = []
    for kind in op.inputs:
        if kind == "column":
            out.append(col)
        elif kind == "pivot":
            out.append(pivot)
        elif kind == "mask":
            out.append(mask)
        else:
            base, k = kind.split("-")
            out.append((scalars if base == "scalar" else rows)[int(k) - 1])
    return out


@pytest.mark.parametrize("ops", [TABLE_OPS, ARITHMETIC_OPS], ids=["table", "arithmetic"])
def test_one_hot_mixture_is_the_hard_result_for_every_op(ops):
    """With one-hot op, column and pointer choices a step is exactly the chosen op's result,
    compared with a plain numpy evaluation of that op (and its pure function alike)."""
    device = dm.OpSelector(ops, columns=tuple(COLUMN_NAMES[:C]), numbers=N, scale=10.0)
    step = jax.jit(device.step)
    fields = device.interface()

    @given(seed=seeds, k=st.integers(0, len(ops) - 1))
    def prop(seed, k):
        rng, table, scalars, rows = random_world(seed)
        numbers = table.numbers
        if not device.pivot_ops:
            table = table._replace(numbers=None, numbers_mask=None)
        state = device.init_state({}, table)
        state["scalars"] = jnp.asarray(scalars[: device.history("scalar")])
        state["rows"] = jnp.asarray(rows[: device.history("rows")])
        j, i = int(rng.integers(C)), int(rng.integers(N))
        iface = {
            "op": jax.nn.one_hot(k, len(ops)),
            "column": jax.nn.one_hot(j, C),
            **{
                name: jnp.where(jnp.arange(N) == i, 0.0, -1e30)
                for name in fields
                if "pivot" in name
            },
        }
        read, new, trace = step({}, state, iface)
        op = ops[k]
        args = inputs_of(op, table.values[:, j], numbers[i], table.mask, scalars, rows)
        want = np.asarray(REFERENCES[op.name](*args), np.float64)
        direct = op.fn(*(jnp.asarray(a, jnp.float32) for a in args))
        np.testing.assert_allclose(direct, want, rtol=1e-5, atol=1e-4, err_msg=f"{op.name} fn")
        if op.output == "scalar":
            np.testing.assert_allclose(read[0] * 10.0, want, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(new["scalars"][0], want, rtol=1e-5, atol=1e-4)
            assert np.all(np.asarray(new["rows"][0]) == 0.0)
        else:
            np.testing.assert_allclose(new["rows"][0], table.mask * np.clip(want, 0, 1), atol=1e-6)
            assert float(read[0]) == 0.0
        # the pipe moved on by one step
        np.testing.assert_allclose(new["scalars"][1:], scalars[: device.history("scalar") - 1])

    prop()


def test_soft_mixture_is_the_probability_weighted_sum():
    device = dm.OpSelector(TABLE_OPS, columns=("A", "B", "C"), numbers=N)
    _, table, _, _ = random_world(3)
    state = device.init_state({}, table)
    alpha = jax.nn.softmax(jnp.arange(len(TABLE_OPS), dtype=jnp.float32) / 3)
    beta = jnp.array([0.2, 0.5, 0.3], jnp.float32)
    iface = {
        "op": alpha,
        "column": beta,
        "greater_pivot": jnp.zeros(N),
        "lesser_pivot": jnp.zeros(N),
    }
    read, _, _ = device.step({}, state, iface)
    sums = [np.sum(table.mask * table.values[:, j]) for j in range(C)]
    count = table.mask.sum()
    prints = [s / max(1.0, count) for s in sums]
    want = alpha[0] * np.dot(beta, sums) + alpha[1] * count + alpha[3] * np.dot(beta, prints)
    np.testing.assert_allclose(read[0], want, rtol=1e-5)


# -- hard and straight-through selection -------------------------------------------------------


@given(seed=seeds, k=st.integers(2, 9))
def test_select_hard_is_the_argmax_one_hot_and_straight_keeps_the_soft_gradient(seed, k):
    rng = np.random.default_rng(seed)
    p = jax.nn.softmax(jnp.asarray(rng.normal(0, 2, size=k), jnp.float32))
    w = jnp.asarray(rng.normal(size=k), jnp.float32)
    hard = np.zeros(k, np.float32)
    hard[int(np.argmax(np.asarray(p)))] = 1.0
    np.testing.assert_array_equal(select(p, "soft"), p)
    np.testing.assert_array_equal(select(p, "hard"), hard)
    np.testing.assert_allclose(select(p, "straight"), hard, atol=1e-6)
    # d/dp sum(w * select(p)): w through the soft and straight-through choices, 0 through hard
    grad = lambda mode: jax.grad(lambda q: jnp.sum(w * select(q, mode)))(p)
    np.testing.assert_allclose(grad("soft"), w, rtol=1e-6)
    np.testing.assert_allclose(grad("straight"), w, rtol=1e-6)
    np.testing.assert_array_equal(grad("hard"), np.zeros(k))


@pytest.mark.parametrize("ops", [TABLE_OPS, ARITHMETIC_OPS], ids=["table", "arithmetic"])
def test_hard_selection_runs_the_argmax_program(ops):
    """With soft (random) choices, ``selection="hard"`` and ``"straight"`` give exactly the
    soft device's step on the one-hot of every choice's argmax (op, column and pivot)."""
    soft = dm.OpSelector(ops, columns=tuple(COLUMN_NAMES[:C]), numbers=N, scale=10.0)
    hard = dataclasses.replace(soft, selection="hard")
    straight = dataclasses.replace(soft, selection="straight")
    fields = soft.interface()
    steps = {d.selection: jax.jit(d.step) for d in (soft, hard, straight)}

    @given(seed=seeds)
    def prop(seed):
        rng, table, scalars, rows = random_world(seed)
        if not soft.pivot_ops:
            table = table._replace(numbers=None, numbers_mask=None)
        state = soft.init_state({}, table)
        state["scalars"] = jnp.asarray(scalars[: soft.history("scalar")])
        state["rows"] = jnp.asarray(rows[: soft.history("rows")])
        logits = {
            name: rng.normal(0, 2, size=f.shape).astype(np.float32) for name, f in fields.items()
        }
        iface = {
            name: jax.nn.softmax(v) if fields[name].activation == "softmax" else jnp.asarray(v)
            for name, v in logits.items()
        }
        one_hot = {  # pivots: logits that put all the weight on the argmax
            name: jax.nn.one_hot(np.argmax(v), v.shape[0])
            if fields[name].activation == "softmax"
            else jnp.where(jnp.arange(N) == np.argmax(v), 0.0, -1e30)
            for name, v in logits.items()
        }
        want_read, want, _ = steps["soft"]({}, state, one_hot)
        for mode in ("hard", "straight"):
            read, new, trace = steps[mode]({}, state, iface)
            np.testing.assert_allclose(read, want_read, rtol=1e-5, atol=1e-6, err_msg=mode)
            np.testing.assert_allclose(new["scalars"], want["scalars"], rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(new["rows"], want["rows"], atol=1e-6)
            np.testing.assert_allclose(trace["op"], iface["op"])  # traces keep the probabilities

    prop()


def test_with_selection_switches_every_selector_and_shares_parameters():
    task = dm.TableQA(columns=2, max_rows=5)
    device = dm.OpSelector(TABLE_OPS, columns=task.names, numbers=2, scale=task.scale)
    machine = dm.Seq2Seq(
        encoder=dm.Encoder(dm.GRU(8)),
        decoder=dm.Machine(dm.GRU(8), {"programmer": device}, readout="programmer"),
    )
    model = dm.compile(
        machine, task.input_size, 1, key=jax.random.PRNGKey(0), contexts=task.contexts
    )
    hard = with_selection(model, "hard")
    selectors = lambda m: [
        x
        for x in jax.tree.leaves(m, is_leaf=lambda x: isinstance(x, dm.OpSelector))
        if isinstance(x, dm.OpSelector)
    ]
    assert [d.selection for d in selectors(model)] == ["soft", "soft"]  # spec and compiled
    assert [d.selection for d in selectors(hard)] == ["hard", "hard"]
    assert all(a is b for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(hard)))
    batch = task.sample(np.random.default_rng(0), 2)
    run = lambda m: jax.vmap(lambda x, k, c: m(x, k, trace=True, context=c))(
        batch.inputs, batch.mask, batch.context
    )
    (ys, _), (hard_ys, aux) = run(model), run(hard)
    assert not np.allclose(ys, hard_ys)  # an untrained soft mixture is not its argmax program
    # the hard program's answer is a value of a discrete program: here, from its trace, the
    # last step's scalar equals the read (readout) and rows are 0/1
    rows = np.asarray(aux["trace"]["programmer"]["rows"])
    assert set(np.unique(rows)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="selection must be one of"):
        with_selection(model, "sharp")


# -- protocol checks ------------------------------------------------------------------------------


def selector_invariants(final, reads, traces):
    rows = np.asarray(traces["rows"])
    assert np.all((rows >= 0.0) & (rows <= 1.0)), f"row selector outside [0, 1]: {rows}"
    mask = np.asarray(final["mask"])
    assert np.all(rows[:, mask == 0] == 0.0), "a padded row was selected"
    for key in ("op", "column"):
        p = np.asarray(traces[key])
        assert np.all(p >= 0.0) and np.allclose(p.sum(-1), 1.0, atol=1e-5), (
            f"{key} not a distribution"
        )


def test_table_selector_device_checks():
    _, table, _, _ = random_world(0)
    table = table._replace(numbers_mask=np.array([1.0, 0.0], np.float32))  # one padded number
    device = dm.OpSelector(TABLE_OPS, columns=("A", "B", "C"), numbers=N, scale=100.0)
    testing.check_device(device, context=table, steps=4, invariants=selector_invariants)


def test_arithmetic_selector_device_checks():
    context = dm.Context(np.array([[3.0, -7.0, 0.0]], np.float32), np.ones(1, np.float32))
    device = dm.OpSelector(ARITHMETIC_OPS, columns=("x1", "x2", "x3"), scale=10.0)
    testing.check_device(device, context=context, steps=3)


def test_padded_question_numbers_are_never_picked():
    _, table, _, _ = random_world(1)
    table = table._replace(
        numbers=np.array([10.0, 1e6], np.float32), numbers_mask=np.array([1.0, 0.0], np.float32)
    )
    device = dm.OpSelector(TABLE_OPS, columns=("A", "B", "C"), numbers=N)
    state = device.init_state({}, table)
    k = [op.name for op in TABLE_OPS].index("greater")
    iface = {
        "op": jax.nn.one_hot(k, len(TABLE_OPS)),
        "column": jax.nn.one_hot(0, C),
        "greater_pivot": jnp.array([0.0, 50.0]),  # prefers the padded number
        "lesser_pivot": jnp.zeros(N),
    }
    _, new, trace = device.step({}, state, iface)
    np.testing.assert_array_equal(new["rows"][0], table.mask * (table.values[:, 0] > 10.0))


def test_machine_with_readout_passes_machine_checks():
    _, table, _, _ = random_world(2)
    device = dm.OpSelector(TABLE_OPS, columns=("A", "B", "C"), numbers=N, scale=100.0)
    machine = dm.Machine(dm.GRU(8), {"programmer": device}, readout="programmer")
    model = testing.check_machine(machine, 3, 1, length=4, context=table)
    assert "W_o" not in model.params
    xs = jnp.ones((4, 3), jnp.float32)
    ys, aux = model(xs, trace=True, context=table)
    np.testing.assert_allclose(ys[:, 0] * 100.0, aux["trace"]["programmer"]["scalar"], rtol=1e-5)


def test_readout_errors():
    device = dm.OpSelector(TABLE_OPS, columns=("A",))
    with pytest.raises(ValueError, match="readout 'nope' must name one of its devices"):
        dm.Machine(dm.GRU(4), {"programmer": device}, readout="nope")
    machine = dm.Machine(dm.GRU(4), {"programmer": device}, readout="programmer")
    with pytest.raises(ValueError, match="reads 1 values but the task's output_size is 2"):
        dm.compile(machine, 3, 2, key=jax.random.PRNGKey(0))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: dm.OpSelector(numbers=0), "numbers must be a positive integer"),
        (lambda: dm.OpSelector(scale=-1.0), "scale must be a positive number"),
        (lambda: dm.OpSelector(ops=()), "non-empty tuple"),
        (lambda: dm.OpSelector(selection="argmax"), "selection must be one of"),
        (lambda: dm.OpSelector(ops=TABLE_OPS + TABLE_OPS[:1]), "names must be distinct"),
        (lambda: dm.Op("f", ("scalar-0",), "scalar", abs), "scalar-k or rows-k"),
        (lambda: dm.Op("f", ("column",), "vector", abs), "output must be one of"),
        (lambda: dm.TableQA(columns=9), "columns must be between 1 and 5"),
        (lambda: dm.TableQA(steps=3), "steps must be an integer >= 4"),
        (lambda: dm.TableQA(templates=("nope",)), "templates must be a non-empty subset"),
        (lambda: dm.TableQA(delta=0.0), "delta must be a positive number"),
        (lambda: dm.Arithmetic(operands=1), "operands must be an integer >= 2"),
        (lambda: dm.Arithmetic(ops=("power",)), "ops must be a non-empty subset"),
        (lambda: dm.Arithmetic(question="words"), "question must be 'whole' or 'clause'"),
        (lambda: dm.gradient_noise(-1.0), "eta must be a number >= 0"),
    ],
)
def test_bad_hyperparameters_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_table_shape_errors():
    device = dm.OpSelector(TABLE_OPS, columns=("A", "B"), numbers=N)
    _, table, _, _ = random_world(0)
    with pytest.raises(ValueError, match=r"table must be \[rows, 2\]"):
        device.init_state({}, table)
    with pytest.raises(ValueError, match="take a pivot"):
        device.init_state({}, dm.Context(table.values[:, :2], table.mask))


# -- tasks: answers by construction, checked by independent interpreters ---------------------


def interpret(question: str, table: np.ndarray) -> float:
    """An independent interpreter of the template language (regular expressions over the
    question text, Python loops over the table's rows)."""
    cols = {
        name: [float(r[i]) for r in table] for i, name in enumerate(COLUMN_NAMES[: table.shape[1]])
    }
    m = re.fullmatch(r"difference between sum of (\w) and sum of (\w)", question)
    if m:
        return sum(cols[m[1]]) - sum(cols[m[2]])
    m = re.fullmatch(r"(sum of|print|count) (?:rows|(\w))(?: where (\w) (.*))?", question)
    assert m, question
    what, target, key, condition = m.groups()
    keep = list(range(len(table)))
    if key is not None:
        clauses = re.split(r" (and|or) ", condition)
        tests = []
        for clause in clauses[::2]:
            op, value = re.fullmatch(r"(greater|lesser) than (-?[\d.]+)", clause).groups()
            v = float(value)
            tests.append((lambda x, v=v: x > v) if op == "greater" else (lambda x, v=v: x < v))
        joiner = all if len(clauses) == 1 or clauses[1] == "and" else any
        keep = [i for i in keep if joiner(t(cols[key][i]) for t in tests)]
    if what == "count":
        return float(len(keep))
    values = [cols[target][i] for i in keep]
    if what == "print":
        assert len(values) == 1, "print questions must pick exactly one row"
        return values[0]
    return sum(values)


@pytest.mark.parametrize("columns", [1, 3])
@given(seed=seeds)
def test_table_answers_match_an_independent_interpreter(columns, seed):
    task = dm.TableQA(columns=columns)
    batch = task.sample(np.random.default_rng(seed), 16)
    table = batch.context["table"]
    for b in range(16):
        question = " ".join(task.question_words(batch, b))
        rows = table.values[b][table.mask[b] > 0]
        assert batch.targets[b, -1, 0] == pytest.approx(interpret(question, rows), abs=1e-3), (
            question
        )
        assert batch.loss_mask[b].tolist() == [0.0] * (task.steps - 1) + [1.0]
        for c in range(columns):  # distinct values per column
            assert len(set(rows[:, c].tolist())) == len(rows)


def test_table_batches_cover_every_template_and_vary_rows():
    task = dm.TableQA(columns=3)
    batch = task.sample(np.random.default_rng(0), 200)
    firsts = {VOCAB[int(i)] for i in batch.context["source"].values[:, 0].argmax(-1)}
    assert firsts == {"sum", "count", "print", "difference"}
    assert batch.context["table"].mask.sum(-1).min() >= task.min_rows
    big = task.sample(np.random.default_rng(0), 4, length=20)
    assert big.context["table"].values.shape == (4, 20, 3)
    assert dm.TableQA(columns=1).kinds == tuple(k for k in dm.TableQA().kinds if k != "difference")


@pytest.mark.parametrize("columns", [1, 3])
def test_table_kind_names_each_question_template(columns):
    task = dm.TableQA(columns=columns)
    for kind in task.kinds:
        one = dm.TableQA(columns=columns, templates=(kind,))
        batch = one.sample(np.random.default_rng(0), 8)
        assert {one.kind(batch, b) for b in range(8)} == {kind}


@pytest.mark.parametrize("question", ["whole", "clause"])
@given(seed=seeds)
def test_arithmetic_answers_match_exact_fractions(question, seed):
    task = dm.Arithmetic(question=question)
    batch = task.sample(np.random.default_rng(seed), 16)
    for b in range(16):
        words = task.labels(batch, b)["question"]
        expression = " ".join(re.sub(r"x\d=", "", w) for w in words)
        exact = eval(re.sub(r"(\d+)", r"Fraction(\1)", expression), {"Fraction": Fraction})
        assert batch.targets[b, -1, 0] == pytest.approx(float(exact), rel=1e-5)
        ops = [name for name, (sym, _) in ARITHMETIC.items() for w in words if w == sym]
        assert sorted(task.kind(batch, b).split()) == sorted(ops)
        steps = batch.inputs[b, :, -task.steps :]
        np.testing.assert_array_equal(steps, np.eye(task.steps))
        if question == "clause":  # step t holds operand t's position and operation t - 1 only
            n, K = task.operands, len(task.ops)
            assert batch.inputs[b, :, :n].sum(-1).tolist() == [1.0] * n
            assert batch.inputs[b, :, n : n + K].sum(-1).tolist() == [0.0] + [1.0] * (n - 1)


def test_arithmetic_question_encodings_hold_the_same_questions():
    whole = dm.Arithmetic(question="whole").sample(np.random.default_rng(7), 32)
    clause = dm.Arithmetic(question="clause").sample(np.random.default_rng(7), 32)
    np.testing.assert_array_equal(whole.targets, clause.targets)
    assert whole.inputs.shape[-1] == 3 * 3 + 2 * 4 + 3 and clause.inputs.shape[-1] == 3 + 4 + 3
    for b in range(32):
        assert dm.Arithmetic(question="whole").labels(whole, b) == dm.Arithmetic(
            question="clause"
        ).labels(clause, b)


def test_answer_metrics_and_huber_loss():
    task = dm.TableQA(scale=100.0, delta=10.0, atol=0.5)
    targets = np.array([[0.0], [0.0], [0.0], [250.0]], np.float32)
    loss_mask = np.array([0, 0, 0, 1], np.float32)
    near = np.array([[9.0], [9.0], [9.0], [2.503]], np.float32)  # 250.3: right
    far = np.array([[0.0], [0.0], [0.0], [2.7]], np.float32)  # 270: wrong, Huber is linear
    assert float(task.metrics(near, targets, loss_mask)["accuracy"]) == 1.0
    assert float(task.metrics(far, targets, loss_mask)["accuracy"]) == 0.0
    assert float(task.loss(far, targets, loss_mask)) == pytest.approx((20 - 5), rel=1e-4)
    assert float(task.loss(near, targets, loss_mask)) == pytest.approx(0.5 * 0.3**2 / 10, rel=1e-2)
    np.testing.assert_allclose(task.present(near), near * 100.0)


# -- traces and training aids ---------------------------------------------------------------------


def test_program_trace_reads_as_a_program():
    device = dm.OpSelector(TABLE_OPS, columns=("A", "B", "C"), numbers=N)
    table = dm.Table(
        np.array([[10, 1, 0], [40, 2, 0], [50, 3, 0]], np.float32),
        np.ones(3, np.float32),
        np.array([30.0, 45.0], np.float32),
        np.ones(2, np.float32),
    )
    names = [op.name for op in TABLE_OPS]
    state, records = device.init_state({}, table), []
    for op, col in (("reset", 0), ("greater", 0), ("sum", 1), ("count", 2)):
        iface = {
            "op": jax.nn.one_hot(names.index(op), len(names)),
            "column": jax.nn.one_hot(col, C),
            "greater_pivot": jnp.array([0.0, -1e30]),
            "lesser_pivot": jnp.zeros(N),
        }
        _, state, trace = device.step({}, state, iface)
        records.append(trace["program"])
    spec = device.trace_spec()["program"]
    lines = describe_program(np.stack(records), spec.options)
    assert lines == [
        "step 1: reset() p=1.00",
        "step 2: greater(col A, 30) p=1.00",
        "step 3: sum(col B, rows[2]) p=1.00  -> 5",
        "step 4: count(rows[3]) p=1.00  -> 0",
    ]
    console = Console(file=io.StringIO(), width=100)
    console.print(*RENDERERS[spec.kind]("program", np.stack(records), spec, 100))
    assert "step 2: greater(col A, 30) p=1.00" in console.file.getvalue()


def test_trace_labels_the_row_selector_with_rows_and_the_attention_with_words():
    from difmachine.trace import render, run_example

    task = dm.TableQA(columns=2, min_rows=3, max_rows=3)
    device = dm.OpSelector(TABLE_OPS, columns=task.names, numbers=2, scale=task.scale)
    machine = dm.Seq2Seq(
        encoder=dm.Encoder(dm.GRU(8)),
        decoder=dm.Machine(
            dm.GRU(8),
            {"question": dm.Attention("additive", size=4), "programmer": device},
            readout="programmer",
        ),
    )
    model = dm.compile(
        machine, task.input_size, 1, key=jax.random.PRNGKey(0), contexts=task.contexts
    )
    example = run_example(model, task, seed=0)
    words, rows = example.labels["source"], example.labels["row"]
    assert len(rows) == 3 and all(re.fullmatch(r"A=\d+ B=\d+", r) for r in rows)
    assert words[0] in ("sum", "count", "print", "difference")
    console = Console(file=io.StringIO(), width=120)
    console.print(render(example, model))
    lines = console.file.getvalue().splitlines()

    def labels_after(title):
        start = next(i for i, line in enumerate(lines) if line.startswith(title))
        return [line.split()[0] for line in lines[start + 1 :] if line.strip()][:3]

    assert labels_after("row selector") == [r.split()[0] for r in rows]
    assert labels_after("attention") == words[:3]
    assert "row 3 rows (below)" in [" ".join(line.split()) for line in lines]


def test_gradient_noise_schedule_and_checkpointable_state():
    eta, gamma = 0.5, 0.55
    noise = dm.gradient_noise(eta, gamma, seed=1)
    params = jnp.zeros(20_000, jnp.float32)
    state = noise.init(params)
    for t in range(3):
        updates, state = noise.update(jnp.zeros_like(params), state)
        assert float(jnp.var(updates)) == pytest.approx(eta / (1 + t) ** gamma, rel=0.05)
    eqx.tree_serialise_leaves(io.BytesIO(), state)  # optax's typed key would fail here
    with pytest.raises(Exception, match="rng_key"):
        eqx.tree_serialise_leaves(io.BytesIO(), optax.add_noise(eta, gamma, key=1).init(params))


# -- the paper's pivot by content and history feedback ------------------------------------------


@given(seed=seeds)
def test_content_pivot_weighs_the_questions_numbers_by_their_encoder_states(seed):
    """pivot="content": a comparison's number is the softmax, over the real numbers, of the
    question's encoder state at each number dotted with the controller's query for that
    operation (the paper's pivot, with the query computed each step)."""
    rng, table, _, _ = random_world(seed)
    S, E = 6, 4
    states = rng.normal(size=(S, E)).astype(np.float32)
    positions = rng.choice(S, size=N, replace=False).astype(np.int32)
    table = table._replace(positions=positions, numbers_mask=np.array([1.0, 1.0], np.float32))
    if rng.uniform() < 0.5:  # a question with one number: the other is never picked
        table = table._replace(numbers_mask=np.array([1.0, 0.0], np.float32))
    source = dm.Context(states, np.ones(S, np.float32))
    device = dm.OpSelector(TABLE_OPS, columns=("A", "B", "C"), numbers=N, pivot="content")
    device = device.bind_context((None, E))
    assert device.interface()["greater_pivot"].shape == (E,)
    params = device.init_params(jax.random.PRNGKey(0))
    state = device.init_state(params, (table, source))
    names = [op.name for op in TABLE_OPS]
    query = rng.normal(size=E).astype(np.float32)
    iface = {
        "op": jax.nn.one_hot(names.index("greater"), len(names)),
        "column": jax.nn.one_hot(0, C),
        "greater_pivot": jnp.asarray(query),
        "lesser_pivot": jnp.zeros(E),
    }
    _, new, trace = device.step(params, state, iface)
    scores = states[positions] @ query
    scores = np.where(table.numbers_mask > 0, scores, -np.inf)
    weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    pivot = float(weights @ table.numbers)
    options = device.program_options()
    np.testing.assert_allclose(trace["program"][options.index("pivot greater")], pivot, rtol=1e-5)
    # hard selection runs the comparison with the argmax number
    hard = dataclasses.replace(device, selection="hard")
    _, new, _ = hard.step(params, hard.init_state(params, (table, source)), iface)
    chosen = table.numbers[int(np.argmax(scores))]
    np.testing.assert_array_equal(new["rows"][0], table.mask * (table.values[:, 0] > chosen))


def test_content_pivot_and_history_feedback_pass_the_device_checks():
    rng, table, _, _ = random_world(3)
    table = table._replace(positions=np.array([1, 4], np.int32))
    source = dm.Context(rng.normal(size=(6, 4)).astype(np.float32), np.ones(6, np.float32))
    device = dm.OpSelector(
        TABLE_OPS, columns=("A", "B", "C"), numbers=N, pivot="content", feedback="history"
    ).bind_context((None, 4))
    assert (device.read_size, device.answer_size) == (1 + len(TABLE_OPS) + C, 1)
    testing.check_device(device, context=(table, source), steps=4, invariants=selector_invariants)


def test_history_feedback_keeps_the_answer_from_the_controller():
    """feedback="history": the controller sees the operation and column it chose, not the
    step's scalar, so its choices depend on the question alone, never on the table's values;
    the machine's output (readout) is still the scalar."""
    _, table, _, _ = random_world(4)
    other = table._replace(values=table.values[::-1] * 3.0 + 7.0)
    xs = jnp.eye(4, dtype=jnp.float32)
    choices = {}
    for feedback in ("scalar", "history"):
        device = dm.OpSelector(
            TABLE_OPS, columns=("A", "B", "C"), numbers=N, scale=100.0, feedback=feedback
        )
        machine = dm.Machine(dm.GRU(8), {"programmer": device}, readout="programmer")
        model = dm.compile(machine, 4, 1, key=jax.random.PRNGKey(0))
        runs = [model(xs, trace=True, context=t) for t in (table, other)]
        for ys, aux in runs:
            np.testing.assert_allclose(
                ys[:, 0] * 100.0, aux["trace"]["programmer"]["scalar"], rtol=1e-5
            )
        ops = [np.asarray(aux["trace"]["programmer"]["op"]) for _, aux in runs]
        choices[feedback] = np.abs(ops[0] - ops[1]).max()
        assert not np.allclose(runs[0][0], runs[1][0])  # the answers differ with the table
    assert choices["history"] == 0.0
    assert choices["scalar"] > 1e-4  # the scalar fed back steers later choices
    # padding, jit == eager, vmap == loop, and the hoisted weight gradients (taken from the
    # masked reads the controller saw) equal plain autodiff's
    testing.check_machine(machine, 4, 1, length=4, context=table)


def test_content_pivot_compiles_in_a_seq2seq_and_explains_itself_elsewhere():
    task = dm.TableQA(columns=2, max_rows=5)
    device = dm.OpSelector(
        TABLE_OPS, columns=task.names, numbers=2, scale=task.scale, pivot="content"
    )
    machine = dm.Seq2Seq(
        encoder=dm.Encoder(dm.GRU(8)),
        decoder=dm.Machine(dm.GRU(8), {"programmer": device}, readout="programmer"),
    )
    assert machine.contexts_read() == {"source", "table"}
    model = dm.compile(
        machine, task.input_size, 1, key=jax.random.PRNGKey(0), contexts=task.contexts
    )
    assert model.decoder.machine.devices[0].interface()["lesser_pivot"].shape == (8,)
    batch = task.sample(np.random.default_rng(0), 3)
    ys, _ = jax.vmap(lambda x, m, c: model(x, m, context=c))(
        batch.inputs, batch.mask, batch.context
    )
    assert ys.shape == (3, task.input_size, 1) and np.isfinite(ys).all()
    alone = dm.Machine(dm.GRU(8), {"programmer": device}, readout="programmer")
    with pytest.raises(ValueError, match="reads the context 'source', which nothing provides"):
        alone.check_contexts({"table": None})
    with pytest.raises(ValueError, match="use it in the decoder of a Seq2Seq"):
        dm.compile(alone, 4, 1, key=jax.random.PRNGKey(0), contexts={"table": None})


@given(seed=seeds, weight=st.floats(1e-3, 1.0))
def test_entropy_bonus_adds_the_gradient_of_minus_weighted_entropy(seed, weight):
    """entropy_bonus(p, w) is p; its gradient is that of the loss minus w * H(p), as a
    reference written with the entropy in the loss says."""
    rng = np.random.default_rng(seed)
    z, c = (jnp.asarray(rng.normal(size=6), jnp.float32) for _ in range(2))
    H = lambda p: -jnp.sum(p * jnp.log(p))
    hooked = lambda z: jnp.sum(c * entropy_bonus(jax.nn.softmax(z), weight))
    reference = lambda z: jnp.sum(c * jax.nn.softmax(z)) - weight * H(jax.nn.softmax(z))
    np.testing.assert_allclose(hooked(z), jnp.sum(c * jax.nn.softmax(z)), rtol=1e-6)
    np.testing.assert_allclose(
        jax.jit(jax.grad(hooked))(z), jax.grad(reference)(z), rtol=1e-4, atol=1e-6
    )


def test_entropy_bonus_is_on_for_its_steps_then_off():
    device = dm.OpSelector(TABLE_OPS, columns=("A",), entropy=0.01, entropy_steps=5)
    assert device.at_step(0) is device and device.at_step(4) is device  # exploring: unchanged
    late = device.at_step(5)
    assert not late.exploring and late.at_step(9) is late and late.at_step(2).exploring
    always = dm.OpSelector(TABLE_OPS, columns=("A",), entropy=0.01)
    assert always.at_step(10**6) is always
    # the bonus changes the gradient of the choices, and only while exploring
    _, table, _, _ = random_world(5)
    table = table._replace(values=table.values[:, :1])  # one column
    op = jax.nn.softmax(jnp.arange(len(TABLE_OPS), dtype=jnp.float32) / 4)
    iface = {"column": jnp.ones(1), "greater_pivot": jnp.zeros(N), "lesser_pivot": jnp.zeros(N)}

    def grad_of(d):
        answer = lambda op: d.step({}, d.init_state({}, table), {**iface, "op": op})[0][0]
        return jax.grad(answer)(op)

    off = dm.OpSelector(TABLE_OPS, columns=("A",), numbers=N)
    on = dataclasses.replace(off, entropy=0.01, entropy_steps=5)
    assert not np.allclose(grad_of(on), grad_of(off))
    np.testing.assert_allclose(grad_of(on.at_step(5)), grad_of(off))
    with pytest.raises(ValueError, match="entropy must be a number >= 0"):
        dm.OpSelector(TABLE_OPS, entropy=-1.0)
    with pytest.raises(ValueError, match="entropy_steps"):
        dm.OpSelector(TABLE_OPS, entropy_steps=-1)
