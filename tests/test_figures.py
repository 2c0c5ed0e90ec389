"""Test-time figures for TensorBoard: confusion matrices (folded to the most frequent classes), per-class accuracy."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from seqlab.models.figures import (
    confusion_matrix_figure,
    fold_confusion,
    per_class_accuracy_figure,
    per_class_table,
)


def test_fold_confusion_keeps_the_most_frequent_classes_and_folds_the_rest():
    cm = torch.tensor([[5, 1, 0, 0],   # a: 6 true
                       [0, 9, 1, 2],   # b: 12
                       [1, 0, 1, 0],   # c: 2
                       [0, 1, 0, 2]])  # d: 3
    names, folded = fold_confusion(["a", "b", "c", "d"], cm, top_k=2)
    assert names == ["b", "a", "other"]
    assert folded.tolist() == [[9, 0, 3], [1, 5, 0], [1, 1, 3]]
    assert int(folded.sum()) == int(cm.sum())
    names, full = fold_confusion(["a", "b", "c", "d"], cm)  # no top_k: all classes, most frequent first
    assert names == ["b", "a", "d", "c"] and full[0].tolist() == [9, 0, 2, 1]


def test_confusion_matrix_figure_for_two_classes_and_for_many_tags():
    fig = confusion_matrix_figure(["neg", "pos"], torch.tensor([[10, 2], [3, 9]]))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["neg", "pos"]
    assert sorted(t.get_text() for t in ax.texts) == ["10", "2", "3", "9"]  # counts annotated
    plt.close(fig)

    tags = [f"T{i}" for i in range(17)]
    cm = torch.randint(0, 20, (17, 17), generator=torch.Generator().manual_seed(0))
    fig = confusion_matrix_figure(tags, cm, top_k=12)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 13 and labels[-1] == "other"
    fig.canvas.draw()  # renders off-screen (Agg) without error
    plt.close(fig)


def test_confusion_matrix_figure_handles_a_class_never_seen_in_test():
    fig = confusion_matrix_figure(["a", "b", "c"], torch.tensor([[3, 0, 0], [1, 2, 0], [0, 0, 0]]))
    fig.canvas.draw()
    plt.close(fig)


def test_per_class_accuracy_figure_and_table():
    names, acc, support = ["NOUN", "VERB", "X"], torch.tensor([0.9, 0.8, 0.0]), torch.tensor([50, 30, 0])
    fig = per_class_accuracy_figure(names, acc, support)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 3
    plt.close(fig)
    table = per_class_table(names, acc, support)
    assert table.splitlines()[2] == "| NOUN | 50 | 0.9000 |" and table.splitlines()[-1] == "| X | 0 | 0.0000 |"
