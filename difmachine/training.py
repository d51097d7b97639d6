"""Training: the jitted train step, evaluation, and the run loop with progress and checkpoints."""

from __future__ import annotations

import functools
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import checkpoint
from .errors import DifmachineError
from .optim import learning_rate_scale, loss_weights
from .parallel import DataParallel
from .program import Program, build
from .rundir import (
    BEST,
    CHECKPOINT,
    METRICS,
    MetricsLog,
    clean_temporaries,
    eval_record,
    locked,
    warm_start,
    write_program,
)
from .stochastic import Reinforce, reinforce_terms, reward_to_go_terms, sample_key
from .tasks.base import AbstractTask, Batch

EVAL_STREAM = 1  # separates evaluation randomness from training randomness
MAX_REFUSED = 100  # refused (non-finite) steps in a row after which a run stops


def batch_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The data of training step ``step`` depends only on (seed, step): resuming replays exactly."""
    return np.random.default_rng([seed, stream, step])


def _gradients(
    model, task, batch, chunk: int | None = None, keys=None, reinforce=None, weights=None
):
    """``((total, metrics), grads)`` of the batch mean loss (``weights``: factors on auxiliary
    losses, :func:`difmachine.adaptive_weight`). With ``chunk``, a batch of several
    chunks runs forward and backward one chunk at a time (``lax.map``) and averages the chunks'
    gradients, which is the same mean: each chunk's working set then stays in cache through its
    backward pass (bench/FINDINGS.md, item 8)."""
    size = batch.inputs.shape[0]
    if chunk is None or size <= chunk or size % chunk:
        return _value_and_grad(model, task, batch, keys, reinforce, weights)
    # chunk j holds examples j, j + n, j + 2n, ...: split over devices along the batch, every
    # device then holds its own share of every chunk and the loop over chunks needs no exchange
    n = size // chunk
    chunks = jax.tree.map(
        lambda x: jnp.swapaxes(x.reshape(chunk, n, *x.shape[1:]), 0, 1), (batch, keys)
    )
    per_chunk = jax.lax.map(
        lambda chunk: _value_and_grad(model, task, chunk[0], chunk[1], reinforce, weights), chunks
    )
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), per_chunk)


def _value_and_grad(model, task, batch, keys=None, reinforce=None, weights=None):
    """``((total, metrics), grads)`` of one batch. A machine with :meth:`probes
    <difmachine.machine.CompiledMachine.probes>` has its in-loop weight gradients taken after
    the backward scan, one matmul each, instead of accumulated step by step (bench/FINDINGS.md,
    item 7): the same gradient up to float rounding, 1.1-1.2x faster at batch 1."""
    size, steps = batch.inputs.shape[:2]
    probes = model.probes(steps, size)
    if probes is None:

        def plain(model):
            return _loss(model, task, batch, keys=keys, reinforce=reinforce, weights=weights)[:2]

        return eqx.filter_value_and_grad(plain, has_aux=True)(model)

    def loss(model_and_probes):
        model, probes = model_and_probes
        total, metrics, aux = _loss(
            model, task, batch, probes=probes, keys=keys, reinforce=reinforce, weights=weights
        )
        return total, (metrics, aux["taps"])

    grad_fn = eqx.filter_value_and_grad(loss, has_aux=True)
    (total, (metrics, taps)), (grads, cotangents) = grad_fn((model, probes))
    return (total, metrics), model.hoisted_gradients(grads, taps, cotangents)


def at_step(model, opt_state, step: int):
    """The model in its form after ``step`` training steps (``AbstractCompiledMachine.at_step``:
    the form the next step trains and an evaluation at ``step`` uses) and the optimizer's state
    to match: the same objects when nothing changes."""
    staged = model.at_step(step)
    if staged is model:
        return model, opt_state
    return staged, restructured(opt_state, model, staged)


def restructured(opt_state, old: eqx.Module, new: eqx.Module):
    """``opt_state`` for ``new``, a model with ``old``'s arrays in another form (e.g.
    :meth:`~difmachine.protocol.AbstractDevice.at_step`): an optimizer's state holds trees shaped
    like the model's arrays, whose structure carries the model's static fields; each of them is
    rebuilt with ``new``'s structure around the same leaves."""
    old_def = jax.tree.structure(eqx.filter(old, eqx.is_array))
    new_def = jax.tree.structure(eqx.filter(new, eqx.is_array))
    shaped = lambda x: jax.tree.structure(x) == old_def
    return jax.tree.map(
        lambda x: jax.tree.unflatten(new_def, jax.tree.leaves(x)) if shaped(x) else x,
        opt_state,
        is_leaf=shaped,
    )


