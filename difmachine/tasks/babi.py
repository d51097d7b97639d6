"""Story question answering in the style of the bAbI tasks (Weston et al. 2015), generated here.

``Babi(task=1)``: *single supporting fact*. People move between places; the question asks where
one of them is; the answer is the place of their latest move::

    mary moved to the bathroom . john went to the hallway . mary travelled to the office .
    where is mary ?  ->  office

``Babi(task=2)``: *two supporting facts*. People also pick up and drop objects; the question
asks where an object is: where it was dropped, or where the person carrying it is now (two
facts: who has it, and where they went)::

    john picked up the football . john went to the garden . where is the football ?  ->  garden

Each example is one story of ``min_sentences..max_sentences`` sentences and one answerable
question about its end. The story is the machine's context: ``Context(values[S, words] word
ids (0 = padding), mask[S])``; the question is the single input step, as a bag of words over
the vocabulary; the target is the answer word (one class per vocabulary word). Metrics:
``accuracy`` and ``errors = 1 - accuracy`` (the main metric). ``length`` (``--lengths``) is the
number of sentences.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import numpy as np

from .base import AbstractTask, Batch, Context, check_range
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
WORDS = 7  # the longest sentence: "daniel went back to the bathroom ." has 7 words


def generate_story(
    rng: np.random.Generator, task: int, sentences: int
) -> tuple[list[str], str, str]:
    """One story of ``sentences`` sentences, a question and its answer, simulating the world.
    Stories are redrawn until the question is answerable (task 2 needs at least 2 sentences:
    someone must go somewhere and pick something up)."""
    if sentences < task:
        raise ValueError(f"bAbI-style task {task} needs stories of at least {task} sentences")
    while True:
        where: dict[str, str] = {}  # person -> place
        holder: dict[str, str] = {}  # object -> person carrying it
        dropped: dict[str, str] = {}  # object -> place it was left
        story = []
        for _ in range(sentences):
            person = PEOPLE[rng.integers(len(PEOPLE))]
            carrying = [o for o, p in holder.items() if p == person]
            free = [o for o in OBJECTS if o not in holder]
            kind = "move"
            if task == 2 and person in where:
                kind = ("move", "take", "drop")[rng.integers(3)]
                if kind == "take" and not free or kind == "drop" and not carrying:
                    kind = "move"
            if kind == "move":
                place = PLACES[rng.integers(len(PLACES))]
                where[person] = place
                story.append(f"{person} {MOVES[rng.integers(len(MOVES))]} the {place} .")
            elif kind == "take":
                obj = free[rng.integers(len(free))]
                holder[obj] = person
                dropped.pop(obj, None)
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
        else:
            located = {o: where[p] for o, p in holder.items()} | dropped
            known = sorted(located)
            if known:
                obj = known[rng.integers(len(known))]
                return story, f"where is the {obj} ?", located[obj]


class Babi(AbstractTask):
    """bAbI-style task 1 or 2 (see the module docstring)."""

    task: int = eqx.field(static=True, default=1)
    min_sentences: int = eqx.field(static=True, default=2)
    max_sentences: int = eqx.field(static=True, default=10)

    main_metric: ClassVar[str] = "errors"
    length_name: ClassVar[str] = "sentences"

    def __check_init__(self):
        if self.task not in (1, 2):
            raise ValueError(
                f"Babi task must be 1 (single fact) or 2 (two facts), got {self.task!r}"
            )
        check_range("Babi", "sentences", self.min_sentences, self.max_sentences, self.task)

    @property
    def tokens(self) -> list[str]:
        return list(VOCAB)

    @property
    def input_size(self) -> int:
        return len(VOCAB)

    @property
    def output_size(self) -> int:
        return len(VOCAB)

    @property
    def contexts(self) -> dict[str, None]:
        """The story: word ids ``[sentences, WORDS]`` (not vectors: its width is ``None``)."""
        return {"story": None}

    @property
    def words(self) -> int:
        """Word slots per sentence of the story."""
        return WORDS

    def ids(self, sentence: str) -> list[int]:
        return [VOCAB.index(w) for w in sentence.split()]

    def sample(self, rng, batch_size, length=None):
        if length is not None and (not isinstance(length, (int, np.integer)) or length < 1):
            raise ValueError(f"Babi sample(length=...) must be a positive integer, got {length!r}")
        S = self.max_sentences if length is None else int(length)
        story = np.zeros((batch_size, S, WORDS), np.int32)
        story_mask = np.zeros((batch_size, S), np.float32)
        inputs = np.zeros((batch_size, 1, len(VOCAB)), np.float32)
        targets = np.zeros((batch_size, 1, len(VOCAB)), np.float32)
        for b in range(batch_size):
            n = S if length is not None else int(rng.integers(self.min_sentences, S + 1))
            sentences, question, answer = generate_story(rng, self.task, n)
            for i, sentence in enumerate(sentences):
                ids = self.ids(sentence)
                story[b, i, : len(ids)] = ids
            story_mask[b, :n] = 1.0
            np.add.at(inputs[b, 0], self.ids(question), 1.0)
            targets[b, 0, VOCAB.index(answer)] = 1.0
        ones = np.ones((batch_size, 1), np.float32)
        return Batch(inputs, targets, ones, ones.copy(), {"story": Context(story, story_mask)})

    def loss(self, outputs, targets, loss_mask):
        return softmax_cross_entropy(outputs, targets, loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        m = sequence_metrics(outputs, targets, loss_mask)
        return {"errors": m["errors"], "accuracy": m["coarse"]}

    def present(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)

    def labels(self, batch: Batch, index: int) -> dict:
        """The story's sentences (rows of the attention trace), the question and the answer."""
        story, mask = batch.context["story"].values[index], batch.context["story"].mask[index]
        sentences = [
            " ".join(VOCAB[i] for i in row if i > 0) for row, m in zip(story, mask) if m > 0
        ]
        question = [VOCAB[i] for i in np.flatnonzero(batch.inputs[index, 0])]  # a bag of words
        answer = VOCAB[int(batch.targets[index, 0].argmax())]
        return {"story": sentences, "question": question, "target": [answer]}


__all__ = ["Babi", "generate_story", "VOCAB", "WORDS", "PEOPLE", "PLACES", "OBJECTS"]
