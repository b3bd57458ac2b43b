"""The duration-based (fastspeech) backbone: eSpeak's phoneme alignment, the phoneme front end, the model, its
loss and synthesis, and its supernet backend. Real eSpeak, real torch training at small size."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seminas_ray.spaces.tts import TRANSFORMER_TTS_ARCH
from seminas_ray.spaces.tts import TTSSpace
from seminas_ray.tasks.tts import corpus
from seminas_ray.tasks.tts import phonemes
from seminas_ray.tasks.tts.audio import HOP_LENGTH
from seminas_ray.tasks.tts.audio import num_frames
from seminas_ray.tasks.tts.backbones import BACKBONES
from seminas_ray.tasks.tts.duration_model import DurationChild
from seminas_ray.tasks.tts.duration_model import DurationSupernet
from seminas_ray.tasks.tts.duration_model import predicted_durations
from seminas_ray.tasks.tts.duration_model import regulate_length
from seminas_ray.tasks.tts.duration_training import collate_aligned
from seminas_ray.tasks.tts.duration_training import duration_batches
from seminas_ray.tasks.tts.duration_training import duration_path_losses
from seminas_ray.tasks.tts.duration_training import score_duration_archs
from seminas_ray.tasks.tts.duration_training import synthesize_aligned
from seminas_ray.tasks.tts.model import child_state_dict
from seminas_ray.tasks.tts.model import preset
from seminas_ray.tasks.tts.packing import pack_items
from seminas_ray.tasks.tts.packing import unpack_items
from seminas_ray.tasks.tts.training import make_optimizer
from seminas_ray.tasks.tts.training import make_scheduler
from seminas_ray.tasks.tts.training import train_steps

CFG = preset("fs_smoke", vocab_size=phonemes.vocab_size)
ARCH = TTSSpace.coerce("2 9 11 1 8 3 | 10 4 2 11 9 1")


@pytest.fixture(scope="module")
def spoken() -> tuple[np.ndarray, corpus.Alignment]:
    return corpus.ESpeak().synthesize_aligned("A thin pillar of smoke betrayed their campsite.", 170, 50, 0)


def test_espeak_reports_the_phonemes_it_speaks_with_their_start_samples(spoken):
    samples, align = spoken
    assert align.phonemes[0] == "_:" or align.starts[0] == 0
    assert len(align.phonemes) == len(align.starts) > 20
    assert list(align.starts) == sorted(align.starts) and align.starts[-1] <= samples.size
    # the stressed vowel of "smoke" and the consonants around it, as eSpeak spells them
    assert ["s", "m", "'oU", "k"] == [p for p in align.phonemes if p in ("s", "m", "'oU", "k")][:4]
    frames = int(num_frames(samples.size))
    durations = align.durations(frames, HOP_LENGTH)
    assert durations.sum() == frames and (durations >= 0).all() and len(durations) == len(align.phonemes)


def test_alignment_durations_follow_the_frame_centres():
    align = corpus.Alignment(("a", "b", "c"), (0, 300, 1000))
    # frame k is centred at sample 256 k: frames 0-1 start before 300, frames 2-3 before 1000, 4-5 after
    assert list(align.durations(6, 256)) == [2, 2, 2]
    assert list(corpus.Alignment(("a", "b"), (0, 5000)).durations(3, 256)) == [3, 0]


def test_phoneme_front_end_splits_stress_and_maps_unknowns():
    ids, stress = phonemes.encode(["'oU", ",E", "n", "no-such-phoneme"])
    assert list(stress) == [1, 2, 0, 0] and ids[-1] == 1 and all(i >= 2 for i in ids[:3])
    assert phonemes.decode(ids[:3], stress[:3]) == ["'oU", ",E", "n"]
    with pytest.raises(ValueError, match="empty"):
        phonemes.encode([])


def test_corpus_writes_and_reads_the_alignment(tmp_path):
    built = corpus.build_corpus(3, seed=0, root=tmp_path, progress=False)
    align = corpus.read_alignments(built)
    assert set(align) == set(built.ids)
    for utt in built:
        a = align[utt.id]
        assert a.starts[0] == 0 and a.starts[-1] <= utt.num_samples
        assert a.durations(int(num_frames(utt.num_samples)), HOP_LENGTH).sum() == num_frames(utt.num_samples)
    path = built.root / corpus.PHONEMES_FILE
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["starts"] = bad["starts"][::-1]
    path.write_text("\n".join([lines[0], json.dumps(bad)] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match=r"phonemes.jsonl:2: phonemes and non-decreasing starts"):
        corpus.read_alignments(built)
    path.write_text("not json\n")
    with pytest.raises(ValueError, match=r"phonemes.jsonl:1: not a phoneme record"):
        corpus.read_alignments(built)


def _items(n: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(4, 9))
        durations = rng.integers(0, 5, length)
        durations[0] += 1
        mel = rng.normal(size=(int(durations.sum()), 80)).astype(np.float32)
        out.append((rng.integers(2, phonemes.vocab_size, length), mel, rng.integers(0, 3, length), durations,
                    rng.normal(size=3).astype(np.float32)))
    return out


def test_length_regulator_repeats_each_phoneme_for_its_duration():
    x = torch.arange(6, dtype=torch.float32).view(1, 3, 2)
    frames, lens = regulate_length(x, torch.tensor([[2, 0, 1]]))
    assert lens.tolist() == [3] and frames[0, :, 0].tolist() == [0.0, 0.0, 4.0]
    padding = torch.tensor([[False, False, True]])
    assert predicted_durations(torch.log1p(torch.tensor([[2.0, 3.0, 9.0]])), padding).tolist() == [[2, 3, 0]]
    assert predicted_durations(torch.full((1, 3), -5.0), padding).tolist() == [[1, 1, 0]]  # never silent


def test_collate_and_pack_keep_aligned_items():
    items = _items(5)
    batch = collate_aligned(items)
    assert batch["phonemes"].shape == batch["durations"].shape == batch["stress"].shape
    assert batch["durations"].sum(1).tolist() == batch["mel_lens"].tolist()
    back = unpack_items(pack_items(items))
    for a, b in zip(items, back):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[3], b[3]) and np.allclose(a[4], b[4])
        assert np.allclose(a[1], b[1], atol=1e-2)
    broken = list(items[0])
    broken[3] = broken[3] + 1
    with pytest.raises(ValueError, match="durations summing"):
        collate_aligned([tuple(broken)])


def test_child_and_supernet_share_parameter_names_and_train():
    torch.manual_seed(0)
    supernet = DurationSupernet(CFG)
    child = DurationChild(ARCH, CFG)
    child.load_state_dict(child_state_dict(supernet.state_dict(), child))
    batch = collate_aligned(_items(4))
    with torch.no_grad():
        a = duration_path_losses(supernet.eval(), batch, ARCH, CFG)["loss"]
        b = duration_path_losses(child.eval(), batch, None, CFG)["loss"]
    assert torch.allclose(a, b, atol=1e-5)
    names = supernet.path_parameter_names(ARCH)
    assert any(".ops.lstm." in n for n in names) and not any("decoder.0.ops.conv1." in n for n in names)
    optimizer = make_optimizer(child, CFG)
    scheduler = make_scheduler(optimizer, CFG)
    batches = duration_batches(_items(16), batch_size=8)
    first = train_steps(child, batches, 2, optimizer, scheduler, CFG, losses=duration_path_losses)["loss"]
    later = train_steps(child, batches, 60, optimizer, scheduler, CFG, losses=duration_path_losses)["loss"]
    assert later < first


def test_synthesis_uses_predicted_durations_and_scores_rank_paths():
    torch.manual_seed(0)
    supernet = DurationSupernet(CFG)
    batch = collate_aligned(_items(3))
    mels, lengths = synthesize_aligned(supernet, ARCH, batch)
    assert mels.shape[0] == 3 and mels.shape[2] == 80 and all(n >= 1 for n in lengths)
    assert synthesize_aligned(supernet, ARCH, batch, max_frames=2)[1] == [min(n, 2) for n in lengths]
    scores = score_duration_archs(supernet, [ARCH, TRANSFORMER_TTS_ARCH], [batch], CFG)
    assert [set(s) >= {"valid_loss", "valid_mel", "valid_duration"} for s in scores] == [True, True]
    assert scores[0]["valid_loss"] != scores[1]["valid_loss"]
    assert BACKBONES["fastspeech"].mode == "min" and BACKBONES["fastspeech"].better(0.1, 0.2)
