"""Run by tests/test_parallel.py in a fresh process: JAX must be told to split the CPU into
devices before it runs anything, which the test process itself has long done.

``python parallel_worker.py OUT_DIR`` trains the tiny program with and without data parallelism
over 2 forced host devices and writes what the test checks to ``OUT_DIR/report.json``.
"""

import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_num_cpu_devices", 2)

import equinox as eqx  # noqa: E402
import numpy as np  # noqa: E402
from conftest_programs import write_program  # noqa: E402
from rich.console import Console  # noqa: E402

from difmachine import checkpoint  # noqa: E402
from difmachine.errors import DifmachineError  # noqa: E402
from difmachine.parallel import use_devices  # noqa: E402
from difmachine.program import build, load_program  # noqa: E402
from difmachine.rundir import CHECKPOINT  # noqa: E402
from difmachine.training import batch_rng, train  # noqa: E402


def leaves(run_dir):
    tree = checkpoint.load(Path(run_dir) / CHECKPOINT, like)[0]
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


out = Path(sys.argv[1])
quiet = Console(quiet=True)
source = write_program(out / "tiny.py", steps=8)
program = load_program(source).replace(eval_every=1000, checkpoint_every=1000)
layout = use_devices(2)
report = {"devices": len(jax.devices())}

model = build(program)
like = (model, program.optimizer.init(eqx.filter(model, eqx.is_array)))

# a split batch: each device holds half of the examples
batch = layout.split(program.task.sample(batch_rng(0, 0), program.batch_size))
report["shard_rows"] = sorted({s.data.shape[0] for s in batch.inputs.addressable_shards})
report["batch_rows"] = int(batch.inputs.shape[0])

train(program, out / "single", console=quiet)
train(program, out / "split", console=quiet, parallel=layout)
report["split_vs_single"] = max_difference(leaves(out / "single"), leaves(out / "split"))

# the sharded run's checkpoint resumes on one device, the single run's on two
longer = program.replace(steps=12)
train(longer, out / "single", console=quiet, resume=True)
train(longer, out / "split", console=quiet, resume=True, parallel=None)
report["resumed_vs_single"] = max_difference(leaves(out / "single"), leaves(out / "split"))
try:
    train(program.replace(batch_size=5), out / "odd", console=quiet, parallel=layout)
    report["odd_batch_error"] = None
except DifmachineError as e:
    report["odd_batch_error"] = str(e)
(out / "report.json").write_text(json.dumps(report))
