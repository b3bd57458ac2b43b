"""Where the NAO controller's time goes, and how much each optimisation buys.

Measures, on real NAS-Bench-101 sequences (the 20k subset; ``SEMINAS_DATA_DIR``):

- ``fit``: training throughput (steps/s, architectures/s) of
  * ``plain``: a line-by-line restatement of the authors' training loop (``nasbench/train_seminas.py``: a
    ``ControllerDataset`` of per-sample tensors behind a shuffling ``DataLoader``, ``F.dropout`` on the global RNG,
    the default single-tensor Adam and grad clipping), and
  * ``NAOController.fit`` with each speed knob off/on, at batch 100 and at larger batches, and per thread count;
- ``predict``: pseudo-labelling throughput on 100k sequences (the 20k table tiled 5 times), the authors' way
  (``nn.LSTM`` encoder under ``no_grad`` in chunks of 10,000 = their M) vs ``predict`` with the reference and the
  table-driven LSTM at several chunk sizes;
- ``generate``: seconds to produce 300 new valid, unseen NB101 architectures from 100 seeds (step size 1, 2, ...),
  the authors' way (per step size: encoder + gradient + a Python-stepped decoder with ``torch.cat``) vs ``generate``
  with one or several step sizes per batched decode. Both use the same weights, and the script checks that they
  accept the same sequences.

Every time is the best of ``--repeats`` runs (the machine is shared; the load average is recorded). Ratios are against
the ``plain`` row of the same section, measured in the same run. Prints a table and writes
``DIR/controller_speed.csv`` (``--out DIR``, default ``bench_out/``).

    SEMINAS_DATA_DIR=../shared/data .venv/bin/python benchmarks/controller_speed.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seminas_ray.controller import ControllerConfig
from seminas_ray.controller import NAOController
from seminas_ray.settings import data_file
from seminas_ray.spaces.nasbench101 import NB101Space
from seminas_ray.spaces.nb101_encoding import encode_arrays

MEAN_VAL, STD_VAL = 0.908192301, 0.023961


# ---------------------------------------------------------------------------------------------------------------
# The authors' controller and loops, restated for timing (same maths as seminas_ray.controller; same weight names
# after the predictor's parameters are mapped, so both can run one set of weights).
# ---------------------------------------------------------------------------------------------------------------
class PlainEncoder(nn.Module):
    def __init__(self, vocab: int, hidden: int, mlp_hidden: int, mlp_layers: int, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.mlp_layers = mlp_layers
        self.embedding = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, 1, batch_first=True, bidirectional=True)
        self.out_proj = nn.Linear(hidden * 2, hidden)
        dims = [hidden] + [mlp_hidden] * (mlp_layers - 1) + [hidden]
        self.mlp = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(mlp_layers))
        self.regressor = nn.Linear(hidden, 1)

    def forward_predictor(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        for layer in self.mlp:
            x = F.dropout(F.relu(layer(x)), self.dropout, training=self.training)
        return self.regressor((residual + x) * math.sqrt(0.5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.dropout(self.embedding(x), self.dropout, training=self.training)
        residual = x
        x, _ = self.rnn(x)
        x = F.normalize(self.out_proj(x) + residual, 2, dim=-1)
        outputs = x
        arch_emb = F.normalize(x.mean(1), 2, dim=-1)
        return outputs, arch_emb, self.forward_predictor(arch_emb)

    def infer(self, x: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, _, predict_value = self(x)
        grads = torch.autograd.grad(predict_value, outputs, torch.ones_like(predict_value))[0]
        new_outputs = F.normalize(outputs + step * grads, 2, dim=-1)
        return new_outputs, F.normalize(new_outputs.mean(1), 2, dim=-1)


class PlainAttention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.input_proj = nn.Linear(hidden, hidden, bias=False)
        self.output_proj = nn.Linear(hidden * 2, hidden, bias=False)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax(torch.bmm(self.input_proj(x), source.transpose(1, 2)), dim=-1)
        return torch.tanh(self.output_proj(torch.cat([torch.bmm(attn, source), x], dim=2)))


class PlainDecoder(nn.Module):
    def __init__(self, vocab: int, hidden: int, dropout: float, mask: np.ndarray) -> None:
        super().__init__()
        self.dropout = dropout
        self.embedding = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, 1, batch_first=True)
        self.attention = PlainAttention(hidden)
        self.out = nn.Linear(hidden, vocab)
        self.mask = torch.from_numpy(mask)

    def step(self, x: torch.Tensor, hidden: Any, source: torch.Tensor) -> tuple[torch.Tensor, Any]:
        x = F.dropout(self.embedding(x), self.dropout, training=self.training)
        residual = x
        x, hidden = self.rnn(x, hidden)
        x = (residual + x) * math.sqrt(0.5)
        x = (x + self.attention(x, source)) * math.sqrt(0.5)
        return self.out(x), hidden

    def forward(self, x: torch.Tensor, hidden: Any, source: torch.Tensor) -> torch.Tensor:
        logits, _ = self.step(x, hidden, source)
        return F.log_softmax(logits, dim=-1)

    def infer(self, hidden: Any, source: torch.Tensor) -> torch.Tensor:
        """The authors' inference loop: one ``nn.LSTM`` call and one ``torch.cat`` per step."""
        bsz = source.size(0)
        mask = self.mask.to(source.device)
        decoder_input = torch.zeros(bsz, 1, dtype=torch.long, device=source.device)
        decoded = torch.zeros(bsz, 0, dtype=torch.long, device=source.device)
        for i in range(mask.shape[0]):
            logits, hidden = self.step(decoder_input[:, i:i + 1], hidden, source)
            symbol = logits.squeeze(1).masked_fill(~mask[i], float("-inf")).argmax(-1, keepdim=True)
            decoded = torch.cat((decoded, symbol), -1)
            decoder_input = torch.cat((decoder_input, symbol), -1)
        return decoded


