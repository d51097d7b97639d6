"""Sequence-to-sequence token tasks and the bAbI-style story generator, checked independently."""

import datetime
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import difmachine as dm
from difmachine.tasks.babi import VOCAB, VOCAB3, generate_story

TOKEN_TASKS = [
    dm.ReverseString(symbols=6, min_length=2, max_length=7),
    dm.SortString(symbols=6, min_length=2, max_length=7),
    dm.Addition(max_digits=4),
    dm.DateFormat(),
]


def _strings(task, batch, b):
    labels = task.labels(batch, b)
    assert labels["target"][-1] == "<end>"
    return "".join(labels["source"]), "".join(labels["target"][:-1])


_FORMATS = ["%d %b %Y", "%d %B %Y", "%B %d, %Y", "%b %d %Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d"]


def _parse_date(text: str) -> datetime.date:
    """An independent reader of the generated formats (strptime, not the generator's code)."""
    text = re.sub(r"^[A-Z][a-z]+day, ", "", text)  # the weekday is redundant
    for fmt in _FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise AssertionError(f"unparseable date {text!r}")


@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 3))
def test_token_task_targets_are_right_by_construction(seed, index):
    task = TOKEN_TASKS[index]
    batch = task.sample(np.random.default_rng(seed), 4)
    for b in range(4):
        source, target = _strings(task, batch, b)
        if isinstance(task, dm.ReverseString):
            assert target == source[::-1]
        elif isinstance(task, dm.SortString):
            assert target == "".join(sorted(source))
        elif isinstance(task, dm.Addition):
            a, c = source.split("+")
            assert int(target) == int(a) + int(c) and len(a) <= 4 and len(c) <= 4
        else:
            assert target == _parse_date(source).isoformat()


@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 3))
def test_token_batch_layout_teacher_forcing_is_the_target_shifted_by_one(seed, index):
    task = TOKEN_TASKS[index]
    batch = task.sample(np.random.default_rng(seed), 3)
    V = len(task.vocab)
    assert batch.inputs.shape[-1] == task.input_size == V + 2
    assert batch.targets.shape[-1] == task.output_size == V + 1
    assert batch.context["source"].values.shape[-1] == task.contexts["source"] == V
    for b in range(3):
        n = int(batch.mask[b].sum())
        assert batch.inputs[b, 0].argmax() == V + 1, "the decoder starts from the start token"
        np.testing.assert_array_equal(
            batch.inputs[b, 1:n].argmax(-1), batch.targets[b, : n - 1].argmax(-1)
        )
        assert batch.targets[b, n - 1].argmax() == V, "the target ends with the end class"
        assert not batch.targets[b, n:].any() and not batch.mask[b, n:].any()
        np.testing.assert_array_equal(batch.mask[b], batch.loss_mask[b])


@pytest.mark.parametrize("task", TOKEN_TASKS[:3], ids=lambda t: type(t).__name__)
def test_fixed_length_evaluation_batches(task):
    batch = task.sample(np.random.default_rng(0), 5, length=6)
    for b in range(5):
        source, _ = _strings(task, batch, b)
        if isinstance(task, dm.Addition):
            assert [len(x) for x in source.split("+")] == [6, 6]
        else:
            assert len(source) == 6


def test_token_metrics_exact_match_and_positions_after_the_stop():
    task = dm.ReverseString(symbols=3, min_length=2, max_length=2)
    batch = task.sample(np.random.default_rng(0), 1)
    right = jnp.asarray(batch.targets[0]) * 10.0
    m = task.metrics(right, batch.targets[0], batch.loss_mask[0])
    assert float(m["exact"]) == 1.0 and float(m["errors"]) == 0.0
    wrong = right.at[1].set(jnp.roll(right[1], 1))
    m = task.metrics(wrong, batch.targets[0], batch.loss_mask[0])
    assert float(m["exact"]) == 0.0
    np.testing.assert_allclose(float(m["token_accuracy"]), 2 / 3)