def batch_outputs(model, batch: Batch, *, decode: bool = False, task=None, probes=None, keys=None):
    """The model's outputs for a batch: teacher-forced, or with ``decode=True`` greedily decoded
    (each output fed back through ``task.feedback`` until ``task.stop``), starting from the
    batch's first inputs and running as many steps as the batch has. ``probes``: per example,
    see :meth:`CompiledMachine.probes <difmachine.machine.CompiledMachine.probes>`. ``keys``:
    one PRNG key per example for a stochastic machine (``None``: its most likely actions)."""
    sampling = {} if keys is None else {"key": keys}  # a deterministic kind takes no key
    if not decode:
        return jax.vmap(lambda x, m, c, p, s: model(x, m, context=c, probes=p, **s))(
            batch.inputs, batch.mask, batch.context, probes, sampling
        )
    steps = batch.inputs.shape[1]
    ys, aux = jax.vmap(
        lambda x, c, s: model.generate(x[0], steps, task.feedback, task.stop, context=c, **s)
    )(batch.inputs, batch.context, sampling)
    # a step after the machine stopped produced nothing: make it score as wrong, not as whatever
    # the frozen state would say (-30 on the target class: argmax elsewhere, a finite loss)
    ys = jnp.where(aux["produced"][..., None] > 0, ys, -30.0 * batch.targets)
    return ys, aux


def loss_and_metrics(model, task: AbstractTask, batch: Batch, decode=False, keys=None):
    """``(total loss, metrics)`` of a batch: the task's loss plus the halting policy's."""
    total, metrics, _ = _loss(model, task, batch, decode=decode, keys=keys)
    return total, metrics


def example_keys(key: jax.Array | None, size: int):
    """One PRNG key per example of a batch of ``size`` (``None`` stays ``None``)."""
    return None if key is None else jax.random.split(key, size)


def _loss(model, task, batch, decode=False, probes=None, keys=None, reinforce=None, weights=None):
    """``(total, metrics, aux)``. With ``keys`` (a stochastic machine sampling its actions) the
    total also holds the REINFORCE terms (:func:`difmachine.stochastic.reinforce_terms`);
    ``weights`` multiply the named auxiliary losses (:func:`difmachine.adaptive_weight`)."""
    ys, aux = batch_outputs(model, batch, decode=decode, task=task, probes=probes, keys=keys)
    per_example = jax.vmap(lambda y, a, t, m: model.task_loss(task, y, a, t, m))
    example_losses = per_example(ys, aux, batch.targets, batch.loss_mask)
    task_loss = jnp.mean(example_losses)
    weights = weights or {}
    missing = sorted(set(weights) - set(aux["losses"]))
    if missing:
        raise DifmachineError(
            f"the optimizer's adaptive_weight weighs {', '.join(map(repr, missing))}, which this "
            "machine does not compute: name one of its auxiliary losses "
            f"({', '.join(map(repr, aux['losses'])) or 'it has none'})"
        )
    extra = {k: jnp.mean(v) * weights.get(k, 1.0) for k, v in aux["losses"].items()}
    example_metrics = None
    if keys is not None and "log_prob" in aux:
        settings = reinforce or Reinforce()
        if settings.credit == "to_go":  # each step's actions weighed by the reward still to come
            step_loss = jax.vmap(lambda y, t, m: task.loss(y[None], t[None], m[None]))
            step_rewards = -jax.vmap(step_loss)(ys, batch.targets, batch.loss_mask)
            terms = reward_to_go_terms(
                settings,
                step_rewards,
                aux["step_log_prob"],
                aux["step_baseline"],
                batch.mask,
                aux["entropy"],
            )
        else:
            if settings.reward == "loss":
                rewards = -example_losses
            else:
                example_metrics = jax.vmap(task.metrics)(ys, batch.targets, batch.loss_mask)
                rewards = -example_metrics[task.main_metric]
            terms = reinforce_terms(
                settings, rewards, aux["log_prob"], aux["baseline"], aux["entropy"]
            )
        extra = {**extra, **terms}
    total = task_loss + sum(extra.values(), jnp.zeros((), jnp.float32))
    if example_metrics is None:
        example_metrics = jax.vmap(task.metrics)(ys, batch.targets, batch.loss_mask)
    metrics = {k: jnp.mean(v) for k, v in example_metrics.items()}
    stats = {k: jnp.mean(v) for k, v in aux["stats"].items()}
    if "entropy" in aux:
        stats["entropy"] = jnp.mean(aux["entropy"])
    return total, {"loss": task_loss, **extra, **metrics, **stats}, aux


