"""Traces: run a machine on one example and draw what its devices did, in the terminal or a PNG.

The renderer knows no particular device, halting policy, machine kind or task. A compiled machine
lists its traced components (``model.components()``); each component's ``trace_spec()`` says how
its trace fields are drawn, with one of a small registry of kinds (:data:`RENDERERS`):

- ``heatmap``: an array ``[T, heads, K]`` drawn per head as K rows (slots, positions) against time;
- ``scalars``: ``[T, heads]`` drawn as one sparkline per head;
- ``options``: ``[T, heads, K]`` distributions over named options, one labelled row per option;
- ``text``: one line per step from the field's own ``describe`` callable.

A field whose ``axis`` names one of the example's labels (the task's ``labels()``, e.g. an
attention over ``"source"``) has its rows named by those strings.

Time runs left to right in every panel, so panels line up. Terminal heatmaps use the ``▀`` half
block (foreground = upper pixel, background = lower pixel): two rows per character line. Large
matrices are max-pooled to the terminal width (peaks stay visible), value ranges are printed, and
NaN/inf cells are drawn as a magenta ``×``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console, Group
from rich.text import Text

from .errors import DifmachineError
from .plotting import pyplot
from .protocol import TraceField

# -- colours ----------------------------------------------------------------------------------

_SEQUENTIAL = [
    (13, 8, 135),
    (84, 2, 163),
    (139, 10, 165),
    (185, 50, 137),
    (219, 92, 104),
    (244, 136, 73),
    (254, 188, 43),
    (240, 249, 33),
]  # plasma-like, dark = 0
_DIVERGING = [
    (33, 102, 172),
    (103, 169, 207),
    (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199),
    (239, 138, 98),
    (178, 24, 43),
]  # blue < 0 < red
NAN_STYLE = "bold magenta on black"
# without colour (piped, NO_COLOR, a dumb terminal) a cell's value is a character instead
_SHADES = " ░▒▓█"  # sequential: 0 .. max
_SIGNED_SHADES = "=-·+#"  # diverging: most negative, negative, ~0, positive, most positive
_PLAIN: ContextVar[bool] = ContextVar("plain", default=False)


def _colour(u: float, palette) -> str:
    u = min(1.0, max(0.0, u))
    x = u * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    f = x - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(palette[i], palette[i + 1]))
    return f"#{r:02x}{g:02x}{b:02x}"


class _Scale:
    """Maps values to colours: [0, max] sequential, or symmetric diverging for signed data."""

    def __init__(
        self,
        values: np.ndarray,
        signed: bool = False,
        lo: float | None = None,
        hi: float | None = None,
    ):
        finite = values[np.isfinite(values)]
        self.min = float(finite.min()) if finite.size else 0.0
        self.max = float(finite.max()) if finite.size else 0.0
        self.signed = signed or self.min < 0
        if self.signed:
            m = max(abs(self.min), abs(self.max), 1e-12)
            self.lo, self.hi = -m, m
        else:
            self.lo = 0.0 if lo is None else lo
            self.hi = max(self.max if hi is None else hi, self.lo + 1e-12)

    def colour(self, v: float) -> str | None:
        if not math.isfinite(v):
            return None
        u = (v - self.lo) / (self.hi - self.lo)
        return _colour(u, _DIVERGING if self.signed else _SEQUENTIAL)

    def cell(self, v: float, plain: bool) -> tuple[str, str]:
        """One terminal cell for ``v``: a coloured blank, or (``plain``) a shade character."""
        if not math.isfinite(v):
            return "×", NAN_STYLE
        if not plain:
            return " ", f"on {self.colour(v)}"
        shades = _SIGNED_SHADES if self.signed else _SHADES
        u = min(1.0, max(0.0, (v - self.lo) / (self.hi - self.lo)))
        return shades[min(len(shades) - 1, int(u * len(shades)))], ""

    def legend(self) -> Text:
        kind = "diverging" if self.signed else "sequential"
        text = Text(f"  range [{self.min:.3g}, {self.max:.3g}] ({kind}) ", style="dim")
        if _PLAIN.get():
            shades = _SIGNED_SHADES if self.signed else _SHADES
            text.append(f"low [{shades}] high", style="dim")
            return text
        for i in range(8):
            u = i / 7
            text.append(" ", style=f"on {_colour(u, _DIVERGING if self.signed else _SEQUENTIAL)}")
        return text


def pool(matrix: np.ndarray, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """Max-pool a 2-D array down to at most ``rows x cols`` (NaN if any input cell is NaN)."""

    def along(a: np.ndarray, n: int | None, axis: int) -> np.ndarray:
        size = a.shape[axis]
        if n is None or size <= n:
            return a
        edges = np.linspace(0, size, n + 1).astype(int)
        parts = [
            np.take(a, range(edges[i], max(edges[i] + 1, edges[i + 1])), axis=axis)
            for i in range(n)
        ]
        pooled = [np.max(p, axis=axis, keepdims=True) for p in parts]
        return np.concatenate(pooled, axis=axis)

    with np.errstate(invalid="ignore"):
        return along(along(matrix, rows, 0), cols, 1)


def heatmap_lines(
    matrix: np.ndarray,
    scale: _Scale,
    row_labels: list[str] | None = None,
    row_index: Callable[[int], int] = lambda r: r,
    label_width: int = 6,
) -> list[Text]:
    """Draw ``matrix[rows, time]`` with half blocks, two rows per line (one row per line when
    ``row_labels`` names them, or without colour, in shade characters); ``row_index`` maps a
    drawn row to the index printed beside it."""
    lines = []
    plain = _PLAIN.get()
    step = 1 if row_labels or plain else 2
    for r in range(0, matrix.shape[0], step):
        label = row_labels[r] if row_labels else (f"{row_index(r)}" if r % 8 == 0 else "")
        align = "<" if row_labels and any(" " in x for x in row_labels) else ">"  # sentences
        text = Text(f"{label[:label_width]:{align}{label_width}} ", style="dim")
        for t in range(matrix.shape[1]):
            if row_labels or plain:
                text.append(*scale.cell(float(matrix[r, t]), plain))
                continue
            top = scale.colour(float(matrix[r, t]))
            below = r + 1 < matrix.shape[0]
            bottom = scale.colour(float(matrix[r + 1, t])) if below else "#000000"
            if top is None or bottom is None:
                text.append("×", style=NAN_STYLE)
            else:
                text.append("▀", style=f"{top} on {bottom}")
        lines.append(text)
    return lines


def _time_axis(T: int, shown: int, label_width: int = 6) -> Text:
    axis = Text(" " * (label_width + 1), style="dim")
    ticks = [" "] * shown
    for t in range(0, shown, 10):
        for j, ch in enumerate(str(round(t * T / shown))):
            if t + j < shown:
                ticks[t + j] = ch
    axis.append("".join(ticks) + f"  time ({T} steps)", style="dim")
    return axis


# -- field renderers --------------------------------------------------------------------------

MAX_ROWS = 48  # pixel rows per heatmap (24 terminal lines)


def active_rows(m: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Row indices of the shortest *circular* run of rows holding every value above
    ``threshold`` (NTM heads wrap around, so slot 127 sits next to slot 0)."""
    K = m.shape[0]
    with np.errstate(invalid="ignore"):
        hot = np.any(~np.isfinite(m) | (np.abs(m) > threshold), axis=1)
    if hot.all() or not hot.any():
        return np.arange(K)
    idx = np.where(hot)[0]
    gaps = np.diff(np.concatenate([idx, [idx[0] + K]]))  # gap after each hot row, circularly
    after = int(np.argmax(gaps))  # the largest idle stretch follows idx[after]
    start = idx[(after + 1) % len(idx)]
    length = K - (int(gaps[after]) - 1)
    return (start + np.arange(length)) % K


