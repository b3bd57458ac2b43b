"""``NAOController``: fit / predict / reconstruct / generate with the NAO encoder-predictor-decoder.

One implementation for every search space: the controller needs only the space's ``vocab_size``, ``seq_len`` and
``token_mask()`` (tokens allowed at each position; token 0 = SOS/pad). The training loop, loss and generation step
follow the authors' ``nasbench/train_seminas.py`` (``seminas_spec.md`` §1-2):

- ``fit`` builds a new Adam optimiser per call and continues from the current weights (pretrain and train phases are
  two calls); batches are reshuffled every epoch; the last partial batch is kept (``DataLoader(shuffle=True)``).
- ``generate`` is the gradient step on the per-token encoder outputs with a growing step size, in eval mode.

Speed (see ``benchmarks/controller_speed.py``): tensors are built once per ``fit`` and batches are gathered with
index tensors; loss statistics stay on the device until the end of the fit (no per-step host sync); the teacher-forced
decoder is one LSTM call; inference uses the table-driven LSTMs of ``model.py`` in big chunks under
``torch.inference_mode``; ``generate`` computes the gradient once (it does not depend on the step size) and decodes
several step sizes in one batched greedy pass.

This module imports neither Ray nor the algorithm layer: the controller's weights travel as plain numpy dicts
(``get_weights``), and ``predict_with_weights`` is the stateless entry point for remote pseudo-labelling.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seminas_ray.controller.config import ControllerConfig
from seminas_ray.controller.model import EPD
from seminas_ray.controller.model import EncoderPredictor
from seminas_ray.controller.model import pool
from seminas_ray.controller.model import predict_tokens

log = logging.getLogger(__name__)

STATE_FORMAT = "seminas_ray.nao_controller.v1"
# Rows per inference forward pass when the caller does not say: on CPU, past ~1k rows the LSTM's per-step working
# set leaves the L2 cache and throughput drops; a GPU wants large batches.
CPU_INFERENCE_BATCH = 1024
GPU_INFERENCE_BATCH = 16384


# ---------------------------------------------------------------------------------------------------------------
# small value types
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenSpec:
    """What the controller needs from a search space: vocabulary size (incl. token 0), length, allowed tokens."""

    vocab_size: int
    seq_len: int
    token_mask: np.ndarray | None = None  # bool [seq_len, vocab_size]; None = every token but 0 allowed

    def mask(self) -> np.ndarray:
        """The ``[seq_len, vocab_size]`` allowed-token mask (default: all tokens except SOS/pad 0)."""
        if self.token_mask is not None:
            return self.token_mask
        mask = np.ones((self.seq_len, self.vocab_size), dtype=bool)
        mask[:, 0] = False
        return mask


def token_spec_of(space_or_spec: Any) -> TokenSpec:
    """A ``TokenSpec`` from a search space (anything with ``vocab_size``, ``seq_len``, ``token_mask()``), a
    ``TokenSpec``, a ``(vocab_size, seq_len)`` pair or a dict with those keys."""
    if isinstance(space_or_spec, TokenSpec):
        spec = space_or_spec
    elif isinstance(space_or_spec, dict):
        spec = TokenSpec(int(space_or_spec["vocab_size"]), int(space_or_spec["seq_len"]),
                         space_or_spec.get("token_mask"))
    elif isinstance(space_or_spec, (tuple, list)) and len(space_or_spec) == 2:
        spec = TokenSpec(int(space_or_spec[0]), int(space_or_spec[1]))
    elif hasattr(space_or_spec, "vocab_size") and hasattr(space_or_spec, "seq_len"):
        mask = space_or_spec.token_mask() if hasattr(space_or_spec, "token_mask") else None
        spec = TokenSpec(int(space_or_spec.vocab_size), int(space_or_spec.seq_len), mask)
    else:
        raise TypeError(
            f"expected a search space, TokenSpec, (vocab_size, seq_len) or dict, got {type(space_or_spec).__name__}"
        )
    if spec.vocab_size < 2 or spec.seq_len < 1:
        raise ValueError(f"token spec needs vocab_size >= 2 and seq_len >= 1, got {spec.vocab_size}, {spec.seq_len}")
    if spec.token_mask is not None:
        mask = np.asarray(spec.token_mask, dtype=bool)
        if mask.shape != (spec.seq_len, spec.vocab_size):
            raise ValueError(f"token_mask has shape {mask.shape}, expected {(spec.seq_len, spec.vocab_size)}")
        if not mask.any(axis=1).all():
            bad = int(np.flatnonzero(~mask.any(axis=1))[0])
            raise ValueError(f"token_mask allows no token at position {bad}")
        spec = TokenSpec(spec.vocab_size, spec.seq_len, mask)
    return spec


@dataclass
class EarlyStopping:
    """Hold out a fraction of the labelled data, stop when the held-out loss stops improving, restore the best weights.

    The split is by unique sequence (an up-sampled copy never lands on both sides). ``metric`` is the held-out
    ``"loss"`` (the training objective) or ``"mse"`` (predictor only); both are computed in eval mode.
    """

    valid_fraction: float = 0.1
    patience: int = 20
    min_delta: float = 0.0
    seed: int = 0
    metric: str = "loss"

    def __post_init__(self) -> None:
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"EarlyStopping.valid_fraction must be in (0, 1), got {self.valid_fraction!r}")
        if self.patience < 1:
            raise ValueError(f"EarlyStopping.patience must be >= 1, got {self.patience!r}")
        if self.metric not in ("loss", "mse"):
            raise ValueError(f"EarlyStopping.metric must be 'loss' or 'mse', got {self.metric!r}")


@dataclass
class FitResult:
    """What one ``fit`` call did. ``history`` has one dict per epoch (sample-weighted means, as the authors log)."""

    epochs_run: int
    steps: int
    seconds: float
    final_loss: float
    final_mse: float
    final_nll: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    best_valid: float | None = None
    best_epoch: int | None = None
    n_train: int = 0

    @property
    def archs_per_second(self) -> float:
        """Training throughput (architecture passes per second)."""
        return self.epochs_run * self.n_train / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class GenerateResult:
    """Accepted sequences in acceptance order, with where each came from, and how much was tried."""

    seqs: list[np.ndarray]
    step_sizes_tried: list[float]
    n_decoded: int
    n_accepted: int
    seconds: float
    seed_indices: list[int] = field(default_factory=list)  # index into ``seeds`` of each accepted sequence
    step_sizes: list[float] = field(default_factory=list)  # step size that produced each accepted sequence


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def _default_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_seqs(seqs: np.ndarray, spec: TokenSpec, what: str) -> np.ndarray:
    arr = np.asarray(seqs)
    if arr.ndim != 2 or arr.shape[1] != spec.seq_len:
        raise ValueError(f"{what} must have shape [N, {spec.seq_len}], got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer tokens, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= spec.vocab_size):
        raise ValueError(
            f"{what} holds tokens outside [0, {spec.vocab_size}): min {arr.min()}, max {arr.max()}"
        )
    return arr.astype(np.int64, copy=False)


def _check_fit_inputs(seqs: np.ndarray, targets: np.ndarray, epochs: int, spec: TokenSpec
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``fit``'s arguments checked: int64 ``[N, seq_len]`` tokens and float64 ``[N]`` finite targets, N >= 1."""
    arr = _check_seqs(seqs, spec, "seqs")
    tgt = np.asarray(targets, dtype=np.float64).reshape(-1)
    if len(tgt) != len(arr):
        raise ValueError(f"seqs has {len(arr)} rows but targets has {len(tgt)}")
    if not np.isfinite(tgt).all():
        raise ValueError("targets contain NaN or inf")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if len(arr) == 0:
        raise ValueError("fit needs at least one sequence")
    return arr, tgt