def _all_finite(tree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_train_step(
    task: AbstractTask, optimizer, chunk: int | None = None, reinforce: Reinforce | None = None
):
    """``step(model, opt_state, batch, key=None) -> (model, opt_state, metrics)``, jit-compiled.

    ``key``: for a stochastic machine, the step's sampling key (:func:`sample_key`); each
    example gets its own (``split``); ``reinforce`` says how the REINFORCE term is formed. An
    optimizer that takes extra arguments (``optax.GradientTransformationExtraArgs``, as
    ``optax.chain`` makes) is given the batch's task loss as ``value``, and, when it holds a
    :func:`~difmachine.optim.plateau_cut` or an :func:`~difmachine.optim.adaptive_weight`, the
    cut's scale as ``lr_scale`` (1 without a cut; every member of the chain must take ``**extra``).

    A step whose loss, gradient, new parameters or new optimizer state are not finite is
    refused: the old parameters and optimizer state are kept and ``metrics["refused"]`` is 1
    (a finite gradient times an infinite learning rate is caught too).

    Plain ``jax.jit`` (a compiled machine's leaves are all arrays; the spec lives in the treedef)
    rather than ``eqx.filter_jit``, which blocks until each step is done: with ``jax.jit`` the
    host samples the next batch while the device computes (1.2x at batch 1, bench/FINDINGS.md).
    """

    takes_value = isinstance(optimizer, optax.GradientTransformationExtraArgs)

    @jax.jit
    def train_step(model, opt_state, batch, key=None):
        keys = example_keys(key, batch.inputs.shape[0])
        weights = loss_weights(opt_state)  # dm.adaptive_weight's factors on auxiliary losses
        (total, metrics), grads = _gradients(model, task, batch, chunk, keys, reinforce, weights)
        params = eqx.filter(model, eqx.is_array)
        # an optimizer taking extra arguments gets the task loss (dm.plateau_cut reads it)
        extra = {"value": metrics["loss"]} if takes_value else {}
        scale = learning_rate_scale(opt_state)
        if weights:  # and dm.adaptive_weight the unweighted terms
            extra["losses"] = {k: metrics[k] / f for k, f in weights.items()}
            metrics = {**metrics, **{f"weight/{k}": f for k, f in weights.items()}}
        if weights or scale is not None:  # and the rate's scale (adaptive_weight, rate_noise)
            extra["lr_scale"] = 1.0 if scale is None else scale
        if scale is not None:
            metrics = {**metrics, "lr_scale": scale}
        updates, new_opt_state = optimizer.update(grads, opt_state, params, **extra)
        new_model = eqx.apply_updates(model, updates)
        ok = jnp.isfinite(total) & _all_finite(grads)
        ok = ok & _all_finite(eqx.filter(new_model, eqx.is_array)) & _all_finite(new_opt_state)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        new_model = eqx.combine(keep(eqx.filter(new_model, eqx.is_array), params), model)
        new_opt_state = keep(new_opt_state, opt_state)
        return new_model, new_opt_state, {**metrics, "refused": 1.0 - ok.astype(jnp.float32)}

    return train_step


def make_eval_step(task: AbstractTask):
    """Evaluation metrics of a batch; generative tasks are scored on greedy decoding (no
    teacher forcing), as a user would run the model, and their content apart from stopping
    (``forced_*``: :meth:`~difmachine.tasks.base.AbstractTask.content_metrics`). A stochastic
    machine takes its most likely actions, or samples them with ``key``."""

    scores_content = task.generative and (
        type(task).content_metrics is not AbstractTask.content_metrics
    )

    @jax.jit
    def eval_step(model, batch, key=None):
        keys = example_keys(key, batch.inputs.shape[0])
        metrics = loss_and_metrics(model, task, batch, decode=task.generative, keys=keys)[1]
        if scores_content:  # content apart from stopping: decode the target's whole length
            steps = batch.inputs.shape[1]
            ys, _ = jax.vmap(
                lambda x, c: model.generate(x[0], steps, task.feedback, None, context=c)
            )(batch.inputs, batch.context)
            content = jax.vmap(task.content_metrics)(ys, batch.targets, batch.loss_mask)
            metrics |= {f"forced_{k}": jnp.mean(v) for k, v in content.items()}
        return metrics

    return eval_step


def evaluate(
    model,
    task,
    *,
    samples: int,
    seed: int,
    length: int | None = None,
    batch_size: int = 64,
    eval_step=None,
    place=None,
    sample: bool = False,
) -> dict[str, float]:
    """Mean metrics over ``samples`` fresh sequences (of fixed ``length`` if given); ``place``
    puts each batch where the model is (data-parallel runs replicate it). ``sample``: a
    stochastic machine samples its actions (keys from ``seed``) instead of taking the most
    likely ones."""
    eval_step = eval_step or make_eval_step(task)
    totals: dict[str, float] = {}
    done = 0
    for i, (batch, n) in enumerate(eval_batches(task, samples, seed, length, batch_size)):
        if place is not None:
            batch = place(batch)
        if sample and model.stochastic():
            key = sample_key(seed, i, EVAL_STREAM)
            key = key if place is None else place(key)
            metrics = jax.device_get(eval_step(model, batch, key))
        else:
            metrics = jax.device_get(eval_step(model, batch))
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v) * n
        done += n
    return {k: v / done for k, v in totals.items()}


