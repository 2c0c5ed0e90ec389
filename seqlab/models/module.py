"""The LightningModule: built from the datamodule's metadata plus the plain model config."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
import torchmetrics
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from seqlab.data.collate import IGNORE_INDEX
from seqlab.errors import ConfigError
from seqlab.models.chars import CHAR_ENCODERS
from seqlab.models.encoder import BACKENDS, CELLS, PATHS, LSTMEncoder

log = logging.getLogger(__name__)
POOLINGS = ("last", "max", "mean")
SCHEDULER_KEYS = ("monitor", "interval", "frequency")  # model.scheduler keys that go to Lightning, not the scheduler


def _check(cfg: dict[str, Any]) -> None:
    for key in ("embedding_dim", "hidden_size", "num_layers"):
        v = cfg[key]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"model.{key} must be a positive integer, got {v!r}.")
    if not 0.0 <= float(cfg["dropout"]) < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {cfg['dropout']!r}.")
    for key in ("char_dim", "char_hidden"):
        if not isinstance(cfg[key], int) or cfg[key] <= 0:
            raise ConfigError(f"model.{key} must be a positive integer, got {cfg[key]!r}.")
    for key, allowed in (("backend", tuple(BACKENDS)), ("cell", tuple(CELLS)), ("path", PATHS), ("pooling", POOLINGS),
                         ("char_encoder", (None, *CHAR_ENCODERS))):
        if cfg[key] not in allowed:
            raise ConfigError(f"model.{key} must be one of {', '.join(map(str, allowed))}; got {cfg[key]!r}.")
    for key, example in (("optimizer", "torch.optim.Adam"), ("scheduler", "torch.optim.lr_scheduler.StepLR")):
        spec = cfg.get(key)
        if spec is not None and not (isinstance(spec, dict) and isinstance(spec.get("_target_"), str)):
            raise ConfigError(f"model.{key} must be null or a mapping with a _target_ class path "
                              f"(e.g. {example}); got {spec!r}.")


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def pool(outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, F) outputs -> (B, F), padding masked out: `last` final states, `max` or `mean` over real steps."""
    if how == "last":
        return final
    mask = (torch.arange(outputs.size(1), device=outputs.device)[None, :] < lengths.to(outputs.device)[:, None])
    mask = mask.unsqueeze(-1)
    if how == "max":
        return outputs.masked_fill(~mask, float("-inf")).amax(dim=1)
    return (outputs * mask).sum(dim=1) / lengths.to(outputs.device).unsqueeze(1).to(outputs.dtype)


