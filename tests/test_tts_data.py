"""The offline TTS data pipeline: text normalisation, LJSpeech layout, eSpeak corpus, mel features, Griffin-Lim, ASR.

Everything runs for real: eSpeak NG (espeakng-loader) synthesises a small corpus into a temporary cache, torch and
torchaudio compute the features, and pocketsphinx transcribes the audio.
"""
from __future__ import annotations

import math
import re
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from seminas_ray.tasks.tts import asr, audio, corpus, ljspeech, text
from seminas_ray.tasks.tts.ljspeech import LJSpeechCorpus, read_wav, write_wav

SR = 22050


# --------------------------------------------------------------------------------------------------- text front end


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I have 3 cats.", "i have three cats."),
        ("It costs $12.50 today.", "it costs twelve dollars and fifty cents today."),
        ("Dr. Smith met Mr. Jones.", "doctor smith met mister jones."),
        ("She lives on Baker St. now.", "she lives on baker street now."),
        ("They visited St. Louis.", "they visited saint louis."),
        ("Growth was 50% in 1999.", "growth was fifty percent in nineteen ninety-nine."),
        ("The 21st and the 3rd.", "the twenty-first and the third."),
        ("Born in 1900, died in 2005, remembered in 2019.",
         "born in nineteen hundred, died in two thousand five, remembered in twenty nineteen."),
        ("In the 1960s, 2,500 people came.", "in the nineteen sixties, two thousand five hundred people came."),
        ("Meet at 3:05 or 4:00.", "meet at three oh five or four o'clock."),
        ("Pi is 3.14.", "pi is three point one four."),
        ("Apples, pears, etc.", "apples, pears, et cetera."),
        ("Hello \u201cworld\u201d \u2014 bye.", 'hello "world" - bye.'),
    ],
)
def test_normalize_examples(raw: str, expected: str) -> None:
    assert text.normalize(raw) == expected


def test_expand_keeps_case_and_number_words() -> None:
    assert text.expand("Mr. Brown paid $1 in 1905.") == "Mister Brown paid one dollar in nineteen oh five."
    assert text.number_to_words(0) == "zero"
    assert text.number_to_words(115) == "one hundred fifteen"
    assert text.number_to_words(1_000_001) == "one million one"
    assert text.ordinal_to_words(12) == "twelfth"
    assert text.ordinal_to_words(40) == "fortieth"
    assert text.year_to_words(1066) == "ten sixty-six"


def test_vocab_round_trip() -> None:
    assert text.SYMBOLS[text.PAD_ID] == text.PAD and text.SYMBOLS[text.EOS_ID] == text.EOS
    assert text.vocab_size == len(text.SYMBOLS) == len(set(text.SYMBOLS))
    sentence = "Dr. Who's 2nd visit (at 10:30) -- really?"
    ids = text.encode(sentence)
    assert ids.dtype == np.int64 and ids[-1] == text.EOS_ID
    assert ids[:-1].min() > text.EOS_ID and ids.max() < text.vocab_size
    assert text.decode(ids) == text.normalize(sentence)
    # padding is ignored and decoding stops at EOS
    assert text.decode(np.concatenate([ids, [text.PAD_ID] * 3])) == text.normalize(sentence)
    assert text.encode("abc", add_eos=False).tolist() == [text.SYMBOL_TO_ID[c] for c in "abc"]
    with pytest.raises(ValueError, match="not in the TTS vocabulary"):
        text.encode("Caps", normalized=True)


# ------------------------------------------------------------------------------------------------- LJSpeech layout


