"""Tasks built from your own data: every format, the split, errors, training and eval --data."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.tasks.data import DataError

runner = CliRunner()
PROGRAMS = Path(__file__).parent.parent / "programs"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def bit_examples(n=12, width=3, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 2, size=(int(rng.integers(1, 4)), width)) for _ in range(n)]
    return xs, [x[::-1] for x in xs]


def write_bits(path: Path, xs, ys):
    if path.suffix == ".jsonl":
        path.write_text(
            "".join(
                json.dumps({"input": x.tolist(), "target": y.tolist()}) + "\n"
                for x, y in zip(xs, ys)
            )
        )
    elif path.suffix == ".tsv":
        vec = lambda s: " ".join("".join(str(int(b)) for b in v) for v in s)  # noqa: E731
        path.write_text("".join(f"{vec(x)}\t{vec(y)}\n" for x, y in zip(xs, ys)))
    else:
        L = max(len(x) for x in xs)
        pad = lambda s: np.stack([np.pad(a, ((0, L - len(a)), (0, 0))) for a in s])  # noqa: E731
        np.savez(
            path,
            inputs=pad(xs),
            targets=pad(ys),
            input_lengths=np.array([len(x) for x in xs]),
            target_lengths=np.array([len(y) for y in ys]),
        )
    return path


PAIRS = [("abc", "cba"), ("ab", "ba"), ("cab", "bac"), ("a", "a"), ("bca", "acb"), ("cc", "cc")]


def write_pairs(path: Path, pairs):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in pairs))
    elif path.suffix == ".tsv":
        path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    else:
        np.savez(
            path, source=np.array([s for s, _ in pairs]), target=np.array([t for _, t in pairs])
        )
    return path


def same_batches(a, b):
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    for x, y in zip(a.sample(rng(), 5), b.sample(rng(), 5)):
        if isinstance(x, dict):
            np.testing.assert_array_equal(x["source"].values, y["source"].values)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("suffix", [".jsonl", ".tsv", ".npz"])
def test_every_format_gives_the_arrays_examples(tmp_path, suffix):
    xs, ys = bit_examples()
    from_arrays = dm.BitSequences.from_arrays(xs, ys, validation=0.25)
    from_file = dm.BitSequences(write_bits(tmp_path / f"d{suffix}", xs, ys), validation=0.25)
    assert from_file.split_sizes() == from_arrays.split_sizes() == {"train": 9, "validation": 3}
    assert (from_file.input_size, from_file.output_size) == (4, 3)
    same_batches(from_file, from_arrays)

    tokens = dm.TokenPairs(write_pairs(tmp_path / f"p{suffix}", PAIRS), validation=0.34)
    assert tokens.vocab == ("a", "b", "c") and tokens.contexts == {"source": 3}
    same_batches(tokens, dm.TokenPairs.from_pairs(PAIRS, validation=0.34))


def test_bit_batches_lay_out_input_delimiter_and_scored_answer():
    x = np.array([[1, 0], [0, 1]])
    y = np.array([[1, 1], [0, 0], [1, 0]])
    task = dm.BitSequences.from_arrays([x, x[:1]], [y, y[:1]], validation=0.5)
    (batch, n), *_ = list(task.evaluation_batches(10, 4, seed=0)) + [(None, 0)]
    assert n == 1
    one = task.with_evaluation(split="train")
    both = [b for b, _ in one.evaluation_batches(10, 4, 0)] + [batch]
    longest = max(b.inputs.shape[1] for b in both)
    assert longest == 2 + 1 + 3  # the longest input, the delimiter, the longest target
    for b in both:
        L = int(b.inputs[0, :, -1].argmax())  # the delimiter step
        M = int(b.loss_mask[0].sum())
        np.testing.assert_array_equal(b.inputs[0, :L, :2], (x if L == 2 else x[:1]))
        np.testing.assert_array_equal(b.targets[0, L + 1 : L + 1 + M], (y if L == 2 else y[:1]))
        assert b.mask[0].sum() == L + 1 + M and b.loss_mask[0, : L + 1].sum() == 0


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 60), st.floats(0.05, 0.9), st.integers(0, 2**31))
def test_the_split_is_a_seeded_partition(n, fraction, seed):
    xs = [np.full((1, 2), i % 2) for i in range(n)]
    ids = [np.array([[i >> k & 1 for k in range(8)]]) for i in range(n)]  # tells rows apart
    k = int(round(fraction * n))
    if k == 0 or k == n:
        with pytest.raises(DataError, match="empty"):
            dm.BitSequences.from_arrays(xs, ids, validation=fraction, seed=seed)
        return
    task = dm.BitSequences.from_arrays(xs, ids, validation=fraction, seed=seed)
    again = dm.BitSequences.from_arrays(xs, ids, validation=fraction, seed=seed)
    rows = lambda t, w: sorted(
        int("".join(map(str, y[0].astype(int)[::-1])), 2) for _, y in t._examples(w)
    )  # noqa: E731
    assert rows(task, "validation") == rows(again, "validation")  # the same every time
    assert len(rows(task, "validation")) == k
    assert sorted(rows(task, "train") + rows(task, "validation")) == list(range(n))


def test_another_seed_gives_another_split():
    xs, ys = bit_examples(n=40)
    a = dm.BitSequences.from_arrays(xs, ys, seed=0)._examples("validation")
    b = dm.BitSequences.from_arrays(xs, ys, seed=1)._examples("validation")
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, b))


def test_data_tasks_are_static_specs(tmp_path):
    xs, ys = bit_examples()
    for task in (
        dm.BitSequences.from_arrays(xs, ys),
        dm.TokenPairs(write_pairs(tmp_path / "p.tsv", PAIRS * 3)),
    ):
        dm.check_spec(task)
        hash(task)
        assert task == type(task)(task._base(), validation=task.validation, seed=task.seed)
        assert "array(" not in repr(task)  # the examples are not in the spec


def test_explicit_validation_file_and_relative_names(tmp_path):
    xs, ys = bit_examples()
    write_bits(tmp_path / "train.jsonl", xs, ys)
    write_bits(tmp_path / "val.tsv", xs[:2], ys[:2])
    from difmachine.tasks.data import relative_to

    with relative_to(tmp_path):
        task = dm.BitSequences("train.jsonl", validation="val.tsv")
    assert task.split_sizes() == {"train": 12, "validation": 2}
    assert task.evaluation_size() == 2


def errors_of(tmp_path, name, text, kind=dm.BitSequences, **options):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as error:
        kind(path, **options)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_mistakes_are_one_line_errors_naming_file_and_line(tmp_path):
    good = '{"input": [[0, 1]], "target": [[1]]}\n'
    assert "no such data file" in str(
        pytest.raises(DataError, dm.BitSequences, tmp_path / "x.jsonl").value
    )
    assert "line 2: not valid JSON" in errors_of(tmp_path, "a.jsonl", good + "{oops\n")
    assert "line 3: each line must be a JSON object with keys 'input'" in errors_of(
        tmp_path, "b.jsonl", good + good + '{"in": 1}\n'
    )
    message = errors_of(tmp_path, "c.jsonl", good + '{"input": [[0, 1, 1]], "target": [[1]]}\n')
    assert "c.jsonl, line 2: input vectors have 3 bits, but line 1's have 2" in message
    assert "line 1: expected 2 tab-separated columns" in errors_of(tmp_path, "d.tsv", "01 10\n")
    assert "bit vectors of 0 and 1" in errors_of(tmp_path, "e.tsv", "01 12\t01\n")
    assert "is empty" in errors_of(tmp_path, "f.jsonl", good * 3, validation=0.1)
    assert "unknown data format '.csv'" in errors_of(tmp_path, "g.csv", "0,1\n")
    assert "holds no examples" in errors_of(tmp_path, "h.jsonl", "\n\n")
    assert "line 2: target is empty" in errors_of(
        tmp_path, "i.tsv", "ab\tba\nab\t\n", kind=dm.TokenPairs
    )
    with pytest.raises(DataError, match="validation must be a fraction in"):
        dm.BitSequences.from_arrays(*bit_examples(), validation=1.5)
    task = dm.TokenPairs.from_pairs(PAIRS, validation=0.34)
    with pytest.raises(DataError, match="token 'z', which the machine's vocabulary"):
        task.with_evaluation([("az", "za")])
    bits = dm.BitSequences.from_arrays(*bit_examples())
    with pytest.raises(DataError, match="machine was trained on 3"):
        bits.with_evaluation(bit_examples(width=5))
    with pytest.raises(dm.DifmachineError, match="tasks built from data"):
        dm.Copy().with_evaluation("x.jsonl")


def test_a_data_program_trains_evaluates_and_traces_through_the_cli(tmp_path, monkeypatch):
    program = tmp_path / "prog" / "bits.py"
    program.parent.mkdir()
    xs, ys = bit_examples(n=20)
    write_bits(program.parent / "bits.jsonl", xs, ys)
    program.write_text(
        "import optax\nimport difmachine as dm\n"
        "program = dm.Program(machine=dm.Machine(dm.LSTM(8)),\n"
        "    task=dm.BitSequences('bits.jsonl', validation=0.25), optimizer=optax.adam(1e-2),\n"
        "    batch_size=4, steps=4, eval_every=2, log_every=2)\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the data file's name is relative to the program
    out = tmp_path / "run"
    result = invoke("run", program, "--out", out)
    assert result.exit_code == 0, result.output
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if "eval/bit_errors" in r] == [2, 4]

    result = invoke("eval", out, "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    assert "5 sequences of the validation split" in " ".join(result.output.split())
    write_bits(elsewhere / "more.tsv", *bit_examples(n=3, seed=9))
    result = invoke("eval", out, "--data", "more.tsv", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["samples"] == 3
    assert invoke("eval", out, "--split", "train", "--samples", 4).exit_code == 0
    assert invoke("trace", out).exit_code == 0
    one_line_error(invoke("eval", out, "--data", "nothing.jsonl"), "no such data file")
    write_bits(elsewhere / "wide.jsonl", *bit_examples(n=3, width=5))
    one_line_error(invoke("eval", out, "--data", "wide.jsonl"), "trained on 3")
    one_line_error(invoke("eval", out, "--split", "test"), "'validation' or 'train'")
    picked = program.with_name("picked.py")
    picked.write_text(program.read_text().replace("log_every=2", "log_every=2, select_length=9"))
    one_line_error(  # before the first step, not at the first evaluation
        invoke("run", picked, "--out", tmp_path / "picked"), "has length 9 (lengths present:"
    )
    assert not (tmp_path / "picked" / "metrics.jsonl").exists()


def test_the_shipped_data_programs_read_their_files():
    for name, sizes in (("data_reverse_bits", (400, 100)), ("data_svo_sov", (216, 24))):
        program = dm.load_program(PROGRAMS / f"{name}.py")
        assert tuple(program.task.split_sizes().values()) == sizes


TOKEN = st.text(alphabet="abcxyz+-", min_size=1, max_size=3)


@settings(max_examples=10, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(TOKEN, min_size=1, max_size=4), st.lists(TOKEN, min_size=1, max_size=4)),
        min_size=2,
        max_size=12,
    ),
    st.sampled_from([".jsonl", ".tsv", ".npz"]),
)
def test_token_files_read_back_what_was_written(tmp_path_factory, pairs, suffix):
    path = tmp_path_factory.mktemp("tokens") / f"p{suffix}"
    write_pairs(path, [(" ".join(s), " ".join(t)) for s, t in pairs])
    task = dm.TokenPairs(path, validation=0.5, sep=" ")
    read = task._examples("train") + task._examples("validation")
    assert sorted(read) == sorted((tuple(s), tuple(t)) for s, t in pairs)
    assert set(task.vocab) == {w for s, t in pairs for w in (*s, *t)}


@pytest.mark.parametrize(
    "machine",
    [
        dm.NeuralGPU(channels=4, width=2, layers=1),
        dm.Machine(dm.GRU(8), dm.NeuralStack(width=4, capacity=16), halting=dm.ACT(max_ponder=2)),
        dm.Seq2Seq(encoder=dm.LSTM(8), decoder=dm.Machine(dm.LSTM(8), dm.Attention(size=8))),
    ],
    ids=["neural_gpu", "stack_act", "seq2seq"],
)
def test_every_machine_kind_takes_a_data_task(machine):
    """The train and evaluation steps trace (shapes, contexts, losses) for each kind; the CLI
    test above trains a Machine, programs/data_svo_sov.py a Seq2Seq."""
    import equinox as eqx
    import jax

    from difmachine.training import make_eval_step, make_train_step

    if isinstance(machine, dm.Seq2Seq):
        task = dm.TokenPairs.from_pairs(PAIRS, validation=0.34)
    else:
        task = dm.BitSequences.from_arrays(*bit_examples(n=8), validation=0.25)
    program = dm.Program(machine=machine, task=task, batch_size=2)
    model = dm.build(program)
    opt_state = program.optimizer.init(eqx.filter(model, eqx.is_array))
    batch = task.sample(np.random.default_rng(0), 2)
    _, _, metrics = jax.eval_shape(
        make_train_step(task, program.optimizer), model, opt_state, batch
    )
    assert metrics["loss"].shape == ()
    (evaluation, n), *_ = task.evaluation_batches(8, 8, 0)
    assert set(jax.eval_shape(make_eval_step(task), model, evaluation)) >= {task.main_metric}
