"""Test-time figures for TensorBoard: confusion matrices (folded to the most frequent classes), per-class accuracy."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
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


def cell_texts(ax) -> dict[tuple[int, int], str]:
    """The count annotations of a heat map: (row, column) -> text."""
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}


def assert_rates(ax, expected: list[list[float]]) -> None:
    """The heat map's colour values equal `expected` (row-normalised counts)."""
    torch.testing.assert_close(torch.tensor(ax.images[0].get_array()), torch.tensor(expected, dtype=torch.double))


def test_confusion_matrix_figure_for_two_classes_and_for_many_tags():
    fig = confusion_matrix_figure(["neg", "pos"], torch.tensor([[10, 2], [3, 9]]))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["neg", "pos"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["neg (12)", "pos (12)"]  # rows: true class and count
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true (count)")
    assert cell_texts(ax) == {(0, 0): "10", (0, 1): "2", (1, 0): "3", (1, 1): "9"}  # each count in its cell
    # colours: each row normalised by its own count (10/12, 2/12; 3/12, 9/12), on a fixed 0..1 scale
    assert_rates(ax, [[10 / 12, 2 / 12], [3 / 12, 9 / 12]])
    assert ax.images[0].get_clim() == (0.0, 1.0)
    plt.close(fig)

    tags = [f"T{i}" for i in range(17)]
    cm = 90 * torch.eye(17, dtype=torch.long)  # tag Ti has 100 + i test tokens: 90 right, 10 + i predicted as T0
    cm[:, 0] += 10 + torch.arange(17)
    fig = confusion_matrix_figure(tags, cm, top_k=12)
    ax = fig.axes[0]
    kept = [f"T{i}" for i in range(16, 4, -1)]  # the 12 most frequent true tags, most frequent first
    assert [t.get_text() for t in ax.get_xticklabels()] == [*kept, "other"]
    # "other" gathers T4..T0 (104+103+102+101+100 tokens), all predicted as themselves or T0, i.e. as "other"
    assert ax.get_yticklabels()[-1].get_text() == f"other ({sum(100 + i for i in range(5))})"
    assert cell_texts(ax)[(12, 12)] == str(sum(100 + i for i in range(5)))
    assert cell_texts(ax)[(0, 12)] == "26" and cell_texts(ax)[(0, 0)] == "90"  # T16: 26 tokens predicted as T0
    fig.canvas.draw()  # renders off-screen (Agg)
    plt.close(fig)


def test_confusion_matrix_figure_handles_a_class_never_seen_in_test():
    fig = confusion_matrix_figure(["a", "b", "c"], torch.tensor([[3, 0, 0], [1, 2, 0], [0, 0, 0]]))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (3)", "b (3)", "c (0)"]
    # the empty row is drawn as zeros (no division by zero, no NaN), and zero counts are not annotated
    assert_rates(ax, [[1, 0, 0], [1 / 3, 2 / 3, 0], [0, 0, 0]])
    assert cell_texts(ax) == {(0, 0): "3", (1, 0): "1", (1, 1): "2"}
    fig.canvas.draw()
    plt.close(fig)


def test_per_class_accuracy_figure_and_table():
    names, acc, support = ["NOUN", "VERB", "X"], torch.tensor([0.9, 0.8, 0.0]), torch.tensor([30, 50, 0])
    fig = per_class_accuracy_figure(names, acc, support)
    ax = fig.axes[0]
    assert isinstance(fig, Figure)
    # horizontal bars in order of test support (VERB 50, NOUN 30, X 0), each as long as its accuracy, labelled with
    # it and its count; a class without test tokens says so
    assert [t.get_text() for t in ax.get_yticklabels()] == ["VERB", "NOUN", "X"]
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.8, 0.9, 0.0])
    assert [t.get_text() for t in ax.texts] == ["80.0%  (50)", "90.0%  (30)", "no test tokens"]
    assert ax.get_xlim() == (0.0, 1.0)
    plt.close(fig)
    table = per_class_table(names, acc, support).splitlines()
    assert table[:2] == ["| class | support | accuracy |", "|---|---:|---:|"]
    assert table[2:] == ["| VERB | 50 | 0.8000 |", "| NOUN | 30 | 0.9000 |", "| X | 0 | 0.0000 |"]