class PlainNAO(nn.Module):
    def __init__(self, vocab: int, cfg: ControllerConfig, mask: np.ndarray) -> None:
        super().__init__()
        self.encoder = PlainEncoder(vocab, cfg.hidden_size, cfg.mlp_hidden_size, cfg.mlp_layers, cfg.dropout)
        self.decoder = PlainDecoder(vocab, cfg.hidden_size, cfg.dropout, mask)

    def forward(self, x: torch.Tensor, dec_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, arch_emb, predict_value = self.encoder(x)
        hidden = (arch_emb.unsqueeze(0), arch_emb.unsqueeze(0))
        return predict_value, self.decoder(dec_in, hidden, outputs)

    def load_controller_weights(self, weights: dict[str, np.ndarray]) -> None:
        mapped = {k.replace("predictor.", "encoder."): torch.from_numpy(v) for k, v in weights.items()}
        self.load_state_dict(mapped)


class PlainDataset(torch.utils.data.Dataset):
    """The authors' ``ControllerDataset`` (training form): four small tensors per sample."""

    def __init__(self, inputs: list[list[int]], targets: list[float]) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        seq = self.inputs[i]
        return {"encoder_input": torch.LongTensor(seq), "encoder_target": torch.FloatTensor([self.targets[i]]),
                "decoder_input": torch.LongTensor([0] + seq[:-1]), "decoder_target": torch.LongTensor(seq)}


def plain_fit(model: PlainNAO, seqs: np.ndarray, targets: np.ndarray, epochs: int, cfg: ControllerConfig,
              device: torch.device) -> int:
    """The authors' ``train_controller`` + ``controller_train``; returns the number of steps."""
    loader = torch.utils.data.DataLoader(PlainDataset(seqs.tolist(), targets.tolist()), batch_size=cfg.batch_size,
                                         shuffle=True, pin_memory=device.type == "cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = 0
    for _ in range(epochs):
        model.train()
        total = 0.0
        for sample in loader:
            x = sample["encoder_input"].to(device)
            y = sample["encoder_target"].to(device)
            dec_in = sample["decoder_input"].to(device)
            target = sample["decoder_target"].to(device)
            optimizer.zero_grad()
            pred, log_prob = model(x, dec_in)
            loss_1 = F.mse_loss(pred.squeeze(), y.squeeze())
            loss_2 = F.nll_loss(log_prob.contiguous().view(-1, log_prob.size(-1)), target.view(-1))
            loss = cfg.trade_off * loss_1 + (1 - cfg.trade_off) * loss_2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            total = total + loss.data * x.size(0)  # AvgrageMeter.update(loss.data, n)
            steps += 1
    return steps


def plain_predict(model: PlainNAO, seqs: np.ndarray, device: torch.device, chunk: int = 10_000) -> np.ndarray:
    """The authors' pseudo-labelling: eval-mode encoder under ``no_grad`` on M=10,000 sequences per call."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(seqs), chunk):
            _, _, pred = model.encoder(torch.from_numpy(seqs[s:s + chunk]).to(device))
            out.append(pred.squeeze(-1).double().cpu().numpy())
    return np.concatenate(out)


def plain_generate(model: PlainNAO, seeds: np.ndarray, n_new: int, accept: Callable[[np.ndarray], bool],
                   device: torch.device, max_step: int = 100) -> tuple[int, int]:
    """The authors' generation loop (``controller_infer`` per step size); returns (accepted, decoded)."""
    model.eval()
    n_acc, n_dec, step = 0, 0, 0
    x = torch.from_numpy(seeds).to(device)
    while n_acc < n_new:
        step += 1
        if step > max_step:
            break
        new_outputs, new_emb = model.encoder.infer(x, step)
        hidden = (new_emb.unsqueeze(0).contiguous(), new_emb.unsqueeze(0).contiguous())
        with torch.no_grad():
            decoded = model.decoder.infer(hidden, new_outputs.detach()).cpu().numpy()
        for seq in decoded:
            n_dec += 1
            if accept(seq):
                n_acc += 1
                if n_acc >= n_new:
                    break
    return n_acc, n_dec


# ---------------------------------------------------------------------------------------------------------------
# measurement helpers
# ---------------------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], Any], repeats: int, device: torch.device) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls (after the first, which warms up and is not counted)."""
    out = fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def make_accept(space: NB101Space, exclude: set[tuple[int, ...]], record: list | None = None
                ) -> Callable[[np.ndarray], bool]:
    """Accept valid sequences not seen before (by token tuple), as the authors' loop does."""
    seen = set(exclude)

    def accept(seq: np.ndarray) -> bool:
        key = tuple(int(t) for t in seq)
        if key in seen or space.decode(seq) is None:
            return False
        seen.add(key)
        if record is not None:
            record.append(key)
        return True

    return accept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_out", help="output folder (default: bench_out/)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats per row; the best is kept")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--fit-archs", type=int, default=None, help="architectures per timed fit epoch")
    parser.add_argument("--predict-archs", type=int, default=None, help="architectures for predict (default 100k)")
    parser.add_argument("--no-thread-sweep", action="store_true",
                        help="skip the rows at the other thread count (1 vs 2) on CPU")
    parser.add_argument("--batches", default=None, help="comma-separated fit batch sizes (default 100,250,500,1000)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    fit_archs = args.fit_archs or (800 if args.quick else 3000)
    predict_archs = args.predict_archs or (20_000 if args.quick else 100_000)
    default_batches = "100,1000" if args.quick else "100,250,500,1000"
    if device.type == "cuda":
        default_batches = "100,1000,4000"
    batches = [int(b) for b in (args.batches or default_batches).split(",")]

    with np.load(data_file("nb101/nb101_subset20k.npz")) as d:
        all_seqs = encode_arrays(d["adjacency"], d["labels"], d["n_vertices"])
        all_y = (d["val_acc_108"].astype(np.float64) - MEAN_VAL) / STD_VAL
    space = NB101Space()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(all_seqs), size=fit_archs, replace=False)
    fit_seqs, fit_y = all_seqs[pick], np.clip(all_y[pick], -5, 5)
    reps = max(1, args.repeats)
    rows: list[dict[str, Any]] = []

    def add(section: str, variant: str, seconds: float, items: int, steps: int | None = None,
            batch: int | None = None, note: str = "") -> None:
        rows.append({"section": section, "variant": variant, "device": device.type, "threads": torch.get_num_threads(),
                     "batch_size": batch, "items": items, "seconds": round(seconds, 4),
                     "steps_per_s": round(steps / seconds, 2) if steps else None,
                     "items_per_s": round(items / seconds, 1), "load_avg_1m": round(os.getloadavg()[0], 2),
                     "note": note})
        suffix = f"  {note}" if note else ""
        print(f"  {section:9s} {variant:44s} {items / seconds:10.0f} /s  ({seconds:.3f} s){suffix}", flush=True)

    print(f"device {device}, torch {torch.__version__}, threads {threads}, load {os.getloadavg()[0]:.2f}", flush=True)
    cfg = ControllerConfig()

    # -- fit --------------------------------------------------------------------------------------------------
    def time_plain_fit(batch: int) -> None:
        pcfg = ControllerConfig(batch_size=batch)
        torch.manual_seed(0)
        model = PlainNAO(space.vocab_size, pcfg, space.token_mask()).to(device)
        secs, steps = best_time(lambda: plain_fit(model, fit_seqs, fit_y, 1, pcfg, device), reps, device)
        add("fit", "plain (authors' loop)", secs, len(fit_seqs), steps, batch)

    def time_fit(variant: str, batch: int, **knobs: Any) -> None:
        ctl = NAOController(space, ControllerConfig(batch_size=batch, **knobs), seed=0, device=str(device))
        secs, res = best_time(lambda: ctl.fit(fit_seqs, fit_y, epochs=1), reps, device)
        add("fit", variant, secs, len(fit_seqs), res.steps, batch)

    time_plain_fit(100)
    time_fit("NAOController, foreach_optimizer=False", 100, foreach_optimizer=False)
    time_fit("NAOController (default)", 100)
    for batch in batches:
        if batch != 100:
            time_fit(f"NAOController, batch {batch}", batch)
    sweep = device.type == "cpu" and not args.no_thread_sweep
    if sweep:
        for t in sorted({1, 2} - {threads}):
            torch.set_num_threads(t)
            time_plain_fit(100)
            time_fit("NAOController (default)", 100)
        torch.set_num_threads(threads)

    # -- predict ----------------------------------------------------------------------------------------------
    reps_pred = max(1, reps - 1) if not args.quick else 1
    pred_seqs = np.tile(all_seqs, (math.ceil(predict_archs / len(all_seqs)), 1))[:predict_archs]
    # a controller trained enough for generation to behave as in a search (1,000 archs, like the labelled pool)
    trained = NAOController(space, cfg, seed=0, device=str(device))
    trained.fit(fit_seqs[:1000], fit_y[:1000], epochs=10 if args.quick else 30)
    weights = trained.get_weights()
    plain = PlainNAO(space.vocab_size, cfg, space.token_mask())
    plain.load_controller_weights(weights)
    plain.to(device)
    secs, ref = best_time(lambda: plain_predict(plain, pred_seqs, device), reps_pred, device)
    add("predict", "plain (nn.LSTM, no_grad, chunks of 10k)", secs, len(pred_seqs))
    chunk_sizes = [1024, 4096, 16384] if device.type == "cpu" else [4096, 16384, 65536]
    for fast in (False, True) if device.type == "cpu" else (False,):  # CUDA always uses cuDNN's LSTM
        trained.config = dataclasses.replace(trained.config, fast_inference=fast)
        for chunk in chunk_sizes:
            secs, got = best_time(lambda: trained.predict(pred_seqs, batch_size=chunk), reps_pred, device)
            err = float(np.max(np.abs(got - ref)))
            add("predict", f"predict, {'table-driven' if fast else 'reference'} LSTM, chunk {chunk}", secs,
                len(pred_seqs), note=f"max |diff| vs plain {err:.1e}")
    trained.config = dataclasses.replace(trained.config, fast_inference=True)
    if sweep:
        for t in sorted({1, 2} - {threads}):
            torch.set_num_threads(t)
            secs, _ = best_time(lambda: plain_predict(plain, pred_seqs, device), reps_pred, device)
            add("predict", "plain (nn.LSTM, no_grad, chunks of 10k)", secs, len(pred_seqs))
            secs, _ = best_time(lambda: trained.predict(pred_seqs), reps_pred, device)
            add("predict", "predict (default: table-driven, chunk 1024)", secs, len(pred_seqs))
        torch.set_num_threads(threads)

    # -- generate ---------------------------------------------------------------------------------------------
    labelled = {tuple(int(t) for t in s) for s in fit_seqs}
    seed_order = np.argsort(-trained.predict(fit_seqs), kind="stable")[:100]
    seeds = fit_seqs[seed_order]
    n_new = 300
    plain_rec: list = []
    secs, (n_plain, n_dec) = best_time(
        lambda: plain_generate(plain, seeds, n_new, make_accept(space, labelled, plain_rec.clear() or plain_rec),
                               device), reps, device)
    add("generate", "plain (authors' loop)", secs, n_dec, note=f"items = decoded archs; accepted {n_plain}")
    for eta_batch in (1, 8):
        trained.config = dataclasses.replace(trained.config, generate_eta_batch=eta_batch)
        rec: list = []
        secs, res = best_time(lambda: trained.generate(seeds, n_new=n_new,
                                                       accept=make_accept(space, labelled, rec.clear() or rec)),
                              reps, device)
        same = rec == plain_rec
        add("generate", f"generate, {eta_batch} step size(s) per decode", secs, res.n_decoded,
            note=f"accepted {res.n_accepted}, step sizes {len(res.step_sizes_tried)}, same seqs as plain: {same}")

    # -- ratios, table, CSV -----------------------------------------------------------------------------------
    for section in ("fit", "predict", "generate"):
        for t in {r["threads"] for r in rows if r["section"] == section}:
            base = [r for r in rows
                    if r["section"] == section and r["threads"] == t and r["variant"].startswith("plain")]
            for r in rows:
                if r["section"] == section and r["threads"] == t and base and r["items"] and base[0]["items"]:
                    r["speedup_vs_plain"] = round(base[0]["seconds"] / r["seconds"] * r["items"] / base[0]["items"], 2)
    header = ["section", "variant", "device", "threads", "batch_size", "items", "seconds", "steps_per_s",
              "items_per_s", "speedup_vs_plain", "load_avg_1m", "note"]
    print()
    print(f"{'section':9s} {'variant':46s} {'thr':>3s} {'batch':>5s} {'steps/s':>8s} {'items/s':>9s} {'vs plain':>8s}")
    for r in rows:
        print(f"{r['section']:9s} {r['variant']:46s} {r['threads']:3d} {str(r['batch_size'] or ''):>5s} "
              f"{str(r['steps_per_s'] or ''):>8s} {r['items_per_s']:9.0f} {r.get('speedup_vs_plain', ''):>8}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".controller_speed.", suffix=".csv")
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out_dir / "controller_speed.csv")
    print(f"\nwrote {out_dir / 'controller_speed.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
