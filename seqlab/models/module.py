"""The LightningModule: trains a SeqNet, built from the datamodule's metadata plus the plain model config.

Everything task-specific is asked of the task (`self.task`): the head, loss and decoding (through the net), the
metrics of each split and the test figures. The metadata travels inside every checkpoint (`checkpoint["seqlab"]`),
so a checkpoint alone can evaluate or predict; the saved hyperparameters are the plain model config.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from seqlab.data.vocab import IGNORE_INDEX
from seqlab.errors import ConfigError
from seqlab.metadata import Metadata
from seqlab.models.net import SeqNet
from seqlab.models.regularizers import adversarial_perturbation

log = logging.getLogger(__name__)
SCHEDULER_KEYS = ("monitor", "interval", "frequency")  # model.scheduler keys that go to Lightning, not the scheduler
AUTO_KEYS = ("total_steps", "T_max", "total_iters")  # model.scheduler arguments that may be `auto` (steps it takes)
SPLITS = ("train", "val", "test")


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def monitored(task, override: str | None = None, mode: str | None = None) -> tuple[str, str]:
    """("val/<metric>", "max" | "min"): the task's monitored metric unless the config names another."""
    name = override or task.monitor
    name = name if name.startswith("val/") else "val/" + name.removeprefix("val_")
    if mode is None:
        mode = task.monitor_mode if name == f"val/{task.monitor}" else ("min" if "loss" in name else "max")
    if mode not in ("max", "min"):
        raise ConfigError(f"monitor_mode must be max or min, got {mode!r}.")
    return name, mode