def _inference_batch(batch_size: int | None, device: torch.device) -> int:
    if batch_size is None:
        return GPU_INFERENCE_BATCH if device.type == "cuda" else CPU_INFERENCE_BATCH
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _coerce_config(config: ControllerConfig | dict | None) -> ControllerConfig:
    if config is None:
        return ControllerConfig()
    if isinstance(config, dict):
        return ControllerConfig.from_dict(config)
    if not isinstance(config, ControllerConfig):
        raise TypeError(f"config must be a ControllerConfig or dict, got {type(config).__name__}")
    return config


def _load_weights(module: torch.nn.Module, weights: dict[str, np.ndarray], *, strict_extra: bool) -> None:
    """Copy numpy ``weights`` into ``module``'s parameters in place (names and shapes must match)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or (strict_extra and extra):
        raise ValueError(f"weights do not match the controller: missing {missing[:5]}, unexpected {extra[:5]}")
    with torch.no_grad():
        for name, tensor in own.items():
            value = np.asarray(weights[name])
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"weight {name!r} has shape {value.shape}, expected {tuple(tensor.shape)}")
            # weights from Ray's object store are read-only views: copy_ reads them, but from_numpy warns on them
            if not value.flags.writeable or not value.flags.c_contiguous:
                value = np.array(value, copy=True)
            tensor.copy_(torch.from_numpy(value).to(tensor.dtype))


def _use_fast(config: ControllerConfig, device: torch.device) -> bool:
    """Table-driven inference LSTMs pay off on CPU; on CUDA, cuDNN's fused LSTM is faster than a stepped loop."""
    return config.fast_inference and device.type == "cpu"


