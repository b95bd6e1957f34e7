"""Recall@k curves of several rankers on the same held-out interactions: a CSV table and a PNG.

What ``schemaretrieval evaluate --out`` writes (``recall_at_k.csv``: one row
per k, one column per ranker; ``recall_at_k.png``).

>>> table = recall_curves({"model": {"recall@1": 0.1, "recall@2": 0.3}}, ks=(1, 2))
>>> table["model"].tolist(), table.index.name
([0.1, 0.3], 'k')
"""

from __future__ import annotations

__all__ = ["CURVE_KS", "recall_curves", "plot_curves"]

#: The cut-offs of the curves: every k from 1 to 100.
CURVE_KS = tuple(range(1, 101))


def recall_curves(metrics: dict[str, dict[str, float]], ks=CURVE_KS):
    """A DataFrame: one row per k, one recall@k column per ranker (see the module's example).

    >>> recall_curves({"a": {"recall@1": 0.5}, "b": {"recall@1": 0.25}}, ks=(1,)).loc[1].tolist()
    [0.5, 0.25]
    """
    import pandas as pd

    table = pd.DataFrame({name: [m[f"recall@{k}"] for k in ks] for name, m in metrics.items()}, index=list(ks))
    table.index.name = "k"
    return table


def plot_curves(curves, path, title: str = "") -> None:
    """recall@k against k, one line per ranker, saved as a PNG.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "recall.png")
    >>> plot_curves(recall_curves({"model": {"recall@1": 0.1, "recall@2": 0.3}}, ks=(1, 2)), path)
    >>> open(path, "rb").read(4)[1:] == b"PNG"
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for name in curves.columns:
        ax.plot(curves.index, curves[name], label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_xlim(1, curves.index.max())
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