def _write_lj(root: Path, n: int = 3, rate: int = SR, seconds: float = 0.5) -> Path:
    """A tiny LJSpeech-layout folder: ``n`` sine tones with metadata lines."""
    (root / "wavs").mkdir(parents=True)
    lines = []
    for i in range(n):
        t = np.arange(int(seconds * rate)) / rate
        write_wav(root / "wavs" / f"LJ001-{i:04d}.wav", 0.3 * np.sin(2 * np.pi * (220 + 20 * i) * t), rate)
        lines.append(f"LJ001-{i:04d}|Chapter {i + 1}, said Dr. Lee.|Chapter {text.number_to_words(i + 1)}, said Doctor Lee.")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_ljspeech_loader_reads_the_layout(tmp_path: Path) -> None:
    lj = LJSpeechCorpus(_write_lj(tmp_path / "lj"))
    assert len(lj) == 3 and lj.ids == ["LJ001-0000", "LJ001-0001", "LJ001-0002"]
    item = lj.by_id("LJ001-0001")
    assert item.text == "Chapter 2, said Dr. Lee." and item.normalized == "Chapter two, said Doctor Lee."
    assert item.num_samples == int(0.5 * SR) and item.seconds == pytest.approx(0.5)
    wav, rate = read_wav(item.wav_path)
    assert rate == SR and wav.dtype == np.float32 and abs(float(np.abs(wav).max()) - 0.3) < 1e-3
    assert [u.id for u in lj.subset(["LJ001-0002", "LJ001-0000"])] == ["LJ001-0002", "LJ001-0000"]
    assert len(lj[1:]) == 2 and lj.total_seconds() == pytest.approx(1.5)


def test_ljspeech_loader_fills_a_missing_normalized_column(tmp_path: Path) -> None:
    root = _write_lj(tmp_path / "lj", n=1)
    (root / "metadata.csv").write_text("LJ001-0000|Room 101.\n", encoding="utf-8")
    assert LJSpeechCorpus(root)[0].normalized == "Room one hundred one."


def test_ljspeech_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LJSpeechCorpus(tmp_path / "nowhere")

    root = _write_lj(tmp_path / "no_meta")
    (root / "metadata.csv").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.csv is missing"):
        LJSpeechCorpus(root)

    root = _write_lj(tmp_path / "malformed")
    lines = (root / "metadata.csv").read_text().splitlines()
    lines[1] = "LJ001-0001 with no separators"
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"metadata.csv:2: malformed line"):
        LJSpeechCorpus(root)

    root = _write_lj(tmp_path / "no_wav")
    (root / "wavs" / "LJ001-0002.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata.csv:3: wav file .*LJ001-0002.wav"):
        LJSpeechCorpus(root)

    root = _write_lj(tmp_path / "rate")
    write_wav(root / "wavs" / "LJ001-0001.wav", np.zeros(1600), 16000)
    with pytest.raises(ValueError, match=r"LJ001-0001.wav: sample rate 16000 Hz, expected 22050 Hz"):
        LJSpeechCorpus(root)

    root = _write_lj(tmp_path / "dup")
    lines = (root / "metadata.csv").read_text().splitlines()
    (root / "metadata.csv").write_text("\n".join(lines + [lines[0]]) + "\n")
    with pytest.raises(ValueError, match=r"metadata.csv:4: duplicate utterance id"):
        LJSpeechCorpus(root)


def test_low_resource_sizes_and_split(tmp_path: Path) -> None:
    assert ljspeech.low_resource_sizes(13100) == (1500, 100, 100)  # the paper's, on full LJSpeech
    assert ljspeech.low_resource_sizes(1700) == (1500, 100, 100)
    assert ljspeech.low_resource_sizes(1200) == (1000, 100, 100)  # the default synthetic corpus
    assert ljspeech.low_resource_sizes(120) == (100, 10, 10)
    assert ljspeech.low_resource_sizes(8) == (6, 1, 1)
    with pytest.raises(ValueError, match="at least 3"):
        ljspeech.low_resource_sizes(2)

    lj = LJSpeechCorpus(_write_lj(tmp_path / "lj", n=26, seconds=0.05))
    split = ljspeech.low_resource_split(lj, seed=0)
    assert [len(part) for part in split] == [22, 2, 2]
    ids = [set(part.ids) for part in split]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert ljspeech.low_resource_split(lj, seed=0).test.ids == split.test.ids
    assert ljspeech.low_resource_split(lj, seed=1).train.ids != split.train.ids

    robust = ljspeech.robustness_split(lj)
    assert robust.train.ids == lj.ids and len(robust.test) == 100 and robust.valid == robust.test


