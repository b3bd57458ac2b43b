"""Configuration of the NAO encoder-predictor-decoder controller.

The defaults are the Dec-2020 NAS-Bench-101 values of the authors' code (``nasbench/train_seminas.py`` @2f03d96):
hidden 64, MLP hidden 16, 2 MLP layers, dropout 0.1, Adam lr 1e-3 with weight decay 1e-4, batch 100, grad-norm clip
5.0, loss 0.8*MSE + 0.2*NLL, linear output. The fields after ``residual_scale`` are speed knobs of this
re-implementation; with their defaults the maths is the authors' (the knobs only change how it is computed, except
``lr_batch_scaling``, which is off by default and changes the learning rate on purpose).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from seminas_ray.utils.schema import dataclass_schema
from seminas_ray.utils.schema import validate_settings

_OUTPUT_ACTIVATIONS = ("linear", "sigmoid")
_LR_SCALINGS = ("none", "linear", "sqrt")


@dataclass(frozen=True)
class ControllerConfig:
    """Hyper-parameters of the EPD controller (architecture, loss, optimiser) plus speed knobs.

    A frozen value: derive a variant with ``dataclasses.replace`` (validated like a new one), never assign.

    Architecture / optimisation (the authors' meaning):

    - ``hidden_size``: embedding, encoder (per direction) and decoder width.
    - ``mlp_hidden_size``, ``mlp_layers``: the predictor MLP (``H -> mlp -> ... -> H``, ReLU + dropout after each).
    - ``dropout``: on the encoder and decoder embeddings and after each MLP layer.
    - ``lr``, ``weight_decay``: Adam (L2 added to the gradient, as ``torch.optim.Adam(weight_decay=...)``).
    - ``batch_size``, ``grad_clip`` (global grad-norm bound), ``trade_off`` (loss = trade_off*MSE + (1-trade_off)*NLL).
    - ``output_activation``: ``"linear"`` (Dec-2020 NAS-Bench) or ``"sigmoid"`` (Apr-2020 / ImageNet / TTS).
    - ``residual_scale``: the ImageNet/TTS encoder scales ``embedding + projection`` by sqrt(0.5) before normalising.

    Speed knobs (documented, all optional):

    - ``lr_batch_scaling``: ``"none"`` (default), ``"linear"`` or ``"sqrt"``: multiply ``lr`` by
      ``(batch_size / lr_reference_batch)`` or its square root, for runs that raise ``batch_size`` to fill a GPU.
      This changes the optimisation (not just its speed), so it is off unless asked for.
    - ``lr_reference_batch``: the batch size ``lr`` was tuned for (100 in the authors' code).
    - ``num_threads``: if set, ``torch.set_num_threads(num_threads)`` when the controller is built (process-wide).
      ``None`` leaves PyTorch's default (one thread per core).
    - ``fast_inference``: evaluate the encoder in ``predict``/``generate`` with a table-driven LSTM (the embedding's
      input projection is precomputed per token, both directions run as one batched matmul per step). Same maths as
      ``nn.LSTM`` up to float rounding; two to three times the throughput on CPU. Ignored on CUDA, where cuDNN's
      fused LSTM is faster.
    - ``generate_eta_batch``: how many step sizes ``generate`` decodes in one batched call (speculatively; the
      accept callback still sees the sequences in the exact sequential order and the result is identical).
    - ``foreach_optimizer``: multi-tensor (``foreach``) grad-norm clip and Adam on CPU, fused Adam on CUDA; same
      maths, far fewer kernel calls per step.
    """

    hidden_size: int = 64
    mlp_hidden_size: int = 16
    mlp_layers: int = 2
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 100
    grad_clip: float = 5.0
    trade_off: float = 0.8
    output_activation: str = "linear"
    residual_scale: bool = False
    # -- speed knobs --
    lr_batch_scaling: str = "none"
    lr_reference_batch: int = 100
    num_threads: int | None = None
    fast_inference: bool = True
    generate_eta_batch: int = 8
    foreach_optimizer: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when a value is out of range."""
        positive_ints = ("hidden_size", "mlp_hidden_size", "mlp_layers", "batch_size", "lr_reference_batch",
                         "generate_eta_batch")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ControllerConfig.{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ControllerConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.trade_off <= 1.0:
            raise ValueError(f"ControllerConfig.trade_off must be in [0, 1], got {self.trade_off!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError(
                f"ControllerConfig needs lr > 0, weight_decay >= 0, grad_clip > 0; got lr={self.lr!r}, "
                f"weight_decay={self.weight_decay!r}, grad_clip={self.grad_clip!r}"
            )
        if self.output_activation not in _OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"ControllerConfig.output_activation must be one of {_OUTPUT_ACTIVATIONS}, "
                f"got {self.output_activation!r}"
            )
        if self.lr_batch_scaling not in _LR_SCALINGS:
            raise ValueError(
                f"ControllerConfig.lr_batch_scaling must be one of {_LR_SCALINGS}, got {self.lr_batch_scaling!r}"
            )
        if self.num_threads is not None and (isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int)
                                             or self.num_threads < 1):
            raise ValueError(f"ControllerConfig.num_threads must be None or a positive int, got {self.num_threads!r}")

    @property
    def effective_lr(self) -> float:
        """The learning rate Adam gets after the optional batch-size scaling."""
        ratio = self.batch_size / self.lr_reference_batch
        if self.lr_batch_scaling == "linear":
            return self.lr * ratio
        if self.lr_batch_scaling == "sqrt":
            return self.lr * ratio ** 0.5
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for result files, Ray object store, checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ControllerConfig:
        """Inverse of ``to_dict``; unknown keys raise ``ValueError`` (a typo must not silently use a default)."""
        if not isinstance(d, dict):
            raise ValueError(f"ControllerConfig.from_dict expects a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown ControllerConfig key(s) {unknown}; known keys are {sorted(known)}"
            )
        return cls(**validate_settings(CONTROLLER_SCHEMA, d, "controller"))


#: The types of :class:`ControllerConfig` as a strict schema (checked before the dataclass's own range checks).
CONTROLLER_SCHEMA = dataclass_schema(ControllerConfig)
