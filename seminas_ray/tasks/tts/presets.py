"""Presets of the TTS task (``experiments/run.py --task tts --preset NAME``): data size, supernet schedule, SemiNAS
settings and final-evaluation budget in one place.

- ``smoke``: a CI check of the whole pipeline in well under 3 minutes on 2 CPU cores (120-utterance corpus, a
  32-wide model, 10 architectures, a few dozen training steps, 2+2 sentences through the recogniser). Its numbers
  mean nothing.
- ``default``: what ``python experiments/run.py --task tts`` does on a 2-core CPU box in well under 45 minutes
  (docs/tts.md "Measured"): the 1,200-utterance eSpeak corpus (1,000 / 100 / 100), the duration-based
  ``fastspeech`` backbone, a 64-wide supernet on 2 data-parallel CPU replicas, SemiNAS with N=16 seeds, M=4,000
  pseudo-labels and 2 rounds of 8 (32 architectures scored), then the best architecture and the Transformer-TTS
  baseline (all layers SA4) trained from scratch for 1,400 steps at width 128 and compared on all 100 test
  sentences (intelligibility, PocketSphinx) and all 100 hard sentences (robustness).
- ``paper``: the paper's numbers for a GPU cluster and its autoregressive ``transformer-tts`` backbone: N=100,
  M=4,000, 100 new per round, 3 rounds, supernet width 64 and final width 256, the paper's loss (no guided
  attention) and learning-rate schedule, 31,250 frames per batch, supernet epochs x pool size per round,
  free-running DFR on the validation set, 80k final updates, all 100 test and 100 hard sentences. Use it with
  ``--data`` pointing at LJSpeech-1.1.

``--backbone`` swaps the model family of any preset; each preset names its model sizes per backbone (``models``).

Every preset keeps the SemiNAS TTS controller of the paper (spec §5): hidden 16, MLP 64, sigmoid output with min-max
targets, the ImageNet/TTS encoder's sqrt(0.5) residual scaling, step size eta starting at 0.1 and growing by 0.1,
and the top-K seeds in *descending* order of score (the authors' TTS code sorted ascending and so started from the
worst architectures; we do not copy that bug).
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from seminas_ray.algorithm.config import merge_settings

#: SemiNAS settings of the paper's TTS search (spec §5); presets scale N, M, the round size and the round count.
PAPER_SEMINAS: dict[str, Any] = {
    "n_seed": 100, "n_unlabelled": 4000, "n_per_round": 100, "n_rounds": 3, "top_k": 100,
    "up_sample": 1,  # the ImageNet/TTS code has no labelled up-sampling
    "pretrain_epochs": 10_000, "train_epochs": 1000, "target_norm": "minmax",
    "step_size_start": 0.1, "step_size_increment": 0.1, "max_step_size": 10.0,
    "controller": {"hidden_size": 16, "mlp_hidden_size": 64, "output_activation": "sigmoid", "residual_scale": True,
                   "weight_decay": 1e-4, "lr": 1e-3},
}


@dataclass(frozen=True)
class TTSPreset:
    """Everything a TTS run depends on besides the data path, the setting and the seed."""

    name: str
    description: str
    # -- data --
    corpus_size: int                     # utterances of the embedded eSpeak corpus (ignored with --data)
    n_valid_score: int | None = None     # validation utterances for scoring (None: all of the split's)
    # -- models --
    backbone: str = "fastspeech"         # the preset's backbone (``--backbone`` picks the other one)
    #: per backbone, the seminas_ray.tasks.tts.model.PRESETS names of (the supernet, the final models)
    models: dict[str, tuple[str, str]] = field(default_factory=lambda: {
        "fastspeech": ("fs_search", "fs_final"), "transformer-tts": ("default", "final_cpu")})
    # -- search --
    search_overrides: dict[str, Any] = field(default_factory=dict)  # TTSModelConfig fields changed for the search
    batch_size: int | None = 16          # global batch (all replicas together)
    max_frames: int | None = None        # padded frames per global batch (the paper's max tokens)
    steps_per_arch: int = 30             # supernet steps per round = steps_per_arch x pool size ...
    epochs_per_arch: float | None = None  # ... or, if set, epochs_per_arch passes over the data x pool size
    min_round_steps: int = 50
    max_round_steps: int = 100_000
    first_round_steps: int = 0           # extra warm-up steps for the fresh supernet in the seed round
    score_mode: str = "teacher_forced"   # DFR teacher-forced (CPU) or free-running (the paper; GPU)
    supernet_actors: int | None = None   # None: one per GPU, or 2 CPU replicas
    seminas: dict[str, Any] = field(default_factory=dict)  # overrides of PAPER_SEMINAS
    # -- final evaluation --
    final_overrides: dict[str, Any] = field(default_factory=dict)
    final_steps: int = 1500
    final_batch_size: int | None = 16
    final_max_frames: int | None = None
    n_eval_test: int | None = 40         # test sentences synthesised and recognised (None: all)
    n_eval_hard: int | None = 40         # hard sentences (None: all)
    max_len_ratio: float = 2.0           # free-running cap: this x the ground-truth length
    gl_iters: int = 32
    n_wav_samples: int = 3               # test sentences written as .wav per system
    eval_batch_size: int = 8             # utterances synthesised together

    def model_names(self, backbone: str | None = None) -> tuple[str, str]:
        """(supernet, final) model preset names for ``backbone`` (None: the preset's own)."""
        backbone = backbone or self.backbone
        if backbone not in self.models:
            raise ValueError(f"preset {self.name!r} has no models for backbone {backbone!r} "
                             f"(it has: {', '.join(self.models)})")
        return self.models[backbone]

    def seminas_dict(self) -> dict[str, Any]:
        """The SemiNAS settings: the paper's TTS values with this preset's overrides (nested merge)."""
        return merge_settings(PAPER_SEMINAS, self.seminas)

    def with_overrides(self, **changes: Any) -> "TTSPreset":
        return replace(self, **changes)


PRESETS: dict[str, TTSPreset] = {
    "smoke": TTSPreset(
        name="smoke", description="CI check of the whole pipeline (< 3 min on 2 cores); numbers are meaningless",
        corpus_size=120, models={"fastspeech": ("fs_smoke", "fs_smoke"), "transformer-tts": ("smoke", "smoke")},
        batch_size=8, steps_per_arch=4, min_round_steps=20,
        seminas={"n_seed": 6, "n_unlabelled": 200, "n_per_round": 4, "n_rounds": 1, "top_k": 10,
                 "pretrain_epochs": 100, "train_epochs": 30, "patience": 10},
        final_steps=40, final_batch_size=8, n_eval_test=2, n_eval_hard=2, max_len_ratio=1.2,
        gl_iters=16, n_wav_samples=1, eval_batch_size=2),
    "default": TTSPreset(
        name="default", description="2-core CPU run (< 45 min): fastspeech, N=16, M=4000, 2 rounds of 8, 1,400 final steps",
        corpus_size=1200, batch_size=16, steps_per_arch=25, min_round_steps=100,
        first_round_steps=200,
        seminas={"n_seed": 16, "n_unlabelled": 4000, "n_per_round": 8, "n_rounds": 2, "top_k": 100},
        final_steps=1400, final_batch_size=16, n_eval_test=None, n_eval_hard=None,
        max_len_ratio=1.5, gl_iters=32, n_wav_samples=3, eval_batch_size=8),
    "paper": TTSPreset(
        name="paper", description="the paper's settings for a GPU cluster (use --data LJSpeech-1.1)",
        corpus_size=1700, backbone="transformer-tts",
        models={"transformer-tts": ("paper_search", "paper_final"), "fastspeech": ("fs_paper_search", "fs_paper_final")},
        batch_size=None, max_frames=31_250, epochs_per_arch=10.0,
        min_round_steps=1, score_mode="free_running", seminas={},
        final_steps=80_000, final_batch_size=None, final_max_frames=31_250,
        n_eval_test=None, n_eval_hard=None, max_len_ratio=2.0, gl_iters=60, n_wav_samples=5, eval_batch_size=16),
}
#: The robustness setting trains the supernet for 1 epoch x pool size per round in the paper (10 in low-resource).
PAPER_ROBUSTNESS_EPOCHS_PER_ARCH = 1.0
DEFAULT_PRESET = "default"


def get_preset(name: str | None) -> TTSPreset:
    """The preset called ``name`` (``None``: ``default``); ``ValueError`` naming the choices otherwise."""
    name = DEFAULT_PRESET if name is None else name
    if name not in PRESETS:
        raise ValueError(f"unknown TTS preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["DEFAULT_PRESET", "PAPER_ROBUSTNESS_EPOCHS_PER_ARCH", "PAPER_SEMINAS", "PRESETS", "TTSPreset",
           "get_preset"]
