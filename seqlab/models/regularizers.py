"""Regularisers from the literature as plain functions of tensors (no Lightning), and their settings.

- word dropout (`model.word_dropout`): whole word vectors set to zero. Mode ``type`` (the default) drops word
  *types*: one draw per vocabulary entry per batch, so every occurrence of a dropped word in the batch is zero
  (AWD-LSTM's ``embedded_dropout``, Merity et al. 2018; Gal & Ghahramani 2016's word dropout). Mode ``token``
  drops single positions.
- locked (variational) dropout (`model.locked_dropout`): one mask per sequence and feature, the same at every time
  step (Gal & Ghahramani 2016), at three places: ``input`` (the recurrent layers' input: word embedding + character
  features), ``hidden`` (each upper recurrent layer's input) and ``output`` (the encoder's outputs and final
  states, what the head reads).
- DropConnect on the recurrent weights (`model.weight_drop`): each layer's and direction's ``weight_hh`` with
  entries dropped, a new mask per batch, the same at every time step (AWD-LSTM's WeightDrop, Wan et al. 2013).
- adversarial perturbation of the word embeddings (`model.adversarial`, Miyato et al. 2017) on embeddings
  normalised by their training-frequency-weighted mean and variance (their eq. 1).

All masks keep a value with probability 1 - p and scale it by 1 / (1 - p) (inverted dropout, as the papers' code),
so evaluation runs the network unchanged. They are drawn from torch's global RNG, which seqlab re-seeds before each
training step (seqlab.callbacks_resume.StepSeed): masks depend on (seed, rank, step) alone, so resumed runs repeat
them and DDP ranks draw their own.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqlab.errors import ConfigError

WORD_DROPOUT_MODES = ("type", "token")
LOCKED_PLACES = ("input", "hidden", "output")
ADVERSARIAL_KEYS = {"epsilon": 0.0, "weight": 1.0, "normalize": True}


def keep_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A mask of `shape` with entries 1 / (1 - p) (kept, probability 1 - p) or 0, of `like`'s dtype and device."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1 - p).div_(1 - p)


def word_dropout(x: Tensor, tokens: Tensor, p: float, mode: str, vocab_size: int) -> Tensor:
    """x (B, T, E), the word vectors of tokens (B, T) -> x with whole word vectors zeroed, the others scaled.

    ``type``: a mask over the vocabulary (V,), looked up by token, so a word is dropped at all its positions in the
    batch; ``token``: a mask over positions (B, T).
    """
    mask = keep_mask((vocab_size,), p, x)[tokens] if mode == "type" else keep_mask(tuple(tokens.shape), p, x)
    return x * mask.unsqueeze(-1)


def locked_mask(batch: int, features: int, p: float, like: Tensor) -> Tensor:
    """(B, F): one mask per sequence, to be broadcast over its time steps."""
    return keep_mask((batch, features), p, like)


def drop_connect(weights: list[dict[str, Tensor | None]], p: float) -> list[dict[str, Tensor | None]]:
    """One layer's parameters per direction (seqlab.nn.layer_weights) with ``weight_hh`` (G, H) DropConnect-ed."""
    return [{**w, "weight_hh": F.dropout(w["weight_hh"], p, training=True)} for w in weights]


def normalize_embeddings(weight: Tensor, frequency: Tensor, eps: float = 1e-6) -> Tensor:
    """Miyato et al. 2017, eq. 1, per dimension: (v - E[v]) / sqrt(Var[v] + eps), E and Var over the vocabulary
    weighted by the words' training frequencies f (V,) (normalised to sum 1; all zero: uniform over ids >= 1).

    weight (V, E) -> (V, E). Computed at every call from the current weights (they train), as the paper's code.
    """
    f = frequency.to(weight.dtype)
    if not f.sum() > 0:
        f = torch.ones_like(f)
        f[0] = 0.0  # <pad>
    f = (f / f.sum()).unsqueeze(1)
    mean = (f * weight).sum(0, keepdim=True)
    var = (f * (weight - mean).pow(2)).sum(0, keepdim=True)
    return (weight - mean) / torch.sqrt(var + eps)


