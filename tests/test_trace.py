import io

import numpy as np
import pytest
from conftest_programs import write_program
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.trace import RENDERERS, TraceField, active_rows, pool, render, run_example, save_png


def draw(renderable, width=100):
    console = Console(
        file=io.StringIO(), force_terminal=True, width=width, color_system="truecolor"
    )
    console.print(renderable)
    return console.file.getvalue()


def renderable(lines):
    from rich.console import Group

    return Group(*lines)


@pytest.mark.parametrize("kind", sorted(RENDERERS))
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 2, 1000), (7, 1, 1), (30, 3, 5), (200, 1, 64)])
@pytest.mark.parametrize("width", [20, 120])
def test_every_kind_renders_odd_shapes(kind, shape, width):
    data = np.random.default_rng(0).random(shape)
    data[0, 0, 0] = np.nan
    if data.size > 1:
        data.flat[-1] = np.inf
    spec = TraceField(
        kind, "field", options=tuple(f"op{i}" for i in range(shape[2])) if kind == "options" else ()
    )
    if kind == "scalars":
        data = data[..., 0]
    text = draw(renderable(RENDERERS[kind]("field", data, spec, width)), width)
    assert "×" in text  # NaN/inf marked
    assert "field" in text
    for line in text.splitlines():  # downsampled, never wrapped
        assert len(_plain(line)) <= width


def _plain(line):
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", line)


@given(K=st.integers(2, 300), hot=st.lists(st.integers(0, 299), min_size=1, max_size=5))
def test_active_rows_is_the_shortest_circular_run_covering_every_hot_row(K, hot):
    hot = sorted({h % K for h in hot})
    m = np.zeros((K, 3))
    m[hot, 1] = 1.0
    rows = active_rows(m)
    assert set(hot) <= set(rows.tolist())
    assert len(set(rows.tolist())) == len(rows)  # contiguous circular run, no repeats
    assert all((b - a) % K == 1 for a, b in zip(rows, rows[1:]))
    # no shorter circular run covers them: the excluded stretch is the largest gap
    gaps = [((hot[(i + 1) % len(hot)] - hot[i]) % K or K) - 1 for i in range(len(hot))]
    assert K - len(rows) == max(gaps)


@given(r=st.integers(1, 40), c=st.integers(1, 40), rows=st.integers(1, 10), cols=st.integers(1, 10))
def test_pool_keeps_the_maximum_and_bounds_the_shape(r, c, rows, cols):
    m = np.random.default_rng(r * 100 + c).random((r, c))
    p = pool(m, rows, cols)
    assert p.shape == (min(r, rows), min(c, cols))
    assert p.max() == m.max()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = write_program(tmp_path_factory.mktemp("trace") / "tiny.py", steps=2)
    program = dm.load_program(path)
    from difmachine.program import build

    return path, program, build(program)


def test_render_shows_inputs_outputs_and_every_head(tiny):
    _, program, model = tiny
    example = run_example(model, program.task, length=3, seed=1)
    assert example.inputs.shape[0] == 7  # 2 * 3 + 1 real steps, padding trimmed
    text = _plain(draw(render(example, model, width=80)))
    for needle in (
        "input",
        "target",
        "output",
        "write head 0 weighting",
        "read head 0 weighting",
        "write gate g",
        "mean erase",
        "time (7 steps)",
    ):
        assert needle in text


@given(
    values=st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=20),
    signed=st.booleans(),
)
def test_shades_without_colour_follow_the_value(values, signed):
    from difmachine.trace import _SHADES, _SIGNED_SHADES, _Scale

    scale = _Scale(np.array(values), signed)
    shades = _SIGNED_SHADES if scale.signed else _SHADES
    cells = [scale.cell(v, plain=True)[0] for v in sorted(values)]
    ranks = [shades.index(c) for c in cells]
    assert ranks == sorted(ranks)  # monotone in the value
    top = max(abs(v) for v in values)
    if top > 1e-9 and max(values) == top:
        assert ranks[-1] == len(shades) - 1  # the largest value: the last shade
    if scale.signed and top > 1e-9 and min(values) == -top:
        assert ranks[0] == 0  # the most negative: the first
    assert scale.cell(float("nan"), plain=True)[0] == "×"


def test_render_without_colour_is_legible_as_plain_text(tiny):
    _, program, model = tiny
    example = run_example(model, program.task, length=3, seed=1)
    console = Console(file=io.StringIO(), width=80, no_color=True)
    console.print(render(example, model, width=80, colour=False))
    text = console.file.getvalue()
    assert "\x1b[" not in text
    rows = [x[7:] for x in text.splitlines() if x[:7].strip().isdigit() and len(x) > 7]
    assert len(set(rows)) > 3  # rows of different shades, not identical blocks


def test_png_is_written(tiny, tmp_path):
    pytest.importorskip("matplotlib")
    _, program, model = tiny
    example = run_example(model, program.task, length=2)
    save_png(example, model, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trace_cli_on_a_program_and_on_a_run(tiny, tmp_path):
    path, _, _ = tiny
    runner = CliRunner()
    result = runner.invoke(app, ["trace", str(path), "--length", "2"])
    assert result.exit_code == 0, result.output
    assert "untrained" in result.output and "write head 0 weighting" in result.output
    # not a terminal: shade characters instead of colours, a panel's title on one line
    title = next(x for x in result.output.splitlines() if "write head 0 weighting" in x)
    assert "low [ ░▒▓█] high" in title
    assert "\x1b[" not in result.output and set("░▒▓█") & set(result.output)
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    result = runner.invoke(
        app, ["trace", str(out), "--png", str(tmp_path / "x.png"), "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "at step 2" in result.output and (tmp_path / "x.png").exists()
    result = runner.invoke(app, ["trace", str(out), "--length", "0"])
    assert result.exit_code == 2 and "--length must be at least 1" in result.stderr


def test_png_without_matplotlib_is_a_clear_error(tiny, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    _, program, model = tiny
    example = run_example(model, program.task, length=2)
    with pytest.raises(dm.DifmachineError, match=r"pip install -e '\.\[plot\]'"):
        save_png(example, model, tmp_path / "t.png")


def test_only_fields_over_a_labelled_axis_get_the_labels():
    """An attention over the source is labelled with the source tokens; a stack inside the same
    Seq2Seq decoder keeps its own positions (it was once relabelled and cropped to the source)."""
    from difmachine.trace import _labelled, device_fields

    task = dm.ReverseString(symbols=3, min_length=3, max_length=3)
    decoder = dm.Machine(
        dm.LSTM(6),
        {"attention": dm.Attention("dot"), "stack": dm.NeuralStack(width=2, capacity=12)},
    )
    model = dm.build(dm.Program(machine=dm.Seq2Seq(dm.LSTM(5), decoder), task=task))
    example = run_example(model, task, seed=0)
    seen = {}
    for name, _, field, data, spec in device_fields(example, model):
        labelled, cropped = _labelled(spec, data, example.labels)
        seen[(name, field)] = (labelled.options, cropped.shape[-1])
    assert seen[("attention", "weights")] == (tuple(example.labels["source"]), 3)
    assert seen[("stack", "strengths")] == ((), 12)
