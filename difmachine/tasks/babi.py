"""Story question answering in the style of the bAbI tasks (Weston et al. 2015), generated here.

``Babi(task=1)``: *single supporting fact*. People move between places; the question asks where
one of them is; the answer is the place of their latest move::

    mary moved to the bathroom . john went to the hallway . mary travelled to the office .
    where is mary ?  ->  office

``Babi(task=2)``: *two supporting facts*. People also pick up and drop objects; the question
asks where an object is: where it was dropped, or where the person carrying it is now (two
facts: who has it, and where they went)::

    john picked up the football . john went to the garden . where is the football ?  ->  garden

``Babi(task=3)``: *three supporting facts*, where an object was before a place it went to (see
:func:`generate_story`)::

    john got the milk . john went to the office . john travelled to the garden .
    where was the milk before the garden ?  ->  office

Each example is one story of ``min_sentences..max_sentences`` sentences and one answerable
question about its end. The story is the machine's context: ``Context(values[S, words] word
ids (0 = padding), mask[S])``; the question is the single input step, as a bag of words over
the vocabulary; the target is the answer word (one class per vocabulary word). Metrics:
``accuracy`` and ``errors = 1 - accuracy`` (the main metric). ``length`` (``--lengths``) is the
number of sentences.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import numpy as np

from ..protocol import check_fraction
from .base import AbstractTask, Batch, Context, LevelCurriculum, check_range
from .symbols import sequence_metrics, softmax_cross_entropy

PEOPLE = ("mary", "john", "sandra", "daniel")
PLACES = ("bathroom", "hallway", "garden", "office", "kitchen", "bedroom")
OBJECTS = ("football", "apple", "milk")
MOVES = ("moved to", "went to", "journeyed to", "travelled to", "went back to")
TAKES = ("picked up", "got", "grabbed", "took")
DROPS = ("dropped", "put down", "discarded", "left")
PAD = "<pad>"


def _vocabulary() -> tuple[str, ...]:
    words = {"where", "is", "the", "?", "."}
    for phrase in PEOPLE + PLACES + OBJECTS + MOVES + TAKES + DROPS:
        words.update(phrase.split())
    return (PAD, *sorted(words))


VOCAB = _vocabulary()
VOCAB3 = (*VOCAB, "before", "was")  # task 3's questions add two words (tasks 1-2 keep their ids)
WORDS = 7  # the longest sentence: "daniel went back to the bathroom ." has 7 words


def generate_story(
    rng: np.random.Generator, task: int, sentences: int
) -> tuple[list[str], str, str]:
    """One story of ``sentences`` sentences, a question and its answer, simulating the world.
    Stories are redrawn until the question is answerable (task 2 needs at least 2 sentences:
    someone must go somewhere and pick something up; task 3 at least 3: an object must be
    carried from one place to another).

    Task 3 (*three supporting facts*) asks where an object was before a place it went to
    (``where was the football before the kitchen ?``): its places are the consecutive distinct
    places it has been in (where it was picked up, then each place its carrier moved to); the
    place asked about is one it has been in only once, so the answer is unambiguous. In task
    3 a person picks up only an object lying where they are (or one not placed yet). Tasks 1
    and 2 draw exactly the random numbers they drew before task 3 existed."""
    if task not in (1, 2, 3):
        raise ValueError(f"bAbI-style tasks are 1, 2 and 3, got {task!r}")
    if sentences < task:
        raise ValueError(f"bAbI-style task {task} needs stories of at least {task} sentences")
    while True:
        where: dict[str, str] = {}  # person -> place
        holder: dict[str, str] = {}  # object -> person carrying it
        dropped: dict[str, str] = {}  # object -> place it was left
        history: dict[str, list[str]] = {}  # object -> its consecutive distinct places (task 3)
        story = []
        for _ in range(sentences):
            person = PEOPLE[rng.integers(len(PEOPLE))]
            carrying = [o for o, p in holder.items() if p == person]
            free = [o for o in OBJECTS if o not in holder]
            if task == 3:  # only what lies here (or was never placed) can be picked up
                free = [o for o in free if dropped.get(o, where.get(person)) == where.get(person)]
            kind = "move"
            if task >= 2 and person in where:
                kind = ("move", "take", "drop")[rng.integers(3)]
                if kind == "take" and not free or kind == "drop" and not carrying:
                    kind = "move"
            if kind == "move":
                place = PLACES[rng.integers(len(PLACES))]
                where[person] = place
                story.append(f"{person} {MOVES[rng.integers(len(MOVES))]} the {place} .")
                for obj in carrying:
                    if history[obj][-1] != place:
                        history[obj].append(place)
            elif kind == "take":
                obj = free[rng.integers(len(free))]
                holder[obj] = person
                dropped.pop(obj, None)
                if not history.get(obj) or history[obj][-1] != where[person]:
                    history.setdefault(obj, []).append(where[person])
                story.append(f"{person} {TAKES[rng.integers(len(TAKES))]} the {obj} .")
            else:
                obj = carrying[rng.integers(len(carrying))]
                del holder[obj]
                dropped[obj] = where[person]
                story.append(f"{person} {DROPS[rng.integers(len(DROPS))]} the {obj} .")
        if task == 1:
            known = sorted(where)
            if known:
                person = known[rng.integers(len(known))]
                return story, f"where is {person} ?", where[person]
        elif task == 2:
            located = {o: where[p] for o, p in holder.items()} | dropped
            known = sorted(located)
            if known:
                obj = known[rng.integers(len(known))]
                return story, f"where is the {obj} ?", located[obj]
        else:
            asked = [
                (o, i)
                for o in sorted(history)
                for i in range(1, len(history[o]))
                if history[o].count(history[o][i]) == 1
            ]
            if asked:
                obj, i = asked[rng.integers(len(asked))]
                places = history[obj]
                return story, f"where was the {obj} before the {places[i]} ?", places[i - 1]


class _BabiTask(AbstractTask):
    """What the bAbI-style tasks share: which generator task, story lengths, one class per
    word of ``vocabulary`` (inputs and outputs), the answer scored by ``accuracy``."""

    task: int = eqx.field(static=True, default=1)
    min_sentences: int = eqx.field(static=True, default=2)
    max_sentences: int = eqx.field(static=True, default=10)

    main_metric: ClassVar[str] = "errors"
    length_name: ClassVar[str] = "sentences"
    vocabulary: ClassVar[tuple[str, ...]]
    tasks: ClassVar[tuple[int, ...]]  # the generator tasks it takes
    tasks_named: ClassVar[str]  # ... as the error message names them

    def __check_init__(self):
        name = type(self).__name__
        if self.task not in self.tasks:
            raise ValueError(f"{name} task must be {self.tasks_named}, got {self.task!r}")
        check_range(name, "sentences", self.min_sentences, self.max_sentences, self.task)

    @property
    def tokens(self) -> list[str]:
        return list(self.vocabulary)

    @property
    def input_size(self) -> int:
        return len(self.vocabulary)

    @property
    def output_size(self) -> int:
        return len(self.vocabulary)

    def loss(self, outputs, targets, loss_mask):
        return softmax_cross_entropy(outputs, targets, loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        m = sequence_metrics(outputs, targets, loss_mask)
        return {"errors": m["errors"], "accuracy": m["coarse"]}

    def present(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)


class Babi(_BabiTask):
    """bAbI-style task 1, 2 or 3 (see the module docstring and :func:`generate_story`); task 3
    adds the question words ``was`` and ``before`` to the vocabulary.

    ``empty = p > 0``: random empty memories (Sukhbaatar et al. 2015, section 4.2, "random
    noise"), in training only. Each training story gets ``Binomial(n, p)`` empty sentences
    (memories with no words, at most ``ceil(p * max_sentences)``) at random places between its
    ``n`` sentences, which shifts the later sentences' ages: the temporal encoding then learns
    relative order rather than an exact sentence count, and ages past the longest training
    story get trained too. The paper adds 10% (``p = 0.1``). Evaluation's stories have none.
    """

    empty: float = eqx.field(static=True, default=0.0)

    tasks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    tasks_named: ClassVar[str] = "1, 2 or 3 (one, two or three supporting facts)"

    def __check_init__(self):
        check_fraction("Babi", "empty", self.empty, "a fraction of empty memories")

    @property
    def vocabulary(self) -> tuple[str, ...]:  # type: ignore[override]
        return VOCAB3 if self.task == 3 else VOCAB

    def evaluation_source(self) -> Babi:
        """The training mix without empty memories (they are a training-time noise)."""
        return dataclasses.replace(self, empty=0.0) if self.empty else self

    def _extra(self) -> int:
        """Room for empty memories in a training story: ``ceil(empty * max_sentences)``."""
        return math.ceil(self.empty * self.max_sentences)

    @property
    def contexts(self) -> dict[str, None]:
        """The story: word ids ``[sentences, WORDS]`` (not vectors: its width is ``None``)."""
        return {"story": None}

    @property
    def words(self) -> int:
        """Word slots per sentence of the story."""
        return WORDS

    def ids(self, sentence: str) -> list[int]:
        return [self.vocabulary.index(w) for w in sentence.split()]

    def sample(self, rng, batch_size, length=None):
        if length is not None and (not isinstance(length, (int, np.integer)) or length < 1):
            raise ValueError(f"Babi sample(length=...) must be a positive integer, got {length!r}")
        S = self.max_sentences if length is None else int(length)
        extra = self._extra() if length is None else 0  # empty memories: training only
        V = len(self.vocabulary)
        story = np.zeros((batch_size, S + extra, WORDS), np.int32)
        story_mask = np.zeros((batch_size, S + extra), np.float32)
        inputs = np.zeros((batch_size, 1, V), np.float32)
        targets = np.zeros((batch_size, 1, V), np.float32)
        for b in range(batch_size):
            n = S if length is not None else int(rng.integers(self.min_sentences, S + 1))
            sentences, question, answer = generate_story(rng, self.task, n)
            rows = np.arange(n)
            if extra:  # k empty memories at random places among the n + k
                k = min(int(rng.binomial(n, self.empty)), extra)
                blank = rng.choice(n + k, size=k, replace=False)
                rows = np.setdiff1d(np.arange(n + k), blank)
                n += k
            for i, sentence in zip(rows, sentences):
                ids = self.ids(sentence)
                story[b, i, : len(ids)] = ids
            story_mask[b, :n] = 1.0
            np.add.at(inputs[b, 0], self.ids(question), 1.0)
            targets[b, 0, self.vocabulary.index(answer)] = 1.0
        ones = np.ones((batch_size, 1), np.float32)
        return Batch(inputs, targets, ones, ones.copy(), {"story": Context(story, story_mask)})

    def labels(self, batch: Batch, index: int) -> dict:
        """The story's sentences (rows of the attention trace), the question and the answer."""
        story, mask = batch.context["story"].values[index], batch.context["story"].mask[index]
        vocab = self.vocabulary
        sentences = [
            " ".join(vocab[i] for i in row if i > 0) for row, m in zip(story, mask) if m > 0
        ]
        question = [vocab[i] for i in np.flatnonzero(batch.inputs[index, 0])]  # a bag of words
        answer = vocab[int(batch.targets[index, 0].argmax())]
        return {"story": sentences, "question": question, "target": [answer]}


ANSWER = "-"  # the answer marker of BabiWords: the step at which the answer is due
WORD_VOCAB = (*sorted({*VOCAB[1:], "was", "before"}), ANSWER)  # tasks 1-3 and the marker
QUESTION_WORDS = 8  # the longest question: "where was the football before the bathroom ?"


class BabiWords(_BabiTask, LevelCurriculum):
    """bAbI-style tasks 1-3 fed word by word, as the DNC reads them (Graves et al. 2016).

    The stories of :func:`generate_story` (``task=1``: single supporting fact, ``2``: two
    supporting facts, ``3``: three supporting facts, ``where was the apple before the
    kitchen ?``). One example is the story's words, one one-hot word per step (sentences end
    with ``.``), then the question's words (ending with ``?``), then the answer marker ``-``:
    the step at which the answer is due. Only that step is scored (``loss_mask``); its target
    is the answer word. Input channels and output classes are the words of
    :data:`WORD_VOCAB` (the same for the three tasks, the marker last); no padding word.

    Metrics: ``accuracy`` (the answer word right) and ``errors = 1 - accuracy`` (the main
    metric). ``length`` (``--lengths``) is the number of sentences of the story; training
    batches mix ``min_sentences..max_sentences`` and are padded to the longest possible
    example (``max_sentences * 7 + 9`` steps), so a run compiles once.

    ``adaptive = b > 0``: a curriculum over the story's length. Training starts with stories of
    ``min_sentences`` and allows one sentence more (lengths drawn uniformly from
    ``min_sentences`` up to the level) whenever fewer than a fraction ``b`` of the answers of a
    200-step window were wrong, up to ``max_sentences``; the level is logged and checkpointed,
    evaluation draws every length, and the padded shape stays the same.
    """

    adaptive: float = eqx.field(static=True, default=0.0)
    level: int | None = eqx.field(static=True, default=None, repr=False)  # set by training

    vocabulary: ClassVar[tuple[str, ...]] = WORD_VOCAB
    tasks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    tasks_named: ClassVar[str] = "1, 2 or 3 (one, two or three supporting facts)"

    level_range: ClassVar[str] = "within {lo}..{hi} sentences"

    def __check_init__(self):
        self.check_curriculum()

    def curriculum_range(self):
        return self.min_sentences, self.max_sentences

    def steps(self, sentences: int) -> int:
        """Steps a batch of stories of up to ``sentences`` sentences is padded to."""
        return sentences * WORDS + QUESTION_WORDS + 1

    def words_of(self, story: list[str], question: str) -> list[str]:
        """The example's input words: the story, the question, the answer marker."""
        return " ".join([*story, question, ANSWER]).split()

    def sample(self, rng, batch_size, length=None):
        if length is not None and (
            not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1
        ):
            raise ValueError(
                f"BabiWords sample(length=...) must be a positive number of sentences, "
                f"got {length!r}"
            )
        S = self.max_sentences if length is None else int(length)
        T, V = self.steps(S), len(WORD_VOCAB)
        inputs = np.zeros((batch_size, T, V), np.float32)
        targets = np.zeros((batch_size, T, V), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        for b in range(batch_size):
            top = S if self.level is None else self.level  # a curriculum's level caps training
            n = S if length is not None else int(rng.integers(self.min_sentences, top + 1))
            story, question, answer = generate_story(rng, self.task, n)
            ids = [WORD_VOCAB.index(w) for w in self.words_of(story, question)]
            L = len(ids)
            inputs[b, np.arange(L), ids] = 1.0
            targets[b, L - 1, WORD_VOCAB.index(answer)] = 1.0
            mask[b, :L] = 1.0
            loss_mask[b, L - 1] = 1.0
        return Batch(inputs, targets, mask, loss_mask)

    def labels(self, batch: Batch, index: int) -> dict:
        """The input words, one per step, and the answer (for traces)."""
        L = int(batch.mask[index].sum())
        words = [WORD_VOCAB[i] for i in batch.inputs[index, :L].argmax(-1)]
        return {"input": words, "target": [WORD_VOCAB[int(batch.targets[index, L - 1].argmax())]]}

    def output_labels(self, predictions):
        """The word the machine answers at the last step (the answer marker)."""
        return [WORD_VOCAB[int(np.asarray(predictions)[-1].argmax())]]


__all__ = [
    "Babi",
    "BabiWords",
    "generate_story",
    "VOCAB",
    "VOCAB3",
    "WORD_VOCAB",
    "WORDS",
    "PEOPLE",
    "PLACES",
    "OBJECTS",
]