def test_greedy_evaluation_counts_steps_after_an_early_end_as_wrong():
    from difmachine.training import batch_outputs

    task = dm.ReverseString(symbols=3, min_length=3, max_length=3)
    spec = dm.Seq2Seq(dm.LSTM(4), dm.Machine(dm.LSTM(4)))
    model = dm.compile(
        spec,
        task.input_size,
        task.output_size,
        key=jax.random.PRNGKey(0),
        contexts=task.contexts,
    )
    end = len(task.vocab)
    model = _with_output_bias(model, jnp.zeros(task.output_size).at[end].set(100.0))
    batch = task.sample(np.random.default_rng(0), 2)
    ys, _ = batch_outputs(model, batch, decode=True, task=task)
    m = jax.vmap(task.metrics)(ys, batch.targets, batch.loss_mask)
    np.testing.assert_allclose(m["token_accuracy"], 0.0)  # ended at once: nothing right


@given(seed=st.integers(0, 2**32 - 1), task=st.sampled_from(TOKEN_TASKS), end_right=st.booleans())
def test_content_is_scored_apart_from_the_end_token(seed, task, end_right):
    batch = task.sample(np.random.default_rng(seed), 1)
    y, lm = batch.targets[0], batch.loss_mask[0]
    outputs = np.asarray(y) * 10.0
    last = int(np.nonzero(lm)[0][-1])  # the end token's step
    if not end_right:  # the content right, the end token not: exact 0, content exact 1
        outputs[last] = np.roll(outputs[last], 1)
    plain = task.metrics(jnp.asarray(outputs), y, lm)
    content = task.content_metrics(jnp.asarray(outputs), y, lm)
    assert float(plain["exact"]) == float(end_right)
    assert float(content["exact"]) == 1.0 and float(content["token_accuracy"]) == 1.0
    outputs[0] = np.roll(outputs[0], 1)  # a content token wrong
    content = task.content_metrics(jnp.asarray(outputs), y, lm)
    assert float(content["exact"]) == 0.0


def test_evaluation_reports_content_at_forced_length():
    from difmachine.training import make_eval_step

    task = dm.ReverseString(symbols=3, min_length=3, max_length=3)
    spec = dm.Seq2Seq(dm.LSTM(4), dm.Machine(dm.LSTM(4)))
    model = dm.compile(
        spec, task.input_size, task.output_size, key=jax.random.PRNGKey(0), contexts=task.contexts
    )
    end = len(task.vocab)  # a machine that always says "end": greedy decoding stops at once
    model = _with_output_bias(model, jnp.zeros(task.output_size).at[end].set(100.0))
    metrics = make_eval_step(task)(model, task.sample(np.random.default_rng(0), 2))
    assert float(metrics["token_accuracy"]) == 0.0 and float(metrics["forced_exact"]) == 0.0
    # the forced decode ran the whole length: its content is scored (all "end": all wrong)
    assert float(metrics["forced_token_accuracy"]) == 0.0
    right = jnp.zeros(task.output_size).at[0].set(100.0)  # always token 0
    model = _with_output_bias(model, right)
    batch = task.sample(np.random.default_rng(1), 4)
    metrics = make_eval_step(task)(model, batch)
    expected = np.mean(
        [
            np.mean(np.argmax(batch.targets[b][batch.loss_mask[b] > 0][:-1], -1) == 0)
            for b in range(4)
        ]
    )  # the content tokens that are token 0; the machine never stops, so plain exact is 0
    np.testing.assert_allclose(float(metrics["forced_token_accuracy"]), expected, rtol=1e-6)


def _with_output_bias(model, bias):
    import equinox as eqx

    return eqx.tree_at(lambda m: m.decoder.params["b_o"], model, bias)


def test_token_task_errors_are_clear():
    with pytest.raises(ValueError, match="symbols must be between"):
        dm.ReverseString(symbols=40)
    with pytest.raises(ValueError, match="no length to vary"):
        dm.DateFormat().sample(np.random.default_rng(0), 1, length=3)
    with pytest.raises(ValueError, match="min_digits <= max_digits"):
        dm.Addition(min_digits=3, max_digits=2)


# -- bAbI-style stories ---------------------------------------------------------------------