# ------------------------------------------------------------------------------------------- synthesised corpus


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seminas_cache")


@pytest.fixture(scope="module")
def tiny_corpus(cache_root: Path) -> LJSpeechCorpus:
    """8 eSpeak utterances built through the default cache location (SEMINAS_CACHE_DIR points at a temp folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEMINAS_CACHE_DIR", str(cache_root))
        return corpus.build_corpus(8, seed=0, progress=False)


def test_committed_sentences() -> None:
    sentences = corpus.load_sentences()
    assert len(sentences) == 3000 and len(set(sentences)) == 3000
    assert all(re.fullmatch(r"[A-Za-z ,.'?!;:-]+", s) and 6 <= len(asr.words(s)) <= 24 for s in sentences)
    assert (corpus.SENTENCES_DIR / "LICENSE-WordNet.txt").read_text().count("Princeton University") >= 3


def test_hard_sentences() -> None:
    hard = corpus.load_hard_sentences()
    assert len(hard) == 100 and len({h.id for h in hard}) == 100
    counts = {c: sum(h.category == c for h in hard) for c in {h.category for h in hard}}
    assert counts == {"long": 30, "repeat": 20, "numbers": 25, "short": 15, "rare": 10}
    raw = " ".join(h.text for h in hard if h.category == "numbers")
    assert re.search(r"\d", raw) and "Dr." in raw and "St." in raw and "%" in raw and "$" in raw
    for h in hard:
        normalized = text.normalize(h.text)
        assert normalized and not re.search(r"\d", normalized) and "%" not in normalized
        assert text.decode(text.encode(h.text)) == normalized
    assert max(len(asr.words(h.text)) for h in hard if h.category == "long") >= 25
    assert all(len(asr.words(h.text)) <= 2 for h in hard if h.category == "short")


def test_synthesised_corpus_layout(tiny_corpus: LJSpeechCorpus, cache_root: Path) -> None:
    assert tiny_corpus.root.parent == cache_root / "tts"
    assert len(tiny_corpus) == 8 and tiny_corpus.ids[0] == "ES001-0000"
    assert (tiny_corpus.root / "corpus.json").is_file() and (tiny_corpus.root / "synth_params.csv").is_file()
    sentences = corpus.load_sentences()[:8]
    for item, sentence in zip(tiny_corpus, sentences):
        assert item.text == sentence == item.normalized
        with wave.open(str(item.wav_path), "rb") as handle:
            assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (SR, 1, 2)
        seconds_per_word = item.seconds / len(asr.words(sentence))
        assert 0.5 < item.seconds < 12 and 0.15 < seconds_per_word < 1.0
        wav, _ = read_wav(item.wav_path)
        assert 0.05 < float(np.abs(wav).max()) <= 1.0  # real speech, not silence
    params = corpus.read_synth_params(tiny_corpus)
    assert [p["id"] for p in params] == tiny_corpus.ids
    for p in params:
        assert 150 <= int(p["speed"]) <= 190 and 35 <= int(p["pitch"]) <= 65 and int(p["word_gap"]) in (0, 1, 2)
        assert p["voice"] == "en-us+klatt3"
    assert len({(p["speed"], p["pitch"]) for p in params}) > 1  # jittered
    # a second call is a cache hit on the same folder
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEMINAS_CACHE_DIR", str(cache_root))
        assert corpus.build_corpus(8, seed=0, progress=False).root == tiny_corpus.root


def test_synthesis_is_deterministic_given_the_seed(tiny_corpus: LJSpeechCorpus, tmp_path: Path) -> None:
    again = corpus.build_corpus(8, seed=0, root=tmp_path, workers=1, progress=False)
    assert again.root.name == tiny_corpus.root.name  # same recipe, same cache key
    assert (again.root / "synth_params.csv").read_bytes() == (tiny_corpus.root / "synth_params.csv").read_bytes()
    assert all(a.wav_path.read_bytes() == b.wav_path.read_bytes() for a, b in zip(again, tiny_corpus))
    other = corpus.draw_synth_params(tiny_corpus.ids, seed=1)
    assert other != corpus.draw_synth_params(tiny_corpus.ids, seed=0)


def test_hard_sentence_reference_audio(tmp_path: Path) -> None:
    hard = [h for h in corpus.load_hard_sentences() if h.category in ("numbers", "short")][:3]
    reference = corpus.build_hard_corpus(hard=hard, root=tmp_path, progress=False)
    assert reference.ids == [h.id for h in hard]
    for item, h in zip(reference, hard):
        assert item.text == h.text and item.normalized == h.normalized == text.expand(h.text)
        assert 0.3 < item.seconds < 8


def test_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        corpus.build_corpus(4, seed=3, root=tmp_path, progress=False, on_progress=interrupt)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- features, vocoder


def _slaney_mel_reference(sr: int = SR, n_fft: int = 1024, n_mels: int = 80, fmax: float = 8000.0) -> np.ndarray:
    """librosa.filters.mel's default (Slaney scale, Slaney area normalisation), written out independently."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log_part, mel)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))

    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(fmax), n_mels + 2))
    weights = np.zeros((n_mels, len(fft_freqs)))
    for i in range(n_mels):
        lower = (fft_freqs - edges[i]) / (edges[i + 1] - edges[i])
        upper = (edges[i + 2] - fft_freqs) / (edges[i + 2] - edges[i + 1])
        weights[i] = np.maximum(0, np.minimum(lower, upper)) * 2.0 / (edges[i + 2] - edges[i])
    return weights


