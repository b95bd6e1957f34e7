"""PNG plots of a training run: the loss per epoch and, when the per-epoch
top-k callback ran (`callbacks.TopKCallback`, on with validation data),
full-catalog recall@k per epoch.

`schemaretrieval train --out DIR` writes ``DIR/training.png`` from
``DIR/training.csv`` (the CSVLogger's file: one row per epoch, resumed runs
included); recall@k against k is `evaluation.report.plot_curves` (`schemaretrieval
evaluate`) and ``benchmarks/peers.py --out``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["plot_training", "training_history"]


def training_history(csv_path) -> pd.DataFrame:
    """The per-epoch table of a run (``epoch`` from 1), from its CSV log.

    >>> import io
    >>> training_history(io.StringIO("epoch,loss\\n0,2.5\\n1,2.0\\n"))["epoch"].tolist()
    [1, 2]
    """
    table = pd.read_csv(csv_path)
    if "epoch" not in table.columns or "loss" not in table.columns:
        raise ValueError(f"training_history: {csv_path} has no epoch and loss columns")
    # A resumed run may repeat an epoch's row: keep the last.
    table = table.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)
    table["epoch"] = table["epoch"].astype(int) + 1
    return table


def plot_training(history, path, title: str = "") -> Path:
    """Saves the loss per epoch (training and, if logged, validation) and,
    when logged, ``val_recall@k`` per epoch as a PNG; returns its path.

    Args:
        history: a CSV log path (see `training_history`), a DataFrame of it,
            or a ``{metric: [per epoch]}`` dict (as `training.fit` returns).
        path: the PNG to write.
        title: above the plots.

    Example: with ``val_recall@k`` logged, a second panel makes the image
    wider (1000 x 380 pixels instead of 550 x 380).

    >>> import os, tempfile
    >>> from matplotlib.image import imread
    >>> out = tempfile.mkdtemp()
    >>> history = {"loss": [2.5, 2.1, 1.9], "val_recall@10": [0.10, 0.15, 0.20]}
    >>> png = plot_training(history, os.path.join(out, "training.png"), title="run 1")
    >>> png.name, png.read_bytes()[:4], imread(png).shape
    ('training.png', b'\x89PNG', (380, 1000, 4))
    >>> imread(plot_training({"loss": [2.5, 2.1]}, os.path.join(out, "loss.png"))).shape
    (380, 550, 4)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(history, dict):
        table = pd.DataFrame(history)
        table.insert(0, "epoch", range(1, len(table) + 1))
    elif isinstance(history, pd.DataFrame):
        table = history
    else:
        table = training_history(history)
    if table.empty:
        raise ValueError("plot_training: no epochs to plot")
    recall = sorted((c for c in table.columns if c.startswith("val_recall@")), key=lambda c: int(c.split("@")[1]))
    fig, axes = plt.subplots(1, 2 if recall else 1, figsize=(10 if recall else 5.5, 3.8), dpi=100, squeeze=False)
    ax = axes[0][0]
    ax.plot(table["epoch"], table["loss"], "o-", label="training loss")
    if "val_loss" in table.columns:
        ax.plot(table["epoch"], table["val_loss"], "o--", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if recall:
        ax = axes[0][1]
        for column in reversed(recall):
            ax.plot(table["epoch"], table[column], "o-", label=column.replace("val_", ""))
        ax.set_xlabel("epoch")
        ax.set_ylabel("full-catalog recall@k (held out)")
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[0]:
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