def adversarial_perturbation(grad: Tensor, epsilon: float) -> Tensor:
    """r_adv = epsilon * g / ||g||_2 for each sequence (Miyato et al. 2017, eq. 5): grad (B, T, E) -> (B, T, E).

    The norm is over the whole sequence (all its positions and dimensions). g is first divided by its largest
    entry, as the paper's code does, so tiny gradients do not underflow when squared; a sequence whose gradient is
    zero gets no perturbation.
    """
    g = grad.detach()
    dims = tuple(range(1, g.dim()))
    alpha = g.abs().amax(dim=dims, keepdim=True)
    unit = g / alpha.clamp_min(torch.finfo(g.dtype).tiny)
    norm = unit.pow(2).sum(dim=dims, keepdim=True).sqrt()
    return torch.where(alpha > 0, epsilon * unit / norm.clamp_min(torch.finfo(g.dtype).tiny), torch.zeros_like(g))


# -- settings ---------------------------------------------------------------------------------------------------------

def _rate(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{key} must be a number in [0, 1), got {value!r}.")
    return float(value)


def locked_rates(value: Any) -> dict[str, float | None]:
    """`model.locked_dropout` -> the locked rate at each place, None where model.dropout (per element) stays.

    null: none; a number: that rate at all three places; a mapping {input, hidden, output}: those it names.
    """
    if value is None:
        return dict.fromkeys(LOCKED_PLACES)
    if isinstance(value, dict):
        unknown = [k for k in value if k not in LOCKED_PLACES]
        if unknown:
            raise ConfigError(f"model.locked_dropout.{unknown[0]} is not a place of locked dropout; use "
                              f"{', '.join(LOCKED_PLACES)} (or one number for all three).")
        return {k: None if value.get(k) is None else _rate(f"model.locked_dropout.{k}", value[k])
                for k in LOCKED_PLACES}
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"model.locked_dropout must be null, a number in [0, 1) or a mapping of {{input, hidden, "
                          f"output}} to such numbers; got {value!r}.")
    return dict.fromkeys(LOCKED_PLACES, _rate("model.locked_dropout", value))


def adversarial_settings(value: Any) -> dict[str, Any]:
    """`model.adversarial` (null or a mapping of epsilon >= 0, weight >= 0, normalize) with the defaults filled."""
    if value is None:
        return dict(ADVERSARIAL_KEYS)
    if not isinstance(value, dict):
        raise ConfigError(f"model.adversarial must be null or a mapping {{epsilon, weight, normalize}}, got {value!r}.")
    for key in value:
        if key not in ADVERSARIAL_KEYS:
            raise ConfigError(f"model.adversarial.{key} is not a setting; use {', '.join(ADVERSARIAL_KEYS)}.")
    s = {**ADVERSARIAL_KEYS, **value}
    for key in ("epsilon", "weight"):
        v = s[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not float(v) >= 0.0 or v == float("inf"):
            raise ConfigError(f"model.adversarial.{key} must be a finite number >= 0, got {v!r}.")
    if not isinstance(s["normalize"], bool):
        raise ConfigError(f"model.adversarial.normalize must be true or false, got {s['normalize']!r}.")
    return {"epsilon": float(s["epsilon"]), "weight": float(s["weight"]), "normalize": s["normalize"]}


def check_regularizers(cfg: dict[str, Any]) -> None:
    """ConfigError naming the model.* key of a bad regulariser setting (SeqNet's arguments)."""
    _rate("model.word_dropout", cfg["word_dropout"])
    _rate("model.weight_drop", cfg["weight_drop"])
    if cfg["word_dropout_mode"] not in WORD_DROPOUT_MODES:
        raise ConfigError(f"model.word_dropout_mode must be one of {', '.join(WORD_DROPOUT_MODES)}; got "
                          f"{cfg['word_dropout_mode']!r}.")
    locked_rates(cfg["locked_dropout"])
    adversarial_settings(cfg["adversarial"])