def _predict(encoder_predictor: torch.nn.Module, seqs: np.ndarray, device: torch.device, batch: int,
             fast: bool) -> np.ndarray:
    """Chunked eval-mode prediction -> float64 ``[N]``."""
    encoder_predictor.eval()
    out = np.empty(len(seqs), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(seqs), batch):
            chunk = torch.from_numpy(seqs[start:start + batch]).to(device)
            pred = predict_tokens(encoder_predictor.encoder, encoder_predictor.predictor, chunk, fast)
            out[start:start + len(chunk)] = pred.double().cpu().numpy()
    return out


def predict_with_weights(space_or_tokenspec: Any, config: ControllerConfig | dict, weights: dict[str, np.ndarray],
                         seqs: np.ndarray, batch_size: int | None = None, *, device: str | None = None) -> np.ndarray:
    """Stateless prediction: build encoder + predictor, load ``weights`` (from ``get_weights``), predict ``seqs``.

    Meant for remote pseudo-labelling tasks: it needs no controller object, only picklable numpy inputs.
    Returns float64 ``[N]``, equal to ``NAOController.predict`` with the same weights.
    """
    cfg = _coerce_config(config)
    spec = token_spec_of(space_or_tokenspec)
    dev = _default_device(device)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    arr = _check_seqs(seqs, spec, "seqs")
    module = EncoderPredictor(spec.vocab_size, cfg)
    _load_weights(module, weights, strict_extra=False)  # the decoder's weights may come along; they are unused
    module.to(dev)
    return _predict(module, arr, dev, _inference_batch(batch_size, dev), _use_fast(cfg, dev))