def test_mel_basis_matches_librosa_slaney_filters() -> None:
    basis = audio.mel_basis().numpy()
    assert basis.shape == (80, 513)
    np.testing.assert_allclose(basis, _slaney_mel_reference(), atol=1e-6)


def test_wav_to_mel_shapes_values_and_batching(tiny_corpus: LJSpeechCorpus) -> None:
    wavs = [read_wav(u.wav_path)[0] for u in tiny_corpus[:3]]
    single = audio.wav_to_mel(wavs[0])
    assert single.shape == (80, wavs[0].size // 256 + 1) == (80, audio.num_frames(wavs[0].size))
    assert torch.isfinite(single).all() and float(single.min()) >= math.log(1e-5) - 1e-6
    assert float(single.max()) > 0.0  # speech energy well above the floor
    assert -7.5 < float(single.mean()) < -3.5  # near the global statistics
    padded = np.zeros((3, max(w.size for w in wavs)), np.float32)
    for i, w in enumerate(wavs):
        padded[i, : w.size] = w
    batch = audio.wav_to_mel(padded, [w.size for w in wavs])
    assert batch.shape == (3, 80, audio.num_frames(padded.shape[1]))
    for i, w in enumerate(wavs):
        frames = audio.num_frames(w.size)
        torch.testing.assert_close(batch[i, :, :frames], audio.wav_to_mel(w))
        assert bool((batch[i, :, frames:] == math.log(1e-5)).all())
    norm = audio.normalize_mel(single)
    torch.testing.assert_close(audio.denormalize_mel(norm), single)


def test_griffin_lim_round_trip(tiny_corpus: LJSpeechCorpus) -> None:
    item = min(tiny_corpus, key=lambda u: u.num_samples)
    mel = audio.wav_to_mel(read_wav(item.wav_path)[0])
    wav = audio.mel_to_wav(mel, n_iter=16)
    assert wav.ndim == 1 and wav.shape[0] == (mel.shape[1] - 1) * 256
    again = audio.wav_to_mel(wav)
    frames = min(mel.shape[1], again.shape[1])
    a, b = mel[:, :frames].numpy(), again[:, :frames].numpy()
    mask = a > -9.0  # compare where there is energy, after removing any overall gain change
    l1 = float(np.abs(a - b - np.median((a - b)[mask]))[mask].mean())
    assert l1 < 0.3
    torch.testing.assert_close(audio.mel_to_wav(mel, n_iter=2, seed=5), audio.mel_to_wav(mel, n_iter=2, seed=5))
    assert audio.mel_to_wav(mel[None], n_iter=2).shape == (1, wav.shape[0])


def test_precompute_mels_cache(tiny_corpus: LJSpeechCorpus, tmp_path: Path) -> None:
    path = audio.precompute_mels(tiny_corpus, cache_root=tmp_path, progress=False)
    assert path.suffix == ".npz" and audio.precompute_mels(tiny_corpus, cache_root=tmp_path, progress=False) == path
    with np.load(path, allow_pickle=False) as data:  # plain arrays only: loads without pickle
        assert data["mels"].dtype == np.float16 and data["offsets"].dtype == np.int64
    store = audio.load_mels(path)
    assert store.ids == tiny_corpus.ids and -7.5 < store.mean < -3.5 and 2.0 < store.std < 4.5
    for item in tiny_corpus[:2]:
        reference = audio.wav_to_mel(read_wav(item.wav_path)[0]).numpy()
        assert store[item.id].shape == reference.shape == (80, store.frames(item.id))
        np.testing.assert_allclose(store[item.id], reference, atol=0.01)
    with pytest.raises(KeyError, match="not in the mel cache"):
        store["missing"]


# -------------------------------------------------------------------------------------------------------------- ASR


def test_word_error_rate_and_metrics() -> None:
    assert asr.edit_distance("a b c".split(), "a x c d".split()) == 2
    assert asr.words("Dr. Smith's 2nd car-park.") == ["doctor", "smith's", "second", "car", "park"]
    result = asr.word_error_rate(["the cat sat", "a dog"], ["the cat sat", "the dog ran"])
    assert result.errors == [0, 2] and result.ref_words == [3, 2] and result.wer == pytest.approx(2 / 5)
    assert result.per_sentence == [0.0, 1.0]
    score = asr.intelligibility(["one two three four"], ["one two three"], ["one two three four"])
    assert score.accuracy == pytest.approx(0.75) and score.gt_accuracy == 1.0 and score.relative == pytest.approx(0.75)
    robust = asr.robustness_errors(
        ["a b c d e", "a b c d e", "a b c d e", "a b c d e"],
        stop_fired=[True, False, True, True],
        frames=[100, 100, 200, 100],
        gt_frames=[100, 100, 100, 100],
        hyps=["a b c d e", "a b c d e", "a b c d e", "x y z"],
        gt_hyps=["a b c d e", "a b c d e", "a b c d e", "a b c d"],
        attention_failed=[False, False, False, False],
    )
    assert robust.errors == [False, True, True, True] and robust.error_rate == 0.75
    assert robust.reasons == [[], ["no_stop"], ["length"], ["asr"]]
    with pytest.raises(ValueError, match="at least one criterion"):
        asr.robustness_errors(["a"])


def test_asr_on_synthesised_speech(tiny_corpus: LJSpeechCorpus) -> None:
    items = sorted(tiny_corpus, key=lambda u: u.num_samples)[:2]  # the two shortest: decoding costs ~1-4 s each
    refs = [u.normalized for u in items]
    gt_hyps = asr.transcribe([u.wav_path for u in items])
    gt = asr.word_error_rate(refs, gt_hyps)
    assert gt.wer < 0.75  # clean klatt3 speech: the recogniser gets most words (about 27-39 % WER on 30+ sentences)
    vocoded = [audio.mel_to_wav(audio.wav_to_mel(read_wav(u.wav_path)[0]), n_iter=16).numpy() for u in items]
    hyps = asr.transcribe(vocoded)
    score = asr.intelligibility(refs, hyps, gt_hyps)
    assert math.isfinite(score.wer.wer) and 0.0 <= score.wer.wer <= 1.5
    assert asr.transcribe([items[0].wav_path]) == gt_hyps[:1]  # fresh decoder + seeded noise: reproducible
    samples = asr.prepare_audio(read_wav(items[0].wav_path)[0])
    assert samples.dtype == np.int16 and abs(samples.size - round(items[0].num_samples * 16000 / SR)) <= 1
    assert abs(int(np.abs(samples).max()) - 0.5 * 32767) < 200