def eval_batches(task, samples: int, seed: int, length=None, batch_size: int = 64):
    """``(batch, examples)`` pairs of an evaluation: the task's own evaluation data (a data
    task's validation split, at most ``samples`` examples) or ``samples`` fresh sequences (of
    the task's :meth:`~difmachine.tasks.base.AbstractTask.evaluation_source` for the training mix)."""
    own = task.evaluation_batches(samples, batch_size, seed, length)
    if own is not None:
        yield from own
        return
    source = task if length is not None else task.evaluation_source()
    done, i = 0, 0
    while done < samples:
        n = min(batch_size, samples - done)
        yield source.sample(batch_rng(seed, i, EVAL_STREAM), n, length), n
        done, i = done + n, i + 1


def generalization(
    model, task, lengths, *, samples: int, seed: int, sample: bool = False
) -> list[dict]:
    """One row of mean metrics per length (``None`` = the training mix), with timing."""
    eval_step = make_eval_step(task)
    rows = []
    for length in lengths:
        t0 = time.perf_counter()
        metrics = evaluate(
            model,
            task,
            samples=samples,
            seed=seed,
            length=length,
            eval_step=eval_step,
            sample=sample,
        )
        rows.append({task.length_name: length, **metrics, "seconds": time.perf_counter() - t0})
    return rows


@dataclass
class RunResult:
    run_dir: Path
    step: int
    metrics: dict
    wall_time: float  # of this call only: steps start..step (a resumed run's earlier ones not)
    interrupted: bool = False
    solved: bool = False
    refused: int = 0
    signal: int | None = None  # the signal that stopped the run (SIGINT or SIGTERM)
    start: int = 0  # the step this call started from (the checkpoint's, when resumed)


def _fmt(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "refused")