# ---------------------------------------------------------------------------------------------------------------
# the controller
# ---------------------------------------------------------------------------------------------------------------
class NAOController:
    """The NAO encoder-predictor-decoder with its training loop, predictor, reconstruction and generation.

    ``space`` is anything ``token_spec_of`` accepts (normally a ``SearchSpace``). ``seed`` fixes the initial weights,
    the dropout masks and the batch order; the controller owns its RNGs and never touches PyTorch's global RNG state.
    """

    def __init__(self, space: Any, config: ControllerConfig | dict | None = None, *, seed: int = 0,
                 device: str | None = None) -> None:
        self.config = _coerce_config(config)
        self.spec = token_spec_of(space)
        self.device = _default_device(device)
        self.seed = int(seed)
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        # Initial weights from a private seed, built on CPU so the init is the same on every device.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model = EPD(self.spec.vocab_size, self.config)
        self.model.to(self.device)
        self._flatten()
        self._mask = torch.from_numpy(self.spec.mask()).to(self.device)
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(self.seed + 1)
        self._np_rng = np.random.default_rng([self.seed, 2])
        self.n_fit_calls = 0
        self.total_steps = 0

    # -- weights and state ---------------------------------------------------------------------------------------
    def _flatten(self) -> None:
        if self.device.type == "cuda":
            self.model.encoder.rnn.flatten_parameters()
            self.model.decoder.rnn.flatten_parameters()

    def get_weights(self) -> dict[str, np.ndarray]:
        """CPU numpy copies of all weights (for Ray's object store and ``predict_with_weights``)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights from ``get_weights`` (names and shapes must match exactly)."""
        _load_weights(self.model, weights, strict_extra=True)
        self._flatten()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically: weights, config, token spec, RNG states, counters.

        Plain Python + numpy only (no pickled torch objects), so it can be stored as npz/JSON by the caller.
        """
        return {
            "format": STATE_FORMAT,
            "config": self.config.to_dict(),
            "vocab_size": self.spec.vocab_size,
            "seq_len": self.spec.seq_len,
            "token_mask": self.spec.mask().copy(),
            "seed": self.seed,
            "weights": self.get_weights(),
            "torch_rng_device": self.device.type,
            "torch_rng": self._gen.get_state().numpy().copy(),
            "numpy_rng": copy.deepcopy(self._np_rng.bit_generator.state),
            "n_fit_calls": self.n_fit_calls,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``. The config and token spec must match this controller's (else ``ValueError``)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a controller state (format {state.get('format')!r}, expected {STATE_FORMAT!r})")
        saved_cfg = ControllerConfig.from_dict(state["config"])
        if saved_cfg != self.config:
            diff = {k: (v, getattr(self.config, k)) for k, v in saved_cfg.to_dict().items()
                    if getattr(self.config, k) != v}
            raise ValueError(f"saved controller config differs (saved, current): {diff}; "
                             "use NAOController.from_state_dict to rebuild with the saved config")
        if (state["vocab_size"], state["seq_len"]) != (self.spec.vocab_size, self.spec.seq_len):
            raise ValueError(f"saved controller is for vocab/len {(state['vocab_size'], state['seq_len'])}, "
                             f"this one for {(self.spec.vocab_size, self.spec.seq_len)}")
        self.set_weights(state["weights"])
        self.seed = int(state["seed"])
        if state["torch_rng_device"] == self.device.type:
            self._gen.set_state(torch.from_numpy(np.asarray(state["torch_rng"], dtype=np.uint8).copy()))
        else:
            # RNG states are device-specific; continue with a fresh deterministic stream instead.
            log.warning("controller state saved on %s, restored on %s: dropout RNG reseeded",
                        state["torch_rng_device"], self.device.type)
            self._gen.manual_seed(self.seed + 1 + 1000003 * int(state["n_fit_calls"]))
        self._np_rng = np.random.default_rng()
        self._np_rng.bit_generator.state = copy.deepcopy(state["numpy_rng"])
        self.n_fit_calls = int(state["n_fit_calls"])
        self.total_steps = int(state["total_steps"])

    @classmethod
    def from_state_dict(cls, space: Any, state: dict[str, Any], *, device: str | None = None) -> NAOController:
        """A controller rebuilt from ``state_dict`` with the saved config and seed."""
        ctl = cls(space, ControllerConfig.from_dict(state["config"]), seed=int(state["seed"]), device=device)
        ctl.load_state_dict(state)
        return ctl

    # -- training ------------------------------------------------------------------------------------------------
    def _losses(self, x: torch.Tensor, dec_in: torch.Tensor, y: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pred, log_probs = self.model(x, dec_in, self._gen)
        mse = F.mse_loss(pred, y)
        nll = F.nll_loss(log_probs.reshape(-1, self.spec.vocab_size), x.reshape(-1))
        loss = self.config.trade_off * mse + (1.0 - self.config.trade_off) * nll
        return loss, mse, nll

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = list(self.model.parameters())
        kwargs: dict[str, Any] = {"lr": self.config.effective_lr, "weight_decay": self.config.weight_decay}
        if self.config.foreach_optimizer and self.device.type == "cuda":
            kwargs["fused"] = True  # one kernel for the whole update on a GPU
        else:
            kwargs["foreach"] = self.config.foreach_optimizer
        return torch.optim.Adam(params, **kwargs)

    @torch.no_grad()
    def _eval_losses(self, x: torch.Tensor, dec_in: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
        """Held-out (eval mode) loss, MSE and NLL, sample-weighted over chunks."""
        self.model.eval()
        totals = torch.zeros(3, device=self.device)
        batch = max(self.config.batch_size, _inference_batch(None, self.device))
        for start in range(0, len(x), batch):
            sl = slice(start, start + batch)
            loss, mse, nll = self._losses(x[sl], dec_in[sl], y[sl])
            totals += torch.stack([loss, mse, nll]) * (min(start + batch, len(x)) - start)
        self.model.train()
        loss, mse, nll = (totals / len(x)).tolist()
        return loss, mse, nll

    def _split_for_early_stopping(self, seqs: np.ndarray, es: EarlyStopping) -> tuple[np.ndarray, np.ndarray]:
        """Train / held-out row indices, split by unique sequence."""
        _, inverse = np.unique(seqs, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        n_unique = int(inverse.max()) + 1
        n_valid = int(round(es.valid_fraction * n_unique))
        if n_valid < 1 or n_valid >= n_unique:
            raise ValueError(
                f"early stopping needs at least one unique sequence on each side: {n_unique} unique sequences, "
                f"valid_fraction={es.valid_fraction}"
            )
        held = np.random.default_rng(es.seed).permutation(n_unique)[:n_valid]
        is_valid = np.isin(inverse, held)
        return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)

    def _fit_tensors(self, arr: np.ndarray, tgt: np.ndarray, early_stopping: EarlyStopping | None
                     ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                                tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]:
        """(inputs, decoder inputs, targets) on the device for training, and for the held-out split (or None)."""
        dev = self.device
        x_all = torch.from_numpy(arr).to(dev)
        y_all = torch.from_numpy(tgt.astype(np.float32)).to(dev)
        # decoder input (teacher forcing) = [SOS] + seq[:-1], built once per fit
        dec_all = torch.cat([torch.zeros_like(x_all[:, :1]), x_all[:, :-1]], dim=1)
        valid = None
        if early_stopping is not None:
            tr_idx, va_idx = self._split_for_early_stopping(arr, early_stopping)
            tr = torch.from_numpy(tr_idx).to(dev)
            va = torch.from_numpy(va_idx).to(dev)
            valid = (x_all[va], dec_all[va], y_all[va])
            x_all, dec_all, y_all = x_all[tr], dec_all[tr], y_all[tr]
        return (x_all, dec_all, y_all), valid

    def _train_epoch(self, train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                     optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> tuple[torch.Tensor, int]:
        """One pass in a fresh random order (from the controller's numpy RNG); returns the per-sample mean
        [loss, mse, nll] (kept on the device) and the number of optimiser steps."""
        x_all, dec_all, y_all = train
        n, bs = len(x_all), self.config.batch_size
        perm = torch.from_numpy(self._np_rng.permutation(n)).to(self.device)
        totals = torch.zeros(3, device=self.device)
        steps = 0
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            loss, mse, nll = self._losses(x_all[idx], dec_all[idx], y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip, foreach=self.config.foreach_optimizer)
            optimizer.step()
            totals += torch.stack([loss.detach(), mse.detach(), nll.detach()]) * len(idx)
            steps += 1
        return totals / n, steps

    def fit(self, seqs: np.ndarray, targets: np.ndarray, *, epochs: int, early_stopping: EarlyStopping | None = None,
            progress: bool = False) -> FitResult:
        """Train for ``epochs`` epochs on ``(seqs, targets)`` with a new Adam optimiser, from the current weights.

        ``seqs`` int ``[N, seq_len]``, ``targets`` float ``[N]`` (already normalised by the caller). With
        ``early_stopping`` a held-out split is monitored every epoch and the best weights are restored at the end.
        """
        t0 = time.perf_counter()
        arr, tgt = _check_fit_inputs(seqs, targets, epochs, self.spec)
        self.n_fit_calls += 1
        train, valid = self._fit_tensors(arr, tgt, early_stopping)
        n = len(train[0])
        optimizer = self._make_optimizer()
        params = [p for p in self.model.parameters()]
        self.model.train()

        epoch_stats: list[torch.Tensor] = []  # per-epoch [loss, mse, nll] means, kept on the device
        history: list[dict[str, float]] = []
        best_valid, best_epoch, best_weights, wait = None, None, None, 0
        stopped_early = False
        steps = 0
        bar = tqdm(total=epochs, desc="controller fit", unit="epoch") if progress else None
        for epoch in range(1, epochs + 1):
            means, epoch_steps = self._train_epoch(train, optimizer, params)
            steps += epoch_steps
            epoch_stats.append(means)
            if valid is not None or bar is not None:
                row = dict(zip(("loss", "mse", "nll"), epoch_stats[-1].tolist()))
                if valid is not None:
                    v_loss, v_mse, v_nll = self._eval_losses(*valid)
                    row.update(valid_loss=v_loss, valid_mse=v_mse, valid_nll=v_nll)
                    score = v_loss if early_stopping.metric == "loss" else v_mse
                    if best_valid is None or score < best_valid - early_stopping.min_delta:
                        best_valid, best_epoch, wait = score, epoch, 0
                        best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                    else:
                        wait += 1
                history.append({"epoch": epoch, **row})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", mse=f"{row['mse']:.4f}", nll=f"{row['nll']:.4f}")
                if valid is not None and wait >= early_stopping.patience:
                    stopped_early = True
                    break
        if bar is not None:
            bar.close()
        if not history and epoch_stats:  # one host sync for the whole fit
            values = torch.stack(epoch_stats).cpu().tolist()
            history = [{"epoch": i + 1, "loss": v[0], "mse": v[1], "nll": v[2]} for i, v in enumerate(values)]
        if best_weights is not None:
            self.model.load_state_dict(best_weights)
            self._flatten()
        self.total_steps += steps
        last = history[-1] if history else {"loss": float("nan"), "mse": float("nan"), "nll": float("nan")}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return FitResult(
            epochs_run=len(history), steps=steps, seconds=time.perf_counter() - t0, final_loss=last["loss"],
            final_mse=last["mse"], final_nll=last["nll"], history=history, stopped_early=stopped_early,
            best_valid=best_valid, best_epoch=best_epoch, n_train=n,
        )

    # -- inference -----------------------------------------------------------------------------------------------
    def predict(self, seqs: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Predicted scores (eval mode, encoder + predictor only), float64 ``[N]``.

        ``batch_size`` = rows per forward pass; ``None`` picks 1024 on CPU (cache-friendly) and 16384 on CUDA.
        """
        arr = _check_seqs(seqs, self.spec, "seqs")
        return _predict(self.model, arr, self.device, _inference_batch(batch_size, self.device),
                        _use_fast(self.config, self.device))

    def _encode_eval(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.model.encoder
        return enc.forward_fast(tokens) if _use_fast(self.config, self.device) else enc(tokens)

    def reconstruct(self, seqs: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Encode then constrained greedy decode (eval mode) -> int64 ``[N, seq_len]``."""
        arr = _check_seqs(seqs, self.spec, "seqs")
        self.model.eval()
        batch = _inference_batch(batch_size, self.device)
        out = np.empty_like(arr)
        with torch.inference_mode():
            for start in range(0, len(arr), batch):
                tokens = torch.from_numpy(arr[start:start + batch]).to(self.device)
                outputs, arch_emb = self._encode_eval(tokens)
                out[start:start + len(tokens)] = self.model.decoder.greedy(arch_emb, outputs, self._mask).cpu().numpy()
        return out

    def generate(self, seeds: np.ndarray, *, n_new: int, accept: Callable[[np.ndarray], bool],
                 step_size_start: float = 1.0, step_size_increment: float = 1.0,
                 max_step_size: float = 100.0) -> GenerateResult:
        """Gradient-ascent generation from ``seeds`` (``seminas_spec.md`` §2 "Generation step").

        ``g = d(sum of predictions)/d(per-token encoder outputs)`` is computed once (eval mode, so it does not
        depend on the step size). For step size ``eta = start, start + inc, ...`` while ``eta <= max_step_size``:
        new outputs = normalise(outputs + eta * g) per token, embedding = normalise(mean), greedy constrained decode
        of every seed; ``accept(seq)`` is called on each decoded sequence in seed order (the caller decides validity
        and novelty and records what it takes); stops as soon as ``n_new`` were accepted. Several step sizes are
        decoded per batched pass (``config.generate_eta_batch``); that changes only the speed.

        Note: the authors' loop also tries ``max_step_size + 1`` before stopping; pass a larger ``max_step_size``
        to reproduce that exactly.
        """
        t0 = time.perf_counter()
        arr = _check_seqs(seeds, self.spec, "seeds")
        if step_size_increment <= 0:
            raise ValueError(f"step_size_increment must be > 0, got {step_size_increment}")
        result = GenerateResult(seqs=[], step_sizes_tried=[], n_decoded=0, n_accepted=0, seconds=0.0)
        if n_new <= 0 or len(arr) == 0:
            result.seconds = time.perf_counter() - t0
            return result
        # step sizes computed by multiplication so 0.1-steps do not drift
        n_steps = int(np.floor((max_step_size - step_size_start) / step_size_increment + 1e-9)) + 1
        etas = [step_size_start + k * step_size_increment for k in range(max(n_steps, 0))]

        self.model.eval()
        tokens = torch.from_numpy(arr).to(self.device)
        with torch.no_grad():
            outputs, _ = self._encode_eval(tokens)
        leaf = outputs.detach().requires_grad_(True)
        with torch.enable_grad():
            pred = self.model.predictor(pool(leaf))
            (grad,) = torch.autograd.grad(pred.sum(), leaf)
        n_seeds = len(arr)
        chunk = self.config.generate_eta_batch
        done = False
        with torch.inference_mode():
            for c0 in range(0, len(etas), chunk):
                eta_chunk = etas[c0:c0 + chunk]
                eta_t = torch.tensor(eta_chunk, dtype=outputs.dtype, device=self.device).view(-1, 1, 1, 1)
                new_outputs = F.normalize(outputs.unsqueeze(0) + eta_t * grad.unsqueeze(0), 2, dim=-1)
                new_outputs = new_outputs.reshape(-1, *outputs.shape[1:])  # [E*B, L, H], eta-major
                decoded = self.model.decoder.greedy(pool(new_outputs), new_outputs, self._mask).cpu().numpy()
                for e, eta in enumerate(eta_chunk):
                    result.step_sizes_tried.append(float(eta))
                    for b in range(n_seeds):
                        seq = decoded[e * n_seeds + b].copy()
                        result.n_decoded += 1
                        if accept(seq):
                            result.seqs.append(seq)
                            result.seed_indices.append(b)
                            result.step_sizes.append(float(eta))
                            if len(result.seqs) >= n_new:
                                done = True
                                break
                    if done:
                        break
                if done:
                    break
        result.n_accepted = len(result.seqs)
        result.seconds = time.perf_counter() - t0
        return result
