"""Plotting helpers for PNG output (matplotlib, from the optional ``[plot]`` extra)."""

from __future__ import annotations

from .errors import DifmachineError


def plot_generalization(rows, length_name: str, metric: str, path, title: str = "") -> None:
    """Error against length, as a PNG (matplotlib from the ``[plot]`` extra)."""
    plt = pyplot()
    points = [(r[length_name], r[metric]) for r in rows if r[length_name] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    ax.set_xlabel(length_name)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DifmachineError(
            "PNG output needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)"
        ) from None
    return plt


__all__ = ["pyplot", "plot_generalization"]