def _advance(task, sampler, curriculum: dict, fetched: list, main: str, step: int, progress):
    """Add fetched training metrics to the curriculum's window; once it holds
    ``task.curriculum_window`` steps, ask the task for the next level. Returns the sampler of
    the (maybe new) level: ``sampler`` itself while the level stays."""
    window = curriculum["window"]
    window[0] += sum(float(m[main]) for m in fetched)
    window[1] += len(fetched)
    if window[1] >= task.curriculum_window:
        level = task.next_level(curriculum["level"], window[0] / window[1])
        if level != curriculum["level"]:
            progress.console.print(
                f"step {step:>6}  curriculum: level {level} (training {main} "
                f"{window[0] / window[1]:.3g} at level {curriculum['level']})"
            )
            sampler = task.at_level(level)
        curriculum["level"], curriculum["window"] = level, [0.0, 0]
    return sampler


SELECT_PREFIX = "select/"  # Program.select_length's evaluation, in logs and best.eqx's header


def ranking(main: str, select: bool = False) -> list[str]:
    """The evaluation keys that order checkpoints (:func:`better`), the first one first. With a
    selection length: its metric, the training mix's, then the loss at that length and the mix's.
    Its loss breaks ties that are common (a Neural GPU's checkpoints were exact on 50-bit sums
    from step 7,400 to 23,600 while their 100-bit sums went from all right to all wrong and back),
    but only after the mix's metric: where every selection sequence is wrong, the lowest loss
    there is an untrained model's (two runs kept steps 2,400 and 5,800, 78% and 41% wrong on the
    training mix, for a loss of 0.34 on 100-bit sums that the trained steps got 0.5-6 on)."""
    if not select:
        return [main, "loss"]
    return [SELECT_PREFIX + main, main, SELECT_PREFIX + "loss", "loss"]


def better(ev: dict, best: dict | None, main: str, select: bool = False) -> bool:
    """Whether evaluation ``ev`` beats ``best`` (``None``: nothing yet): a lower main metric,
    or the same with a lower loss. Without the tie-break a run that reaches 0 errors early keeps
    that first checkpoint as its best however much it improves after (a Neural GPU at 0 errors
    of 128 additions at steps 4,600 and 10,000 was 10% wrong on fresh 20-bit sums at 4,600 and
    right on all of them at 10,000). ``select``: as :func:`ranking` orders them, the main metric
    at ``Program.select_length`` (``select/<main>``) first."""
    keys = ranking(main, select)
    if best is None or best.get(keys[0]) is None:
        return True
    for key in keys:
        mine, theirs = ev.get(key, math.inf), best.get(key, math.inf)
        if mine != theirs:
            return mine < theirs
    return False


