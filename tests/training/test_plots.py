"""The training plot: loss per epoch and, when logged, recall@k per epoch."""

import numpy as np
import pytest

from schemaretrieval.training.plots import plot_training, training_history


def _png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_loss_only_history_is_one_panel(tmp_path):
    path = plot_training({"loss": [3.0, 2.5, 2.2]}, tmp_path / "loss.png")
    width, height = _png_size(path)
    assert width < 2 * height  # one panel


def test_csv_log_with_recall_is_two_panels_and_keeps_resumed_rows_once(tmp_path):
    csv = tmp_path / "training.csv"
    csv.write_text(
        "epoch,loss,val_loss,val_recall@10,val_recall@100\n"
        "0,3.0,3.1,0.05,0.30\n1,2.5,2.7,0.08,0.35\n1,2.4,2.6,0.09,0.36\n2,2.2,2.5,0.10,0.40\n"
    )
    table = training_history(csv)
    assert table["epoch"].tolist() == [1, 2, 3]
    assert np.isclose(table["loss"].tolist(), [3.0, 2.4, 2.2]).all()  # a resumed epoch: its last row
    width, height = _png_size(plot_training(csv, tmp_path / "training.png", "title"))
    assert width > 2 * height  # loss beside recall@k


def test_csv_without_loss_is_an_error(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("epoch,foo\n0,1\n")
    with pytest.raises(ValueError, match="loss"):
        training_history(csv)