def head_panels(data: np.ndarray, spec: TraceField):
    """``data[T, heads, K]`` (or ``[T, K]``) as one panel per head: ``(title, m[K, T], rows)``
    where ``rows`` are the rows worth drawing (idle slots cropped when K is large). Shared by the
    terminal and the PNG renderers."""
    data = data[:, None] if data.ndim == 2 else data
    heads, K = data.shape[1], data.shape[2]
    for h in range(heads):
        m = data[:, h, :].T
        rows = active_rows(m) if K > MAX_ROWS and not spec.options else np.arange(K)
        if "{head}" in spec.label:
            title = spec.label.format(head=h)
        else:
            title = f"{spec.label} {h}" if heads > 1 else spec.label
        yield title, m, rows


def _label_width(spec: TraceField) -> int:
    """Width of the row labels: 6, or up to 32 for named rows (options, source tokens)."""
    return max(6, min(32, max((len(o) for o in spec.options), default=0)))


def render_heatmap(name: str, data: np.ndarray, spec: TraceField, width: int) -> list:
    """``data[T, heads, K]`` (or ``[T, K]``): one panel per head, K rows against time."""
    out = []
    pad = _label_width(spec)
    for title, m, rows in head_panels(data, spec):
        K, T = m.shape
        rows_max = None if spec.options else MAX_ROWS // (2 if _PLAIN.get() else 1)  # lines
        shown = pool(m[rows], rows=rows_max, cols=max(1, width - pad - 2))
        scale = _Scale(m, spec.signed)
        crop = (
            f", {spec.axis}s {rows[0]}..{rows[-1]} of {K}, others < 0.01"
            if len(rows) < K
            else f", {K} {spec.axis}s"
        )
        pooled = " (max-pooled)" if shown.shape != m[rows].shape else ""
        out.append(
            Text.assemble(
                (title, "bold"), (f"  [{spec.axis} ↓{crop}{pooled}]", "dim"), scale.legend()
            )
        )
        per_pixel = len(rows) / shown.shape[0]
        labels = list(spec.options) if spec.options else None
        out.extend(
            heatmap_lines(shown, scale, labels, lambda r: int(rows[int(r * per_pixel)]), pad)
        )
        out.append(_time_axis(T, shown.shape[1], pad))
    return out