def train(
    program: Program,
    run_dir: str | Path,
    *,
    program_file: str | Path | None = None,
    resume: bool = False,
    console: Console | None = None,
    name: str = "program",
    parallel: DataParallel | None = None,
    max_refused: int = MAX_REFUSED,
    tensorboard: bool = False,
    init_from: str | Path | None = None,
    trust_init: bool = False,
) -> RunResult:
    """Train ``program``, writing checkpoints and a metrics log under ``run_dir``.

    ``checkpoint.eqx`` holds the last step (for ``--resume``); ``best.eqx`` the step whose
    evaluation had the lowest main metric so far (:func:`better`: a tie goes to the lower
    evaluation loss), so a late collapse of training cannot take the best model with it.
    ``checkpoint.eqx`` is always written first, and never with non-finite parameters: a step
    that would make them non-finite is refused, and ``max_refused`` refused steps in a row
    (fewer in a short run, or a run whose every step was refused) stop the run with an error.

    The run holds the directory's lock while it writes (a second run gets an error). Failing to
    write (disk full, read-only) stops the run with an error; the last checkpoint stays intact.
    Ctrl-C or SIGTERM saves the last completed step and returns with ``interrupted``.

    With ``parallel`` (see :mod:`difmachine.parallel`) the parameters are replicated over its
    devices and every batch is split over them; only the main process writes files and progress.
    Checkpoints are the same either way, so a run resumes on any number of devices.

    ``tensorboard``: also write every metrics log row as TensorBoard scalars into
    ``run_dir/tensorboard`` (needs the ``tensorboard`` extra, :mod:`difmachine.tensorboard`).

    ``init_from``: a run directory whose trained parameters a new run starts from, wherever
    this program's machine has the same parameter (:func:`difmachine.rundir.warm_start`); a
    resumed run continues from its own checkpoint instead. ``trust_init``: load it even though
    no run on this machine wrote its program (``--trust``; see :func:`difmachine.load_run`).
    """
    if init_from is not None and resume:
        raise DifmachineError(
            "a resumed run continues from its own checkpoint; drop --init (it applies when a run "
            "starts)"
        )
    if tensorboard:
        from .tensorboard import check_available

        check_available()  # before anything compiles
    if parallel is not None:
        parallel.check_batch_size(program.batch_size)
    main_process = parallel is None or parallel.is_main
    run_dir = Path(run_dir)
    if not main_process:
        return _train(
            program,
            run_dir,
            program_file,
            resume,
            Console(quiet=True),
            name,
            parallel,
            max_refused,
            False,
            init_from,
            trust_init,
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DifmachineError(
            f"{run_dir}: cannot create the run directory ({e.strerror}); use another --out"
        ) from None
    with locked(run_dir):
        return _train(
            program,
            run_dir,
            program_file,
            resume,
            console or Console(),
            name,
            parallel,
            max_refused,
            tensorboard,
            init_from,
            trust_init,
        )


def _cannot_write(path: Path, error: OSError, last_saved: int | None) -> DifmachineError:
    kept = (
        f"{path.parent / CHECKPOINT} still holds step {last_saved}; free space, then --resume"
        if last_saved is not None
        else "no checkpoint was written"
    )
    return DifmachineError(
        f"could not write {path} ({error.strerror or error}): the run stops; {kept}"
    )


def _train(
    program,
    run_dir,
    program_file,
    resume,
    console,
    name,
    parallel,
    max_refused,
    tensorboard,
    init_from=None,
    trust_init=False,
):
    main_process = parallel is None or parallel.is_main
    ckpt_path, best_path = run_dir / CHECKPOINT, run_dir / BEST
    task, optimizer = program.task, program.optimizer
    selecting = program.select_length is not None  # best.eqx picked at that length
    if selecting:  # a data task without that length says so now,
        held = task.evaluation_batches(1, 1, program.seed, length=program.select_length)
        next(iter(held or ()), None)  # not at the first evaluation

    if main_process:
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise DifmachineError(
                f"{run_dir} is read-only; make it writable or copy the run elsewhere"
            )
        left = clean_temporaries(run_dir)
        if left:
            console.print(
                f"removed {len(left)} temporary file(s) an interrupted run left in {run_dir}"
            )
    if resume and not ckpt_path.exists() and best_path.exists():
        raise DifmachineError(
            f"{run_dir} has no {CHECKPOINT} to resume, only {BEST} (step "
            f"{checkpoint.read_header(best_path)['step']}): evaluate it with "
            f"`difmachine eval {run_dir} --best`, or move it away and start a new run"
        )
    if not resume and ckpt_path.exists():
        raise DifmachineError(
            f"{run_dir} already holds a run; pass --resume to continue it or --out DIR for a new one"
        )
    if not resume and best_path.exists():
        raise DifmachineError(
            f"{run_dir} holds {BEST} of an earlier run (step {checkpoint.read_header(best_path)['step']}) "
            f"but no {CHECKPOINT}: evaluate it with `difmachine eval {run_dir} --best`, or move it "
            "away to start a new run here"
        )

    model = build(program)
    if init_from is not None:
        model, line = warm_start(model, init_from, trust=trust_init)
        console.print(line)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    start, best_step, last_saved = 0, None, None
    best_eval: dict | None = None  # the evaluation best.eqx was saved with
    # an adaptive curriculum's state: the level and the window's (sum of main metric, steps)
    level = task.curriculum_start()
    curriculum = None if level is None else {"level": level, "window": [0.0, 0]}
    if resume:
        program.check_checkpoint(checkpoint.read_header(ckpt_path), ckpt_path)
        (model, opt_state), header = checkpoint.load(
            ckpt_path, (model, opt_state), program.fingerprint()
        )
        start = last_saved = header["step"]
        console.print(f"resuming {ckpt_path} at step {start}")
        curriculum = header.get("curriculum", curriculum)
        if best_path.exists():
            best_header = checkpoint.read_header(best_path)
            best_eval = best_header.get("eval") or None
            best_step = best_header.get("step")
    place_batch = place_eval = None
    if parallel is not None:
        model, opt_state = parallel.replicate((model, opt_state))
        place_batch, place_eval = parallel.split, parallel.replicate
    log = events = None
    try:
        if main_process and program_file is not None:
            write_program(run_dir, program_file, program.origin)
        if main_process:
            log = MetricsLog(run_dir / METRICS, start if resume else None)
        if main_process and tensorboard:
            from .tensorboard import EventWriter

            events = EventWriter(run_dir, start if resume else None)
    except OSError as e:
        raise DifmachineError(
            f"{run_dir}: cannot write the run ({e.strerror or e}); use another --out"
        ) from None

    def record(entry: dict) -> None:
        if log is None:
            return
        try:
            log.write(entry)
            if events is not None:
                events.write(entry)
        except OSError as e:
            raise _cannot_write(log.path, e, last_saved) from None

    def save(step: int, path: Path = ckpt_path, **extra) -> None:
        nonlocal last_saved
        if not main_process:
            return
        header = {
            "program": name,
            "fingerprint": program.fingerprint(),
            "identity": program.identity(),
            "step": step,
            "settings": program.settings(),
            "time": time.time(),
            **extra,
        }
        if curriculum is not None:  # with the steps not yet fetched, so a resume is exact
            done = jax.device_get(pending)
            window = curriculum["window"]
            header["curriculum"] = {
                "level": curriculum["level"],
                "window": [window[0] + sum(float(m[main]) for m in done), window[1] + len(done)],
            }
        state = (model, opt_state) if parallel is None else parallel.gather((model, opt_state))
        if not bool(_all_finite(state)):  # refused steps keep finite parameters: a bug if here
            raise DifmachineError(
                f"refusing to write non-finite parameters to {path} (step {step})"
            )
        try:
            checkpoint.save(path, state, header)
        except OSError as e:
            raise _cannot_write(path, e, last_saved) from None
        if path == ckpt_path:
            last_saved = step

    train_step = make_train_step(task, optimizer, program.chunk, program.reinforce)
    stochastic = model.stochastic()
    eval_step = make_eval_step(task)
    main = task.main_metric
    step, refused, streak, last, solved = start, 0, 0, {}, False
    sampler = task if curriculum is None else task.at_level(curriculum["level"])
    pending: list = []
    # refused steps in a row that stop the run: max_refused, fewer in a short run (not < 5)
    stuck = min(max_refused, max(5, (program.steps - start) // 2))
    stop_signal = None
    t0 = time.perf_counter()

    def on_sigterm(signum, frame):
        nonlocal stop_signal
        stop_signal = signal.SIGTERM
        raise KeyboardInterrupt

    old_handler = signal.signal(signal.SIGTERM, on_sigterm)
    old_xfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit: an OSError
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    try:
        with progress:
            bar = progress.add_task(
                name, total=program.steps, completed=start, stats="compiling..."
            )
            window_start, window_steps = time.perf_counter(), 0
            model, opt_state = at_step(model, opt_state, step)
            while step < program.steps:
                batch = sampler.sample(batch_rng(program.seed, step), program.batch_size)
                if place_batch is not None:
                    batch = place_batch(batch)
                if stochastic:  # the step's sampling key: a function of (seed, step) only
                    key = sample_key(program.seed, step)
                    key = key if place_eval is None else place_eval(key)
                    model, opt_state, metrics = train_step(model, opt_state, batch, key)
                else:
                    model, opt_state, metrics = train_step(model, opt_state, batch)
                step += 1
                window_steps += 1
                model, opt_state = at_step(model, opt_state, step)
                pending.append(metrics)
                if step % program.log_every == 0 or step == program.steps:
                    fetched = jax.device_get(pending)
                    pending = []
                    for m in fetched:
                        streak = streak + 1 if m["refused"] else 0
                    if curriculum is not None:
                        sampler = _advance(task, sampler, curriculum, fetched, main, step, progress)
                        last_level = {"level": curriculum["level"]}
                    else:
                        last_level = {}
                    refused += int(sum(m["refused"] for m in fetched))
                    last = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
                    now = time.perf_counter()
                    rate = window_steps * program.batch_size / (now - window_start)
                    window_start, window_steps = now, 0
                    stats = f"loss {last['loss']:.4f}  {main} {last[main]:.3f}  {rate:.0f} seq/s"
                    for name in model.statistics():
                        stats += f"  {name} {last[name]:.2f}"
                    if refused:
                        stats += f"  [red]refused {refused}[/red]"
                    progress.update(bar, completed=step, stats=stats)
                    record(
                        {"step": step, "time": time.time(), "seq_per_s": rate, **last, **last_level}
                    )
                    if streak >= stuck or (step == program.steps and streak == step - start):
                        save(step)  # the last good parameters: refused steps changed nothing
                        raise DifmachineError(
                            f"{streak} steps in a row refused as non-finite (loss, gradient or "
                            f"update) up to step {step}; the last good parameters are saved in "
                            f"{ckpt_path}: lower the learning rate or clip the gradients"
                        )
                saved = False
                if step % program.eval_every == 0 or step == program.steps:
                    score = functools.partial(
                        evaluate,
                        model,
                        task,
                        samples=program.eval_samples,
                        seed=program.seed + step,
                        eval_step=eval_step,
                        place=place_eval,
                    )
                    ev = score()
                    shown = f"step {step:>6}  eval  {_fmt(ev)}"
                    selected = {}
                    if selecting:
                        at = score(length=program.select_length)
                        selected = {SELECT_PREFIX + k: v for k, v in at.items()}
                        shown += f"  length {program.select_length}: {main} {at[main]:.4g}"
                    record({**eval_record(step, time.time(), ev), **selected})
                    ev = {**ev, **selected}  # best.eqx's header keeps both
                    progress.console.print(shown)
                    last = {**last, **{f"eval_{k}": v for k, v in ev.items()}}
                    improved = better(ev, best_eval, main, selecting)
                    reached = program.target is not None and ev[main] <= program.target
                    if improved or reached:
                        save(step)  # the checkpoint first: a kill between leaves both at step
                        saved = True
                    if improved:
                        best_eval, best_step = ev, step
                        save(step, best_path, eval=ev)
                    if reached:
                        solved = True
                        progress.console.print(
                            f"[green]target {main} <= {program.target} reached at step {step}"
                        )
                        break
                if not saved and (step % program.checkpoint_every == 0 or step == program.steps):
                    save(step)
                    window_start = time.perf_counter()  # don't count checkpoint I/O in seq/s
    except KeyboardInterrupt:
        stop_signal = stop_signal or signal.SIGINT
        try:
            save(step)
        except KeyboardInterrupt:
            kept = f"still holds step {last_saved}" if last_saved is not None else "was not written"
            console.print(
                f"[yellow]interrupted again: abandoned saving step {step}; {ckpt_path} {kept}"
            )
        else:
            console.print(
                f"[yellow]interrupted: saved step {step} to {ckpt_path}; continue with --resume"
            )
    else:
        key = ranking(main, selecting)[0]
        final = last.get(f"eval_{key}")
        best = (best_eval or {}).get(key)
        if best is not None and final is not None and final > best:
            where = f" at length {program.select_length}" if selecting else ""
            console.print(
                f"[yellow]the last evaluation ({main} {final:.4g}{where}) is worse than step "
                f"{best_step}'s ({best:.4g}), kept in {best_path}: use it with "
                f"`difmachine eval {run_dir} --best`"
            )
    finally:
        signal.signal(signal.SIGTERM, old_handler)
        signal.signal(signal.SIGXFSZ, old_xfsz)
        if log is not None:
            log.close()
        if events is not None:
            events.close()
    interrupted = stop_signal is not None
    return RunResult(
        run_dir,
        step,
        last,
        time.perf_counter() - t0,
        interrupted,
        solved,
        refused,
        stop_signal,
        start,
    )


__all__ = ["train", "evaluate", "make_train_step", "batch_rng", "RunResult"]
