"""Matplotlib figures and text tables for TensorBoard (rendered off-screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

NOT_IN_TRAINING = "(not in training)"  # the gold row of test labels that the training data never had


def per_class_accuracy_figure(names: list[str], acc: torch.Tensor, support: torch.Tensor):
    """Bar chart of accuracy per class (tag), annotated with its number of test tokens."""
    order = torch.argsort(support, descending=True).tolist()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names)), 4.0))
    ax.bar(range(len(order)), [float(acc[i]) for i in order], color="tab:blue")
    ax.set_xticks(range(len(order)), [f"{names[i]}\n{int(support[i])}" for i in order], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Test accuracy per class (with token counts)")
    fig.tight_layout()
    return fig


def per_class_table(names: list[str], acc: torch.Tensor, support: torch.Tensor) -> str:
    """Markdown table (TensorBoard's text tab renders it): class, support, accuracy; most frequent first."""
    rows = ["| class | support | accuracy |", "|---|---:|---:|"]
    for i in torch.argsort(support, descending=True).tolist():
        rows.append(f"| {names[i]} | {int(support[i])} | {float(acc[i]):.4f} |")
    return "\n".join(rows)


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


def confusion_matrix_figure(names: list[str], confmat: torch.Tensor, top_k: int | None = None,
                            title: str = "Test confusion matrix"):
    """Heat map of a (C, C) confusion matrix (rows true, columns predicted), each row normalised to sum 1 and
    annotated with its counts; with `top_k`, the most frequent true classes and an "other" row/column."""
    labels, cm = fold_confusion(names, confmat.detach().cpu().to(torch.int64), top_k)
    rate = cm.double() / cm.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(labels)
    size = max(4.0, 0.5 * n + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    im = ax.imshow(rate.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0, fontsize=7 if n > 6 else 10)
    ax.set_yticks(range(n), [f"{lab} ({int(cm[i].sum())})" for i, lab in enumerate(labels)],
                  fontsize=7 if n > 6 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (count)")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=6 if n > 6 else 9,
                            color="white" if rate[i, j] > 0.5 else "black")
    ax.set_title(title)
    return fig


def _prf(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision, recall, F1 from span counts, 0 where undefined (as seqlab.tasks.span_metrics)."""
    tp, fp, fn = tp.double(), fp.double(), fn.double()
    p, r = tp / (tp + fp).clamp(min=1), tp / (tp + fn).clamp(min=1)
    return p, r, torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=1e-12), torch.zeros_like(p))


def per_type_f1_figure(types: list[str], tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor):
    """Grouped bars of precision, recall and F1 per entity type (most gold spans first), x labels with the type's
    number of gold spans."""
    p, r, f1 = _prf(tp, fp, fn)
    gold = tp + fn
    order = torch.argsort(gold, descending=True, stable=True).tolist()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(types) + 2), 4.0))
    width = 0.27
    for k, (name, values, color) in enumerate((("precision", p, "tab:blue"), ("recall", r, "tab:orange"),
                                               ("F1", f1, "tab:green"))):
        ax.bar([i + (k - 1) * width for i in range(len(order))], [float(values[i]) for i in order], width,
               label=name, color=color)
    ax.set_xticks(range(len(order)), [f"{types[i]}\n{int(gold[i])}" for i in order], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Test entity precision / recall / F1 per type (with gold span counts)")
    fig.tight_layout()
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
