"""Matplotlib figures and text tables for TensorBoard (rendered off-screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


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
