"""Matplotlib figures and text tables for TensorBoard (rendered off-screen).

Sized for how TensorBoard shows them: an image card is about 450 pixels wide in Time Series and about 320 in the
Images tab, so a figure is drawn about 500 pixels wide (100 dpi) with 8-10 point text, few cells and few numbers.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402

NOT_IN_TRAINING = "(not in training)"  # the gold row of test labels that the training data never had
WIDTH = 3.5  # inches at 100 dpi: the 350 pixels of an image in TensorBoard's Images tab, so it is shown 1:1
ZERO = "tab:red"  # a class the model never gets right: its label, and a mark where its bar would be


def per_class_accuracy_figure(names: list[str], acc: torch.Tensor, support: torch.Tensor):
    """Horizontal bars of accuracy per class (tag), most frequent first, each labelled with its accuracy and number
    of test tokens; a class at 0 is marked red (a bar of length 0 is otherwise invisible), one without test tokens
    says so."""
    order = torch.argsort(support, descending=True, stable=True).tolist()
    fig, ax = plt.subplots(figsize=(WIDTH, 0.17 * len(names) + 0.6), layout="constrained")
    values = [float(acc[i]) for i in order]
    ax.barh(range(len(order)), values, color="tab:blue", height=0.7)
    for row, (i, value) in enumerate(zip(order, values)):
        count = int(support[i])
        if count == 0:
            ax.text(0.01, row, "no test tokens", va="center", fontsize=7, color="gray")
            continue
        if value == 0:  # a bar of length 0: a red mark and label instead
            ax.plot([0.008], [row], marker="s", markersize=4, color=ZERO, clip_on=False)
        inside = value > 0.7  # long bars carry their label inside, in white
        shown = "0%" if value == 0 else f"{100 * value:.1f}%"
        ax.text(value - 0.01 if inside else max(value, 0.015) + 0.01, row, f"{shown}  ({count:,})", va="center",
                ha="right" if inside else "left", fontsize=7,
                color="white" if inside else (ZERO if value == 0 else "black"))
    ax.set_yticks(range(len(order)), [names[i] for i in order], fontsize=7)
    ax.tick_params(length=2, pad=1.5)
    for tick, i, value in zip(ax.get_yticklabels(), order, values):
        if value == 0 and support[i] > 0:
            tick.set_color(ZERO)
    ax.invert_yaxis()  # most frequent on top
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "25%", "50%", "75%", "100%"], fontsize=7)
    ax.set_title("Test accuracy per class (test tokens)", fontsize=8)
    return fig


def per_class_table(names: list[str], acc: torch.Tensor, support: torch.Tensor) -> str:
    """Markdown table (TensorBoard's text tab renders it): class, support, accuracy; most frequent first."""
    rows = ["| class | support | accuracy |", "|---|---:|---:|"]
    for i in torch.argsort(support, descending=True).tolist():
        rows.append(f"| {names[i]} | {int(support[i])} | {float(acc[i]):.4f} |")
    return "\n".join(rows)


def confusion_table(names: list[str], confmat: torch.Tensor, top_k: int = 24) -> str:
    """The confusion matrix for the Text tab, exact counts (rows true, columns predicted, most frequent first; zeros
    as "·"); beyond `top_k` + 1 classes the rest are folded into "other". A fixed-width block, not a Markdown table:
    the Text tab squeezes a table into the card's width, and with POS's 18 columns it broke numbers mid-digit."""
    labels, cm = fold_confusion(names, confmat.detach().cpu().to(torch.int64),
                                top_k if len(names) > top_k + 1 else None)
    rows = [["true \\ predicted", *labels, "total"]]
    rows += [[label, *(f"{c:,}" if c else "·" for c in row), f"{sum(row):,}"]
             for label, row in zip(labels, cm.tolist())]
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "```\n" + "\n".join(lines) + "\n```"


def fold_confusion(names: list[str], confmat: torch.Tensor, top_k: int | None = None
                   ) -> tuple[list[str], torch.Tensor]:
    """Keep the `top_k` most frequent true classes (by row sum) in that order and fold the rest into "other"."""
    support = confmat.sum(dim=1)
    order = torch.argsort(support, descending=True, stable=True).tolist()
    if top_k is None or top_k >= len(names):
        return [names[i] for i in order], confmat[order][:, order]
    keep, rest = order[:top_k], order[top_k:]
    rows = torch.cat([confmat[keep], confmat[rest].sum(0, keepdim=True)])
    folded = torch.cat([rows[:, keep], rows[:, rest].sum(1, keepdim=True)], dim=1)
    return [names[i] for i in keep] + ["other"], folded


def folded_classes(names: list[str], confmat: torch.Tensor, top_k: int | None) -> list[tuple[str, int]]:
    """(name, true count) of the classes `fold_confusion` puts in "other", most frequent first."""
    support = confmat.sum(dim=1)
    order = torch.argsort(support, descending=True, stable=True).tolist()
    return [] if top_k is None or top_k >= len(names) else [(names[i], int(support[i])) for i in order[top_k:]]


def short_count(n: int) -> str:
    """A count in at most four characters: 987, 1.2k, 12k."""
    return str(n) if n < 1000 else (f"{n / 1000:.1f}k" if n < 9950 else f"{n / 1000:.0f}k")


def shown_cells(cm: torch.Tensor, rate: torch.Tensor, share: float = 0.02) -> list[tuple[int, int]]:
    """The cells whose count is written: all non-zero ones of a small matrix; else the diagonal and the confusions
    that take at least `share` of their true class (the rest only colour the cell)."""
    n = cm.shape[0]
    return [(i, j) for i in range(n) for j in range(n)
            if cm[i, j] > 0 and (n <= 6 or i == j or rate[i, j] >= share)]


def confusion_matrix_figure(names: list[str], confmat: torch.Tensor, top_k: int | None = None,
                            title: str = "Test confusion matrix"):
    """Heat map of a (C, C) confusion matrix (rows true, columns predicted), each row normalised to sum 1 (colours on
    a square-root scale, so a few per cent of confusion shows); counts written where they matter (`shown_cells`).
    With `top_k`, the most frequent true classes and an "other" row/column, whose classes are listed below."""
    confmat = confmat.detach().cpu().to(torch.int64)
    labels, cm = fold_confusion(names, confmat, top_k)
    rate = cm.double() / cm.sum(dim=1, keepdim=True).clamp(min=1)
    n, folded = len(labels), folded_classes(names, confmat, top_k)
    listed = textwrap.fill("other: " + ", ".join(f"{name}\u00a0({short_count(c)})" for name, c in folded), 62)
    lines = listed.count("\n") + 1 if folded else 0
    fig, ax = plt.subplots(figsize=(WIDTH, 0.86 * WIDTH + 0.13 * lines), layout="constrained")
    ax.imshow(rate.numpy(), cmap="Blues", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0), aspect="auto")  # fill the width
    font, count = (9, "{:,}".format) if n <= 6 else (7, short_count)  # big cells have room for exact counts
    ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0, fontsize=font)
    ax.set_yticks(range(n), [f"{lab} ({count(int(cm[i].sum()))})" for i, lab in enumerate(labels)], fontsize=font)
    ax.tick_params(length=2, pad=1.5)
    ax.set_xlabel("predicted", fontsize=7, labelpad=1)
    ax.set_ylabel("true (count)", fontsize=7, labelpad=1)
    for i, j in shown_cells(cm, rate):
        ax.text(j, i, count(int(cm[i, j])), ha="center", va="center", fontsize=font,
                color="white" if rate[i, j] > 0.45 else "black")
    if folded:  # name what "other" holds, below the matrix
        fig.text(0.01, 0.005, listed, fontsize=7, va="bottom", ha="left")
        room = (0.04 + 0.13 * lines) / fig.get_figheight()  # inches of text -> figure fraction
        fig.get_layout_engine().set(rect=(0, room, 1, 1 - room))
    ax.set_title(f"{title}\ncolour: share of the true class", fontsize=8, linespacing=1.3)
    return fig