class SeqModel(pl.LightningModule):
    """A SeqNet trained with the task's loss; metrics per split from the task's evaluators."""

    def __init__(self, metadata: Metadata | dict, optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None, vectors: str | None = None, extend_vocab: bool = False,
                 monitor: tuple[str, str] | list[str] | None = None, swa: dict[str, Any] | None = None,
                 **net_options: Any):
        super().__init__()
        # Hydra hands nested values over as DictConfig; checkpoints keep plain types (weights_only=True loads them).
        # `swa` (StochasticWeightAveraging's arguments) is read by train() (seqlab.swa); kept as a hyperparameter.
        optimizer, scheduler, monitor, swa = _plain(optimizer), _plain(scheduler), _plain(monitor), _plain(swa)
        net_options = {k: _plain(v) for k, v in net_options.items()}
        metadata = metadata if isinstance(metadata, Metadata) else Metadata.from_dict(_plain(metadata))
        for key, example in (("optimizer", "torch.optim.Adam"), ("scheduler", "torch.optim.lr_scheduler.StepLR")):
            spec = locals()[key]
            if spec is not None and not (isinstance(spec, dict) and isinstance(spec.get("_target_"), str)):
                raise ConfigError(f"model.{key} must be null or a mapping with a _target_ class path "
                                  f"(e.g. {example}); got {spec!r}.")
        self.save_hyperparameters(ignore=["metadata"])
        self.metadata = metadata
        try:
            self.net = SeqNet(metadata, **net_options)
        except TypeError as e:  # an unknown model.* key
            raise ConfigError(f"Unknown model setting ({str(e).split('() ', 1)[-1]}); check the model.* keys "
                              "against configs/model/.") from None
        self.task = self.net.task
        self.monitor_name, self.monitor_mode = tuple(monitor) if monitor else monitored(self.task)
        self.evaluators = nn.ModuleDict({s: self.task.evaluator(s) for s in ("val", "test")})
        # Training loss and accuracy of the epoch so far, summed without a self.log() per step (that costs about as
        # much as a small model's optimizer step): (loss * sequences, correct labels, labels, sequences).
        self.train_sums = torch.zeros(4, dtype=torch.float64)

    @classmethod
    def check_config(cls, args: dict[str, Any]) -> None:
        """The model.* keys, their types and the architecture's ranges, before any data is prepared (the network's
        keys are SeqNet's arguments; the training keys are this class's)."""
        import difflib
        import inspect

        from seqlab.arguments import check_arguments
        from seqlab.models.net import TRAINING_KEYS, check_architecture

        net_params = [p for p in inspect.signature(SeqNet).parameters if p != "metadata"]
        accepted = [*net_params, *TRAINING_KEYS]
        for key in args:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise ConfigError(f"model.{key} is not an argument of SeqModel; {hint}accepted: {', '.join(accepted)}.")
        if args.get("extend_vocab") and not args.get("vectors"):
            raise ConfigError("model.extend_vocab=true keeps the words pretrained vectors know; set model.vectors too.")
        net_args = {k: v for k, v in args.items() if k not in TRAINING_KEYS}
        check_arguments("model", SeqNet, net_args, provided=("metadata",))
        defaults = {k: p.default for k, p in inspect.signature(SeqNet).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        check_architecture({**defaults, **net_args})

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, **kwargs: Any) -> SeqModel:
        """Lightning's loader; the metadata comes from the checkpoint itself (it is not a hyperparameter)."""
        if "metadata" not in kwargs:
            ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            kwargs["metadata"] = Metadata.from_dict(ckpt.get("seqlab", {}).get("metadata"))
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location, **kwargs)

    @property
    def num_parameters(self) -> int:
        return self.net.num_parameters

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["seqlab"] = {"metadata": self.metadata.to_dict()}

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(tokens, lengths, chars)

    def setup(self, stage: str) -> None:
        """Embedding normalisation (adversarial training) weighs words by their training counts: from the training
        split, once, before fitting (a resumed run's checkpoint then restores the same counts)."""
        if stage != "fit" or not self.net.encoder.normalize:
            return
        datasets = getattr(self.trainer.datamodule, "datasets", None) or {}
        if "train" not in datasets:
            log.warning("No training split to count words in: the embedding normalisation weighs words uniformly.")
            return
        ids = datasets["train"].ids.values.long()
        self.net.encoder.set_word_counts(torch.bincount(ids, minlength=self.metadata.vocab_size).float())

    def _adversarial_loss(self, loss: torch.Tensor, embeddings: torch.Tensor, batch: dict[str, torch.Tensor],
                          rng: dict[str, Any]) -> torch.Tensor:
        """Miyato et al. 2017: the loss again with the embeddings moved by r_adv = epsilon * g / ||g||_2 per
        sequence, g the loss gradient w.r.t. them (r_adv is a constant: no gradient flows through it). The second
        pass re-draws the first pass's dropout masks (`rng`: the generator states before it), so it perturbs the
        very loss whose gradient it follows."""
        (grad,) = torch.autograd.grad(loss, embeddings, retain_graph=True)
        r_adv = adversarial_perturbation(grad, self.net.adversarial["epsilon"])
        _set_rng_state(rng)
        adv_scores = self.net.from_embeddings(embeddings + r_adv, batch["tokens"], batch["lengths"],
                                              batch.get("chars"))
        return self.net.head.loss(adv_scores, batch["labels"], batch["lengths"])

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        lengths, labels = batch["lengths"], batch["labels"]
        training = split == "train"
        adversarial = training and self.net.adversarial["epsilon"] > 0
        rng = _rng_state(batch["tokens"].device) if adversarial else None
        embeddings = self.net.embed(batch["tokens"])
        if adversarial and not embeddings.requires_grad:  # frozen, not normalised: still the input g is taken of
            embeddings.requires_grad_()
        scores = self.net.from_embeddings(embeddings, batch["tokens"], lengths, batch.get("chars"))
        head = self.net.head
        loss = head.loss(scores, labels, lengths)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{split} loss is {loss.item()}; lower the learning rate or clip gradients.")
        preds = head.decode(scores.detach(), lengths)
        bs = int(lengths.numel())
        total = loss
        if adversarial:
            adv_loss = self._adversarial_loss(loss, embeddings, batch, rng)
            total = loss + self.net.adversarial["weight"] * adv_loss
            self.log("train/adv_loss", adv_loss, on_step=True, on_epoch=True, batch_size=bs)
        if training:
            real = labels != IGNORE_INDEX
            step = torch.stack([loss.detach() * bs, (preds[real] == labels[real]).sum(), real.sum(),
                                loss.new_tensor(bs)])
            self.train_sums += step.to(device="cpu", dtype=torch.float64)
            every = self._trainer.log_every_n_steps if self._trainer is not None else 0  # Lightning writes step
            # values at these steps only; outside a Trainer (tests calling _step) nothing is logged
            if every and (self.global_step + 1) % every == 0:
                self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)
        else:
            self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=True)
            self.task.update(self.evaluators[split], preds, batch)
        return total

    def train_epoch_means(self) -> dict[str, float]:
        """{"train/loss", "train/acc"} over the epoch's training batches so far (this process's)."""
        loss_sum, correct, count, sequences = self.train_sums.tolist()
        return {"train/loss": loss_sum / sequences, "train/acc": correct / count} if sequences else {}

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()

    def on_train_epoch_end(self) -> None:
        """The epoch's training loss and accuracy: TensorBoard, and what a scheduler or callback may monitor."""
        means = self.train_epoch_means()
        if means:
            self.log_dict(means, on_step=False, on_epoch=True, batch_size=1)

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def _log_evaluation(self, split: str) -> dict[str, torch.Tensor]:
        """Reduce the split's evaluator (all ranks), log its metrics, reset it; returns the computed values."""
        evaluator = self.evaluators[split]
        values = evaluator.compute()
        names = self.task.metric_names(split)
        self.log_dict({f"{split}/{k}": values[k].float() for k in names}, batch_size=1)
        return values

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")
        self.evaluators["val"].reset()

    def on_test_epoch_end(self) -> None:
        """Test metrics, then the task's figures in TensorBoard (global rank zero draws)."""
        self._log_evaluation("test")
        exp = getattr(self.logger, "experiment", None)
        if exp is not None and self.trainer.is_global_zero and hasattr(exp, "add_figure"):
            self.task.test_report(self.evaluators["test"], exp)
        self.evaluators["test"].reset()

    def configure_optimizers(self):
        spec = dict(self.hparams.optimizer or {"_target_": "torch.optim.Adam", "lr": 1e-3})
        optimizer = instantiate({**spec, "_partial_": True})(params=self.parameters())
        if not self.hparams.get("scheduler"):
            return optimizer
        spec = dict(self.hparams.scheduler)
        # Lightning's own keys sit beside the scheduler's arguments: what it monitors, and when it steps.
        lightning = {key: spec.pop(key) for key in SCHEDULER_KEYS if key in spec}
        lightning.setdefault("monitor", self.monitor_name)
        for key in AUTO_KEYS:
            if spec.get(key) == "auto":
                spec[key] = self._scheduler_steps(lightning.get("interval", "epoch"))
        if spec["_target_"].endswith("ReduceLROnPlateau"):  # its mode follows the monitored metric unless given
            mode = self.monitor_mode if lightning["monitor"] == self.monitor_name else \
                monitored(self.task, lightning["monitor"])[1]
            spec.setdefault("mode", mode)
        scheduler = instantiate({**spec, "_partial_": True})(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, **lightning}}

    def _scheduler_steps(self, interval: str) -> int:
        """What `auto` stands for in model.scheduler: the steps the scheduler will take if training runs to its end,
        the trainer's estimated optimizer steps (interval step) or max_epochs (interval epoch). A run that
        trainer.max_time stops earlier never reaches the schedule's end."""
        trainer = self.trainer
        if interval == "step":
            loaded = trainer.train_dataloader is not None
            steps = trainer.estimated_stepping_batches
            if not loaded:
                # Lightning has just set up the training loader to count its batches: before a resumed run restores
                # the loader's position in its epoch, which it then never applies (FitLoop.setup_data loads it only
                # when it sets the loader up). Drop it, so the fit loop sets it up again after the restore.
                trainer.fit_loop._combined_loader = None
        else:
            steps = trainer.max_epochs
        if steps is None or steps < 1 or steps == float("inf"):
            raise ConfigError(f"model.scheduler: `auto` needs a known number of {interval}s; set trainer.max_epochs "
                              "(or trainer.max_steps) or give the number.")
        return int(steps)


def _rng_state(device: torch.device) -> dict[str, Any]:
    """The states of the generators dropout draws from: torch's CPU one and, on CUDA, the device's."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = (device, torch.cuda.get_rng_state(device))
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"][1], state["cuda"][0])