def _answer(sentences: list[str], question: str) -> str:
    """An independent interpreter: replays the story's sentences on a fresh world model."""
    place_of: dict[str, str] = {}
    carrier: dict[str, str] = {}
    left_at: dict[str, str] = {}
    for s in sentences:
        words = s.rstrip(" .").split()
        person, rest = words[0], " ".join(words[1:])
        if m := re.fullmatch(r"(?:moved|went|journeyed|travelled|went back) to the (\w+)", rest):
            place_of[person] = m.group(1)
        elif m := re.fullmatch(r"(?:picked up|got|grabbed|took) the (\w+)", rest):
            carrier[m.group(1)] = person
            left_at.pop(m.group(1), None)
        elif m := re.fullmatch(r"(?:dropped|put down|discarded|left) the (\w+)", rest):
            carrier.pop(m.group(1))
            left_at[m.group(1)] = place_of[person]
        else:
            raise AssertionError(f"unknown sentence {s!r}")
    thing = question.split()[-2]
    if thing in carrier:
        return place_of[carrier[thing]]
    return left_at.get(thing) or place_of[thing]


@given(seed=st.integers(0, 2**32 - 1), task=st.sampled_from([1, 2]), n=st.integers(1, 25))
def test_babi_answers_are_right_by_construction(seed, task, n):
    if n < task:
        with pytest.raises(ValueError, match="at least 2 sentences"):
            generate_story(np.random.default_rng(seed), task, n)
        return
    sentences, question, answer = generate_story(np.random.default_rng(seed), task, n)
    assert len(sentences) == n
    assert _answer(sentences, question) == answer
    if task == 1:
        assert "picked" not in " ".join(sentences) and question.split()[2] != "the"


@given(seed=st.integers(0, 2**32 - 1), task=st.sampled_from([1, 2]))
def test_babi_batches_round_trip_through_the_vocabulary(seed, task):
    t = dm.Babi(task=task, max_sentences=8)
    batch = t.sample(np.random.default_rng(seed), 3)
    assert batch.context["story"].values.shape == (3, 8, t.words)
    for b in range(3):
        labels = t.labels(batch, b)
        n = int(batch.context["story"].mask[b].sum())
        assert len(labels["story"]) == n and 2 <= n <= 8
        question = " ".join(VOCAB[i] for i in np.flatnonzero(batch.inputs[b, 0]))
        thing = [w for w in question.split() if w not in ("where", "is", "the", "?")][0]
        assert _answer(labels["story"], f"where is {thing} ?") == labels["target"][0]


@given(seed=st.integers(0, 2**32 - 1), empty=st.sampled_from([0.1, 0.5]))
def test_babi_empty_memories_are_blank_sentences_among_the_story_in_training_only(seed, empty):
    t = dm.Babi(task=1, max_sentences=6, empty=empty)
    extra = math.ceil(empty * 6)
    batch = t.sample(np.random.default_rng(seed), 4)
    story = batch.context["story"]
    assert story.values.shape == (4, 6 + extra, t.words)
    for b in range(4):
        real = story.values[b][story.mask[b] > 0]
        assert (real == 0).all(axis=1).sum() <= extra  # the blanks: memories with no words
        sentences = [s for s in t.labels(batch, b)["story"] if s]  # the story, in order
        assert 1 <= len(sentences) <= 6
        question = " ".join(VOCAB[i] for i in np.flatnonzero(batch.inputs[b, 0]))
        person = [w for w in question.split() if w not in ("where", "is", "?")][0]
        assert _answer(sentences, f"where is {person} ?") == t.labels(batch, b)["target"][0]
    evaluated = t.evaluation_source().sample(np.random.default_rng(seed), 4)
    assert evaluated.context["story"].values.shape[1] == 6  # evaluation: no empty memories
    assert t.sample(np.random.default_rng(seed), 2, length=5).context["story"].mask.sum() == 10


def test_babi_task_3_asks_where_an_object_was_before_a_place():
    t = dm.Babi(task=3, min_sentences=3, max_sentences=8)
    assert t.tokens == list(VOCAB3) and VOCAB3[: len(VOCAB)] == VOCAB  # tasks 1-2 keep their ids
    batch = t.sample(np.random.default_rng(0), 8)
    for b in range(8):
        question = {VOCAB3[i] for i in np.flatnonzero(batch.inputs[b, 0])}
        assert {"where", "was", "before"} <= question
        assert t.labels(batch, b)["target"][0] in dm.tasks.babi.PLACES
    with pytest.raises(ValueError, match="empty must be a fraction"):
        dm.Babi(empty=1.0)