def _prf(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision, recall, F1 from span counts, 0 where undefined (as seqlab.tasks.span_metrics)."""
    tp, fp, fn = tp.double(), fp.double(), fn.double()
    p, r = tp / (tp + fp).clamp(min=1), tp / (tp + fn).clamp(min=1)
    return p, r, torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=1e-12), torch.zeros_like(p))


def per_type_f1_figure(types: list[str], tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor):
    """Grouped bars of precision, recall and F1 per entity type (most gold spans first), x labels with the type's
    number of gold spans; drawn WIDTH wide like the other test figures."""
    p, r, f1 = _prf(tp, fp, fn)
    gold = tp + fn
    order = torch.argsort(gold, descending=True, stable=True).tolist()
    fig, ax = plt.subplots(figsize=(WIDTH, 2.9), layout="constrained")
    width = 0.27
    for k, (name, values, color) in enumerate((("precision", p, "tab:blue"), ("recall", r, "tab:orange"),
                                               ("F1", f1, "tab:green"))):
        ax.bar([i + (k - 1) * width for i in range(len(order))], [float(values[i]) for i in order], width,
               label=name, color=color)
    ax.set_xticks(range(len(order)), [f"{types[i]}\n{int(gold[i]):,}" for i in order], fontsize=7,
                  rotation=90 if len(order) > 8 else 0)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score", fontsize=7)
    fig.legend(loc="outside lower center", ncols=3, fontsize=7, frameon=False)  # never over a bar
    ax.set_title("Test precision / recall / F1 per entity type\n(gold spans under the type)", fontsize=8)
    return fig


def per_type_table(types: list[str], tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> str:
    """Markdown table per entity type: gold and predicted spans, correct, precision, recall, F1."""
    p, r, f1 = _prf(tp, fp, fn)
    rows = ["| type | gold | predicted | correct | precision | recall | F1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for i in torch.argsort(tp + fn, descending=True, stable=True).tolist():
        rows.append(f"| {types[i]} | {int(tp[i] + fn[i])} | {int(tp[i] + fp[i])} | {int(tp[i])} | "
                    f"{float(p[i]):.4f} | {float(r[i]):.4f} | {float(f1[i]):.4f} |")
    return "\n".join(rows)


SPAN_ERRORS = {  # the error kinds of seqlab.tasks.span_metrics, as the table explains them
    "missed": "gold span that no predicted span overlaps",
    "spurious": "predicted span that overlaps no gold span",
    "wrong_type": "predicted span with a gold span's boundaries but another type",
    "wrong_boundary": "predicted span that overlaps a gold span without matching its boundaries",
}


def span_error_table(errors: dict[str, int], gold: int, predicted: int) -> str:
    """Markdown table of the span errors (missed, spurious, wrong type, wrong boundary) with the span totals."""
    rows = ["| error | spans | what |", "|---|---:|---|"]
    rows += [f"| {k.replace('_', ' ')} | {int(errors[k])} | {what} |" for k, what in SPAN_ERRORS.items()]
    rows += [f"| (gold spans) | {gold} | |", f"| (predicted spans) | {predicted} | |"]
    return "\n".join(rows)