_SPARK = "▁▂▃▄▅▆▇█"


def render_scalars(name: str, data: np.ndarray, spec: TraceField, width: int) -> list:
    """``data[T, heads]`` (or ``[T]``): a sparkline per head with its range."""
    data = data[:, None] if data.ndim == 1 else data
    out = []
    for h in range(data.shape[1]):
        row = pool(data[:, h][None, :], cols=max(1, width - 34))[0]
        finite = row[np.isfinite(row)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        text = Text(
            f"{(spec.label + (f' {h}' if data.shape[1] > 1 else ''))[:18]:>18} ", style="bold"
        )
        for v in row:
            if not math.isfinite(v):
                text.append("×", style=NAN_STYLE)
            else:
                i = 0 if hi - lo < 1e-12 else int((v - lo) / (hi - lo) * (len(_SPARK) - 1))
                text.append(_SPARK[i], style="cyan")
        text.append(f"  [{lo:.3g}, {hi:.3g}]", style="dim")
        out.append(text)
    return out


def render_options(name: str, data: np.ndarray, spec: TraceField, width: int) -> list:
    if data.ndim == 2:
        data = data[:, None]
    labels = list(spec.options) or [str(i) for i in range(data.shape[-1])]
    return render_heatmap(name, data, spec._replace(options=tuple(labels)), width)


def render_text(name: str, data: np.ndarray, spec: TraceField, width: int) -> list:
    """``data[T, ...]`` as one line per step from ``spec.describe(data[T, entries], options)``
    (e.g. the neural programmer's ``step 1: greater(col A, 30) p=0.97``); a field without a
    describe callable, or whose entries do not match its ``options``, is drawn as a heatmap."""
    flat = data.reshape(data.shape[0], -1)
    if spec.describe is None or (spec.options and len(spec.options) != flat.shape[1]):
        return render_heatmap(name, data, spec._replace(kind="heatmap"), width)
    lines = spec.describe(flat, spec.options)
    return [Text(spec.label, style="bold"), *(Text("  " + line) for line in lines)]


RENDERERS: dict[str, Callable[[str, np.ndarray, TraceField, int], list]] = {
    "heatmap": render_heatmap,
    "scalars": render_scalars,
    "options": render_options,
    "text": render_text,
}


def infer_field(name: str, data: np.ndarray) -> TraceField:
    """A default drawing for a field a device did not describe: by its rank."""
    if data.ndim <= 2:
        return TraceField("scalars", name)
    return TraceField("heatmap", name, axis="index")


# -- whole traces -----------------------------------------------------------------------------


class Example(NamedTuple):
    """One traced example, trimmed to its real steps."""

    inputs: np.ndarray  # [T, in]
    targets: np.ndarray  # [T, out]
    predictions: np.ndarray  # [T, out], in the task's presentation (e.g. probabilities)
    loss_mask: np.ndarray  # [T]
    traces: dict  # {component: {field: [T, ...]}}
    labels: dict | None = None  # {"source": [...], "target": [...], "output": [...]} (token tasks)


def run_example(model, task, *, length: int | None = None, seed: int = 0) -> Example:
    """Run ``model`` on one fresh example of ``task`` with traces on: teacher-forced, or for
    generative tasks decoded greedily from the start token, as the model would be used."""
    batch = task.trace_example(np.random.default_rng(seed), length)
    context = jax.tree.map(lambda a: a[0], batch.context)
    x, mask = batch.inputs[0], batch.mask[0]
    if task.generative:
        steps = x.shape[0]
        ys, aux = jax.jit(
            lambda m, x, c: m.generate(x[0], steps, task.feedback, task.stop, trace=True, context=c)
        )(model, x, context)
        T = max(1, int(np.asarray(aux["produced"]).sum()))
    else:
        ys, aux = jax.jit(lambda m, x, k, c: m(x, k, trace=True, context=c))(
            model, x, mask, context
        )
        T = int(mask.sum())
    preds = np.asarray(task.present(jnp.asarray(ys)))
    per_step = {c.name: c.per_step for c in model.components()}
    traces = {
        name: jax.tree.map(lambda a, k=per_step.get(name, 1): np.asarray(a)[: T * k], rec)
        for name, rec in aux["trace"].items()
    }
    labels = task.labels(batch, 0)
    output = task.output_labels(preds[:T])
    if labels is not None and output is not None:
        labels = {**labels, "output": output}
    return Example(x[:T], batch.targets[0][:T], preds[:T], batch.loss_mask[0][:T], traces, labels)


def device_fields(example: Example, model):
    """``(component name, component, field, data[T, ...], TraceField)`` for every traced
    component of ``model`` (``model.components()``), each in its ``trace_spec()`` order."""
    for name, device, _ in model.components():
        records = example.traces.get(name, {})
        specs = device.trace_spec()
        ordered = [k for k in specs if k in records] + [k for k in records if k not in specs]
        for field in ordered:
            data = np.asarray(records[field], dtype=np.float64)
            spec = specs.get(field) or infer_field(field, data)
            if spec.kind not in RENDERERS:
                raise DifmachineError(f"trace field {name}.{field}: unknown kind {spec.kind!r}")
            yield name, device, field, data, spec


def _bits_panel(
    title: str,
    values: np.ndarray,
    width: int,
    errors: np.ndarray | None = None,
    signed: bool = False,
) -> list:
    """``values[T, channels]`` as channel rows against time, one character per cell."""
    m = values.T
    cols = max(1, width - 8)
    shown = pool(m, cols=cols)
    err = pool(errors.T.astype(float), cols=cols) if errors is not None else None
    scale = _Scale(m, signed, lo=0.0, hi=1.0)
    out = [Text.assemble((title, "bold"), scale.legend())]
    for r in range(shown.shape[0]):
        text = Text(f"{r:>6} ", style="dim")
        for t in range(shown.shape[1]):
            char, style = scale.cell(float(shown[r, t]), _PLAIN.get())
            if err is not None and err[r, t] > 0 and char != "×":
                char, style = "✗", f"bold red {style}"
            text.append(char, style=style)
        out.append(text)
    return out


def _short(token: str) -> str:
    """A token in one terminal cell (``$`` for the end token)."""
    return "$" if token.startswith("<") else (token[:1] or " ")


def _tokens_panel(labels: dict) -> list:
    """Every label sequence of the example as a line (``target`` and ``output`` last, the output
    coloured against the target); sequences of sentences (a story, a table's rows), which name
    the rows of a field below, are announced instead of printed."""
    out = []
    target = labels.get("target", [])
    output = labels.get("output", [])
    keys = [k for k in labels if k not in ("target", "output")] + ["target", "output"]
    for key in keys:
        if key not in labels:
            continue
        if any(" " in t for t in labels[key]):
            out.append(Text(f"{key:>8} {len(labels[key])} rows (below)", style="bold"))
            continue
        text = Text(f"{key:>8} ", style="bold")
        words = any(len(t) > 1 for t in labels[key][:-1])  # else characters, drawn unspaced
        marks = " " * 9  # without colour, a ^ under each wrong output token
        for i, tok in enumerate(labels[key]):
            wrong = not (i < len(target) and tok == target[i])
            text.append(tok, style=("bold red" if wrong else "green") if key == "output" else "")
            gap = " " if words or len(tok) > 1 else ""
            text.append(gap)
            marks += ("^" if wrong else " ") * len(tok) + gap
        out.append(text)
        if key == "output" and _PLAIN.get() and "^" in marks:
            out.append(Text(marks.rstrip()))
    if "output" in labels:
        right = sum(a == b for a, b in zip(output, target)) == len(target) == len(output)
        wrong = "wrong tokens marked ^" if _PLAIN.get() else "wrong tokens in red"
        out.append(Text(" " * 9 + ("exact" if right else wrong), style="dim"))
    return out


def _labelled(spec: TraceField, data: np.ndarray, labels: dict | None):
    """A field over an axis the example has labels for (an attention over the ``"source"``, a
    selector over a table's ``"row"``): name its rows with those labels and drop the padded
    positions beyond them."""
    names = (labels or {}).get(spec.axis, ())
    if 0 < len(names) <= data.shape[-1]:
        return spec._replace(options=tuple(names)), data[..., : len(names)]
    return spec, data


def render(
    example: Example, model, *, width: int = 100, title: str = "", colour: bool = True
) -> Group:
    """The whole trace as a rich renderable: inputs, targets, outputs (bit panels, or token
    strings for token tasks), then every traced component of ``model``. Without ``colour``,
    heatmap cells are shade characters (legible piped into a file or under NO_COLOR)."""
    token = _PLAIN.set(not colour)
    try:
        return _render(example, model, width, title)
    finally:
        _PLAIN.reset(token)


def _render(example: Example, model, width: int, title: str) -> Group:
    parts: list = []
    if title:
        parts.append(Text(title, style="bold underline"))
    if example.labels:
        parts += _tokens_panel(example.labels)
    else:
        scored = example.loss_mask > 0
        errors = ((example.predictions > 0.5) != (example.targets > 0.5)) & scored[:, None]
        parts += _bits_panel("input", example.inputs, width)
        parts += _bits_panel("target", example.targets * scored[:, None], width)
        parts += _bits_panel(
            f"output ({int(errors.sum())} wrong bits marked ✗)",
            example.predictions * scored[:, None],
            width,
            errors,
        )
    current = None
    for name, device, field, data, spec in device_fields(example, model):
        if name != current:
            parts.append(Text(f"\n{name}: {device!r}", style="bold green"))
            current = name
        spec, data = _labelled(spec, data, example.labels)
        parts += RENDERERS[spec.kind](field, data, spec, width)
        output = (example.labels or {}).get("output")
        if spec.options and output and len(output) == data.shape[0] and data.shape[0] < width - 40:
            pad = _label_width(spec)
            parts.append(
                Text(" " * (pad + 1) + "".join(_short(t) for t in output) + "  output", style="dim")
            )
    return Group(*parts)


def print_trace(example: Example, model, console: Console | None = None, title: str = "") -> None:
    console = console or Console()
    colour = console.color_system is not None and not console.no_color
    console.print(render(example, model, width=console.width, title=title, colour=colour))


# -- PNG --------------------------------------------------------------------------------------


def save_png(example: Example, model, path, title: str = "") -> None:
    """The same panels with matplotlib (the optional ``[plot]`` extra)."""
    plt = pyplot()
    scored = example.loss_mask > 0
    panels: list[tuple[str, np.ndarray, str, list[str] | None]] = [
        ("input", example.inputs.T, "bits", None),
        ("target", (example.targets * scored[:, None]).T, "bits", None),
        ("output", (example.predictions * scored[:, None]).T, "bits", None),
    ]
    labels = example.labels or {}
    if labels:  # token tasks: the strings go in the title, the panels are the devices'
        panels = []
        title = "\n".join(
            [title]
            + [f"{k}: {' '.join(v)}" for k, v in labels.items() if not any(" " in t for t in v)]
        )
    for name, _, field, data, spec in device_fields(example, model):
        spec, data = _labelled(spec, data, labels)
        if spec.kind == "text":  # the terminal trace prints it
            continue
        if spec.kind in ("heatmap", "options"):
            for label, m, rows in head_panels(data, spec):
                names = list(spec.options) if spec.options else [str(r) for r in rows]
                kind = "signed" if spec.signed or np.nanmin(m) < 0 else "heat"
                panels.append((f"{name}: {label}\n({spec.axis})", m[rows], kind, names))
        else:
            panels.append((f"{name}: {spec.label}", data.reshape(data.shape[0], -1), "line", None))

    def height(panel) -> float:
        _, data, kind, names = panel
        if kind == "line":
            return 1.0
        if names and not names[0].isdigit():  # one readable row per token or sentence
            return min(8.0, max(2.0, len(names) / 4))
        return max(1.0, min(4.0, data.shape[0] / 10))

    heights = [height(p) for p in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(10, sum(heights) + 1),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (label, data, kind, row_names) in zip(axes[:, 0], panels):
        if kind == "line":
            ax.plot(data)
            ax.set_xlim(0, max(1, data.shape[0] - 1))
        else:
            finite = np.where(np.isfinite(data), data, np.nan)
            limit = float(np.nanmax(np.abs(finite))) if np.isfinite(finite).any() else 1.0
            style = {
                "bits": {"cmap": "gray_r", "vmin": 0, "vmax": 1},
                "heat": {"cmap": "plasma", "vmin": 0},
                "signed": {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit},
            }[kind]
            ax.imshow(finite, aspect="auto", interpolation="nearest", **style)
            if row_names is not None:  # label rows by slot/option, not by drawn row
                most = 40 if not row_names[0].isdigit() else 8  # every token, a few slot numbers
                ticks = np.unique(
                    np.linspace(0, len(row_names) - 1, min(most, len(row_names))).astype(int)
                )
                ax.set_yticks(ticks, [row_names[i] for i in ticks])
            output = labels.get("output", [])
            if (
                kind == "heat"
                and len(output) == data.shape[1]
                and row_names
                and not row_names[0].isdigit()
            ):
                ax.set_xticks(range(len(output)), output)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("time step")
    top = 1.0
    if title:
        fig.suptitle(title)
        top -= 0.6 / fig.get_figheight()  # tight_layout ignores the suptitle: keep its 0.6 inch
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["TraceField", "RENDERERS", "run_example", "render", "print_trace", "save_png", "pool"]