class SeqModel(pl.LightningModule):
    """Embedding -> (bi)LSTM -> linear head: one label per sequence (classification) or per token (tagging)."""

    def __init__(self, metadata: dict[str, Any], embedding_dim: int = 100, hidden_size: int = 128,
                 num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.5, pooling: str = "last",
                 backend: str = "torch", path: str = "auto", optimizer: dict[str, Any] | None = None,
                 vectors: str | None = None, freeze_embeddings: bool = False, char_encoder: str | None = None,
                 char_dim: int = 30, char_hidden: int = 50, scheduler: dict[str, Any] | None = None,
                 cell: str = "lstm"):
        super().__init__()
        # Hydra hands nested values over as DictConfig; checkpoints keep plain types (weights_only=True loads them).
        metadata, optimizer, scheduler = _plain(metadata), _plain(optimizer), _plain(scheduler)
        self.save_hyperparameters()
        _check(self.hparams)
        self.task = metadata["task"]
        self.label_names = list(metadata["labels"])
        n = len(self.label_names)
        chars = None
        if char_encoder is not None:
            if "num_chars" not in metadata:
                raise ConfigError(f"model.char_encoder={char_encoder} needs character ids, which only tagging data "
                                  "(data=pos) provides; set model.char_encoder=null.")
            chars = CHAR_ENCODERS[char_encoder](metadata["num_chars"], char_dim, char_hidden, backend, cell)
        self.encoder = LSTMEncoder(metadata["vocab_size"], metadata["pad_index"], embedding_dim, hidden_size,
                                   num_layers, bidirectional, dropout, backend, path, chars, cell=cell)
        # Pretrained `vectors` are copied in by train(), which has the vocabulary; checkpoints carry the weights.
        self.encoder.embedding.weight.requires_grad_(not freeze_embeddings)
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, n)
        self.loss = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        kw = {"task": "multiclass", "num_classes": n, "ignore_index": IGNORE_INDEX}
        acc = torchmetrics.Accuracy(**kw)
        self.metrics = nn.ModuleDict({f"{s}_acc": acc.clone() for s in ("train", "val", "test")})
        for s in ("val", "test"):
            self.metrics[f"{s}_macro_f1"] = torchmetrics.F1Score(average="macro", **kw)
        if self.task == "tagging":
            self.metrics["test_oov_acc"] = acc.clone()  # accuracy on words never seen in training
            self.metrics["test_per_class_acc"] = torchmetrics.Accuracy(average="none", **kw)
        self.metrics["test_confusion"] = torchmetrics.ConfusionMatrix(**kw)  # a TensorBoard figure after testing
        self.register_buffer("test_support", torch.zeros(n, dtype=torch.long), persistent=False)
        self.register_buffer("test_unseen", torch.zeros((), dtype=torch.long), persistent=False)
        self.test_unseen_total = None  # test tokens never seen in training, all ranks (tagging; after testing)

    # Vocabulary, labels and preprocessing travel inside checkpoints (set by train() from the datamodule), so a
    # checkpoint alone can evaluate or predict on raw text.
    inference_info: dict[str, Any] | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.inference_info is not None:
            checkpoint["seqlab"] = self.inference_info

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.inference_info = checkpoint.get("seqlab", self.inference_info)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T), lengths (B,) [, chars (B, T, W)] -> logits (B, C) classification or (B, T, C) tagging."""
        outputs, final = self.encoder(tokens, lengths, chars)
        features = outputs if self.task == "tagging" else pool(outputs, final, lengths, self.hparams.pooling)
        return self.head(self.head_dropout(features))

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        logits = self(batch["tokens"], batch["lengths"], batch.get("chars"))
        labels = batch["labels"]
        loss = self.loss(logits.reshape(-1, logits.size(-1)), labels.reshape(-1))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{split} loss is {loss.item()}; lower the learning rate or clip gradients.")
        preds = logits.argmax(-1)
        metric = self.metrics[f"{split}_acc"]
        metric(preds, labels)
        on_step = split == "train"
        bs = int(batch["lengths"].numel())
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=bs,
                 sync_dist=not on_step)
        self.log(f"{split}/acc", metric, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=bs)
        if split != "train":
            self.metrics[f"{split}_macro_f1"](preds, labels)
            self.log(f"{split}/macro_f1", self.metrics[f"{split}_macro_f1"], on_epoch=True, batch_size=bs)
        if split == "test":
            self.metrics["test_confusion"].update(preds, labels)
        if split == "test" and self.task == "tagging":
            unseen = batch["unseen"]
            if unseen.any():
                self.metrics["test_oov_acc"].update(preds[unseen], labels[unseen])
                self.test_unseen += unseen.sum()
            self.log("test/oov_acc", self.metrics["test_oov_acc"], on_epoch=True, batch_size=bs)
            self.metrics["test_per_class_acc"].update(preds, labels)
            real = labels[labels != IGNORE_INDEX]
            self.test_support += torch.bincount(real, minlength=self.test_support.numel())
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.test_support.zero_()
        self.test_unseen.zero_()
        self.metrics["test_confusion"].reset()

    def on_test_epoch_end(self) -> None:
        """Test figures in TensorBoard: the confusion matrix (tagging: the most frequent tags, the rest folded into
        "other"), and per-class accuracy with a table (tagging). Every rank reduces the metrics (collectives);
        global rank zero draws."""
        confusion = self.metrics["test_confusion"]
        cm = confusion.compute().cpu()
        confusion.reset()
        tagging = self.task == "tagging"
        if tagging:
            metric = self.metrics["test_per_class_acc"]
            acc = metric.compute().cpu()
            metric.reset()
            support = self.trainer.strategy.reduce(self.test_support.float(), reduce_op="sum").cpu()
            self.test_unseen_total = int(self.trainer.strategy.reduce(self.test_unseen.float(), reduce_op="sum"))
        exp = getattr(self.logger, "experiment", None)
        if exp is None or not self.trainer.is_global_zero or not hasattr(exp, "add_figure"):
            return
        from seqlab.models import figures

        top_k = figures.TOP_CLASSES if tagging else None
        exp.add_figure("test/confusion_matrix", figures.confusion_matrix_figure(self.label_names, cm, top_k))
        if tagging:
            exp.add_figure("test/per_class_accuracy", figures.per_class_accuracy_figure(self.label_names, acc, support))
            exp.add_text("test/per_class_accuracy", figures.per_class_table(self.label_names, acc, support))

    def results_as_metrics(self, results: dict[str, float]) -> dict[str, float | None]:
        """Lightning's logged results ("test/acc") as metrics.json keys ("test_acc"). OOV accuracy over no unseen
        token is undefined: None (torchmetrics would report 0.0)."""
        metrics: dict[str, float | None] = {k.replace("/", "_"): float(v) for k, v in results.items()}
        if "test_oov_acc" in metrics and self.test_unseen_total == 0:
            log.warning("No test token is absent from training, so test_oov_acc is undefined (null).")
            metrics["test_oov_acc"] = None
        return metrics

    def on_fit_start(self) -> None:
        if self.logger is not None:
            self.logger.log_metrics({"num_parameters": float(self.num_parameters)}, step=0)

    def configure_optimizers(self):
        spec = dict(self.hparams.optimizer or {"_target_": "torch.optim.Adam", "lr": 1e-3})
        optimizer = instantiate({**spec, "_partial_": True})(params=self.parameters())
        if not self.hparams.get("scheduler"):
            return optimizer
        spec = dict(self.hparams.scheduler)
        # Lightning's own keys sit beside the scheduler's arguments: what it monitors, and when it steps.
        lightning = {key: spec.pop(key) for key in SCHEDULER_KEYS if key in spec}
        lightning.setdefault("monitor", "val/acc")
        if spec["_target_"].endswith("ReduceLROnPlateau"):  # its mode follows the monitored metric unless given
            spec.setdefault("mode", "min" if "loss" in lightning["monitor"] else "max")
        scheduler = instantiate({**spec, "_partial_": True})(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, **lightning}}
