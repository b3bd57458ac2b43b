"""The NAO encoder / predictor / decoder (``EPD``) as PyTorch modules, parameterised by a token vocabulary.

The maths follows the authors' ``nasbench/encoder.py`` and ``nasbench/decoder.py`` (SemiNAS @2f03d96), see
``seminas_spec.md`` §2. Two things differ in *how* it is computed, never in what:

- Dropout draws from an explicit ``torch.Generator`` owned by the controller, so training is reproducible and
  checkpointable without touching PyTorch's global RNG.
- Inference (``predict``, ``generate``, ``reconstruct``) can use table-driven LSTMs: in eval mode there is no dropout
  on the embeddings, so ``W_ih @ embedding[token] + b_ih + b_hh`` takes only ``vocab_size`` values and is
  precomputed once; each recurrent step is then one matmul. The encoder runs both directions as one batched matmul
  per step. ``nn.LSTM`` (oneDNN / cuDNN) is used for training, where the embeddings are dropped out.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from seminas_ray.controller.config import ControllerConfig

SQRT_HALF = math.sqrt(0.5)


def dropout(x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout drawing its mask from ``generator`` (same maths as ``F.dropout``)."""
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty_like(x).bernoulli_(keep, generator=generator).div_(keep)
    return x * mask


def _lstm_cell_tables(rnn: nn.LSTM, embedding: torch.Tensor, suffix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token input gates ``[V, 4H]`` and ``W_hh^T`` ``[H, 4H]`` of one LSTM direction, for ``_lstm_step``.

    Gates are reordered to (input, forget, output, cell) and the cell-gate columns are doubled, so one ``sigmoid``
    over all four gates gives the three gates and, through ``tanh(x) = 2*sigmoid(2x) - 1``, the cell candidate
    (on CPU ``tanh`` costs about three times ``sigmoid``).
    """
    hidden = rnn.hidden_size
    w_ih = getattr(rnn, f"weight_ih_l0{suffix}")
    w_hh = getattr(rnn, f"weight_hh_l0{suffix}")
    bias = getattr(rnn, f"bias_ih_l0{suffix}") + getattr(rnn, f"bias_hh_l0{suffix}")
    # PyTorch's gate order is (i, f, g, o); move g last and double it.
    order = torch.cat([torch.arange(0, 2 * hidden), torch.arange(3 * hidden, 4 * hidden),
                       torch.arange(2 * hidden, 3 * hidden)]).to(w_ih.device)
    scale = torch.ones(4 * hidden, dtype=w_ih.dtype, device=w_ih.device)
    scale[3 * hidden:] = 2.0
    table = torch.addmm(bias[order], embedding, w_ih[order].t()) * scale
    return table, (w_hh[order].t() * scale).contiguous()


def _lstm_step(gates: torch.Tensor, c: torch.Tensor, hidden: int, h_out: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM cell update from the pre-activations of ``_lstm_cell_tables``' layout; returns ``(h, c)``.

    ``tanh`` is computed as ``2*sigmoid(2x) - 1`` (identical maths, float rounding aside, and faster on CPU).
    ``gates`` is overwritten; ``h`` is written into ``h_out`` when given (saves a copy into the output buffer).
    """
    s = gates.sigmoid_()
    g = s[..., 3 * hidden:].mul_(2.0).sub_(1.0)
    c = torch.addcmul(s[..., hidden: 2 * hidden] * c, s[..., :hidden], g)
    tanh_c = torch.mul(c, 2.0).sigmoid_().mul_(2.0).sub_(1.0)
    h = torch.mul(tanh_c, s[..., 2 * hidden: 3 * hidden], out=h_out) if h_out is not None else tanh_c.mul_(
        s[..., 2 * hidden: 3 * hidden])
    return h, c


class Encoder(nn.Module):
    """Embedding -> dropout -> 1-layer BiLSTM -> Linear(2H, H) -> + embedding -> L2-normalise per token.

    Returns the per-token outputs ``[B, L, H]`` and the architecture embedding ``[B, H]`` (mean over tokens,
    normalised).
    """

    def __init__(self, vocab_size: int, hidden_size: int, dropout_p: float, residual_scale: bool) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.dropout_p = dropout_p
        self.residual_scale = residual_scale
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.rnn = nn.LSTM(hidden_size, hidden_size, 1, batch_first=True, bidirectional=True)
        self.out_proj = nn.Linear(hidden_size * 2, hidden_size, bias=True)

    def _finish(self, projected: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """Embedding residual (optionally scaled) and per-token L2 normalisation."""
        x = projected + embedded
        if self.residual_scale:
            x = x * SQRT_HALF
        return F.normalize(x, 2, dim=-1)

    def forward(self, tokens: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference path (``nn.LSTM``), used for training; honours ``self.training`` for dropout."""
        embedded = dropout(self.embedding(tokens), self.dropout_p, self.training, generator)
        x, _ = self.rnn(embedded)
        outputs = self._finish(self.out_proj(x), embedded)
        return outputs, pool(outputs)

    def forward_fast(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode path with precomputed input gates; both directions advance in one ``baddbmm`` per step."""
        hidden = self.hidden_size
        batch, length = tokens.shape
        emb_w = self.embedding.weight
        vocab = emb_w.shape[0]
        table_f, whh_f = _lstm_cell_tables(self.rnn, emb_w, "")
        table_b, whh_b = _lstm_cell_tables(self.rnn, emb_w, "_reverse")
        table = torch.cat([table_f, table_b], 0)  # [2V, 4H]: row v (forward) and V+v (backward)
        whh = torch.stack([whh_f, whh_b], 0)  # [2, H, 4H]
        tok_t = tokens.t()  # [L, B]
        # index of the input gates of both directions at step t: forward reads t, backward reads L-1-t
        idx = torch.cat([tok_t, tok_t.flip(0) + vocab], 1)  # [L, 2B]
        h = emb_w.new_zeros((2, batch, hidden))
        c = torch.zeros_like(h)
        # every step writes its h straight into this buffer; the backward direction lands in reversed time order
        stacked = emb_w.new_empty((length, 2, batch, hidden))
        gates = emb_w.new_empty((2 * batch, 4 * hidden))
        for t in range(length):
            torch.index_select(table, 0, idx[t], out=gates)
            step_gates = gates.view(2, batch, 4 * hidden).baddbmm_(h, whh)
            h, c = _lstm_step(step_gates, c, hidden, h_out=stacked[t])
        w_proj = self.out_proj.weight
        projected = torch.matmul(stacked[:, 0], w_proj[:, :hidden].t())
        projected += torch.matmul(stacked[:, 1], w_proj[:, hidden:].t()).flip(0)
        projected += self.out_proj.bias
        embedded = F.embedding(tok_t, emb_w)
        outputs = self._finish(projected, embedded).transpose(0, 1)  # [B, L, H]
        return outputs, pool(outputs)


def pool(outputs: torch.Tensor) -> torch.Tensor:
    """Architecture embedding from per-token encoder outputs: mean over tokens, then L2-normalise."""
    return F.normalize(outputs.mean(dim=1), 2, dim=-1)


class Predictor(nn.Module):
    """MLP on the architecture embedding with a sqrt(0.5)-scaled residual, then Linear(H, 1) (+ optional sigmoid).

    As in the authors' code every MLP layer is followed by ReLU and dropout; the layers map H -> mlp -> ... -> H.
    With ``mlp_layers == 1`` the single layer maps H -> H (the only shape the residual allows).
    """

    def __init__(self, hidden_size: int, mlp_hidden_size: int, mlp_layers: int, dropout_p: float,
                 sigmoid: bool) -> None:
        super().__init__()
        self.dropout_p = dropout_p
        self.sigmoid = sigmoid
        dims = [hidden_size] + [mlp_hidden_size] * (mlp_layers - 1) + [hidden_size]
        self.mlp = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(mlp_layers))
        self.regressor = nn.Linear(hidden_size, 1)

    def forward(self, arch_emb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Predicted score ``[B]``."""
        x = arch_emb
        for layer in self.mlp:
            x = dropout(F.relu(layer(x)), self.dropout_p, self.training, generator)
        x = (arch_emb + x) * SQRT_HALF
        y = self.regressor(x).squeeze(-1)
        return torch.sigmoid(y) if self.sigmoid else y


class Attention(nn.Module):
    """Luong dot attention: project the query, dot with the sources, softmax, concat [context, query], Linear, tanh."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.input_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.output_proj = nn.Linear(hidden_size * 2, hidden_size, bias=False)

    def forward(self, query: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """``query`` ``[B, T, H]``, ``source`` ``[B, S, H]`` -> ``[B, T, H]``."""
        scores = torch.bmm(self.input_proj(query), source.transpose(1, 2))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, source)
        return torch.tanh(self.output_proj(torch.cat([context, query], dim=-1)))


class Decoder(nn.Module):
    """1-layer LSTM decoder with its own embedding, h0 = c0 = architecture embedding, attention over encoder outputs."""

    def __init__(self, vocab_size: int, hidden_size: int, dropout_p: float) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.dropout_p = dropout_p
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.rnn = nn.LSTM(hidden_size, hidden_size, 1, batch_first=True)
        self.attention = Attention(hidden_size)
        self.out = nn.Linear(hidden_size, vocab_size)

    def _head(self, x: torch.Tensor, rnn_out: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """Residuals, attention and output projection after the LSTM; returns logits."""
        x = (x + rnn_out) * SQRT_HALF
        x = (x + self.attention(x, source)) * SQRT_HALF
        return self.out(x)

    def forward(self, decoder_input: torch.Tensor, arch_emb: torch.Tensor, encoder_outputs: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Teacher-forced log-probabilities ``[B, L, V]``: the whole sequence in one LSTM call + batched attention."""
        state = arch_emb.unsqueeze(0).contiguous()
        x = dropout(self.embedding(decoder_input), self.dropout_p, self.training, generator)
        rnn_out, _ = self.rnn(x, (state, state))
        return F.log_softmax(self._head(x, rnn_out, encoder_outputs), dim=-1)

    @torch.no_grad()
    def greedy(self, arch_emb: torch.Tensor, encoder_outputs: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Constrained greedy decoding (eval-mode maths, no dropout): at step t pick the argmax over the tokens
        ``token_mask[t]`` allows, feed it back. Returns ``[B, L]`` int64 tokens. Batched over all rows."""
        hidden = self.hidden_size
        batch = arch_emb.shape[0]
        length = token_mask.shape[0]
        emb_w = self.embedding.weight
        table, whh = _lstm_cell_tables(self.rnn, emb_w, "")
        # logits of disallowed tokens get -inf; an additive mask keeps the step a single add
        neg_mask = torch.zeros(token_mask.shape, dtype=emb_w.dtype, device=emb_w.device)
        neg_mask.masked_fill_(~token_mask.to(emb_w.device), float("-inf"))
        h = arch_emb
        c = arch_emb
        prev = torch.zeros(batch, dtype=torch.long, device=emb_w.device)
        out = torch.empty((batch, length), dtype=torch.long, device=emb_w.device)
        source = encoder_outputs
        for t in range(length):
            gates = torch.addmm(table.index_select(0, prev), h, whh)
            h, c = _lstm_step(gates, c, hidden)
            x = emb_w.index_select(0, prev)
            logits = self._head(x.unsqueeze(1), h.unsqueeze(1), source).squeeze(1)
            prev = (logits + neg_mask[t]).argmax(dim=-1)
            out[:, t] = prev
        return out


class EPD(nn.Module):
    """Encoder + predictor + decoder for a vocabulary of ``vocab_size`` tokens (0 = SOS/pad)."""

    def __init__(self, vocab_size: int, config: ControllerConfig) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.encoder = Encoder(vocab_size, config.hidden_size, config.dropout, config.residual_scale)
        self.predictor = Predictor(config.hidden_size, config.mlp_hidden_size, config.mlp_layers, config.dropout,
                                   config.output_activation == "sigmoid")
        self.decoder = Decoder(vocab_size, config.hidden_size, config.dropout)

    def forward(self, tokens: torch.Tensor, decoder_input: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward: ``(prediction [B], log_probs [B, L, V])`` with teacher forcing."""
        outputs, arch_emb = self.encoder(tokens, generator)
        prediction = self.predictor(arch_emb, generator)
        log_probs = self.decoder(decoder_input, arch_emb, outputs, generator)
        return prediction, log_probs


class EncoderPredictor(nn.Module):
    """Only the parts needed to predict (stateless pseudo-labelling ships and builds just these)."""

    def __init__(self, vocab_size: int, config: ControllerConfig) -> None:
        super().__init__()
        self.encoder = Encoder(vocab_size, config.hidden_size, config.dropout, config.residual_scale)
        self.predictor = Predictor(config.hidden_size, config.mlp_hidden_size, config.mlp_layers, config.dropout,
                                   config.output_activation == "sigmoid")


def predict_tokens(encoder: Encoder, predictor: Predictor, tokens: torch.Tensor, fast: bool) -> torch.Tensor:
    """Eval-mode prediction for ``tokens`` ``[B, L]`` (the caller sets eval mode and the grad context)."""
    _, arch_emb = encoder.forward_fast(tokens) if fast else encoder(tokens)
    return predictor(arch_emb)
