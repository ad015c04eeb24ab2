#!/usr/bin/env python3
"""PyTorch's view of gyre's encoder–decoder files: loads `lstm.safetensors` and `gru.safetensors`
(written by gyre's `Seq2Seq.save`, see make_models.cjs) into PyTorch modules with
`load_state_dict(strict=True)` — so every parameter name and shape must be the module's own —
and computes, independently of gyre, the teacher-forced cross-entropy of each pair in
pairs.json (mean per target token, the end token included) and greedy decoding's output and
log-probability. Writes expected.json, which `__test__/seq2seq-pytorch.test.ts` compares with
gyre's `evaluate` and `transduce`.

The modules: `encoder.embedding` (nn.Embedding), `encoder.rnn` (nn.LSTM / nn.GRU, batch_first,
stacked, bidirectional, over packed sequences), `decoder.embedding`, `decoder.rnn` (nn.LSTMCell /
nn.GRUCell; with input feeding its input is [embedding; previous attentional vector]),
`decoder.attention` (general: `weight` [D, D], score q·(W k); additive: `query_weight` [A, D],
`key_weight` [A, D], `bias` [A], `v` [A], score v·tanh(W_q q + W_k k + b)), `decoder.combine`
(nn.Linear(2D, D): h̃ = tanh(W_c [context; h] + b_c)) and `decoder.output` (nn.Linear(D, V)).
The decoder starts from the encoder's top layer's final states, a bidirectional encoder's two
directions concatenated (forward first).

Usage (needs torch, numpy, safetensors):
    python3 torch_seq2seq.py [DIR]      # default: this script's folder
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.set_default_dtype(torch.float64)


class Additive(nn.Module):
    def __init__(self, a, d):
        super().__init__()
        self.query_weight = nn.Parameter(torch.zeros(a, d))
        self.key_weight = nn.Parameter(torch.zeros(a, d))
        self.bias = nn.Parameter(torch.zeros(a))
        self.v = nn.Parameter(torch.zeros(a))

    def forward(self, q, k):  # q [B, D], k [B, T, D] -> scores [B, T]
        e = torch.tanh((q @ self.query_weight.T).unsqueeze(1) + k @ self.key_weight.T + self.bias)
        return e @ self.v


class General(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d, d))

    def forward(self, q, k):
        return torch.einsum("bd,de,bte->bt", q, self.weight, k)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[c["cell"]]
        self.embedding = nn.Embedding(c["sourceVocab"], c["embedding"])
        self.rnn = rnn(c["embedding"], c["hidden"], num_layers=c["layers"], bidirectional=c["bidirectional"], batch_first=True)


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden"] * (2 if c["bidirectional"] else 1)
        cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[c["cell"]]
        self.embedding = nn.Embedding(c["targetVocab"], c["embedding"])
        self.rnn = cell(c["embedding"] + (d if c["inputFeeding"] else 0), d)
        score = c["score"]
        if score == "general":
            self.attention = General(d)
        elif isinstance(score, dict):
            self.attention = Additive(score["additive"]["units"], d)
        self.combine = nn.Linear(2 * d, d)
        self.output = nn.Linear(d, c["targetVocab"])


class Seq2Seq(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)

    def encode(self, src):
        lengths = torch.tensor([len(s) for s in src])
        x = nn.utils.rnn.pad_sequence([torch.tensor(s) for s in src], batch_first=True)
        packed = pack_padded_sequence(self.encoder.embedding(x), lengths, batch_first=True, enforce_sorted=False)
        out, state = self.encoder.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True)
        dirs = 2 if self.c["bidirectional"] else 1

        def top(s):  # [L·dirs, B, H] -> the top layer's directions concatenated, [B, dirs·H]
            return torch.cat([s[-dirs + k] for k in range(dirs)], dim=1)

        if self.c["cell"] == "lstm":
            return memory, lengths, (top(state[0]), top(state[1]))
        return memory, lengths, top(state)

    def step(self, token, state, feed, memory, lengths):
        x = self.decoder.embedding(token)
        if self.c["inputFeeding"]:
            x = torch.cat([x, feed], dim=1)
        state = self.decoder.rnn(x, state)
        h = state[0] if self.c["cell"] == "lstm" else state
        scores = self.decoder.attention(h, memory)
        mask = torch.arange(memory.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
        alpha = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=1)
        context = torch.einsum("bt,btd->bd", alpha, memory)
        ht = torch.tanh(self.decoder.combine(torch.cat([context, h], dim=1)))
        return torch.log_softmax(self.decoder.output(ht), dim=1), state, ht

    def pair_losses(self, src, tgt):
        memory, lengths, state = self.encode(src)
        start, end = self.c["start"], self.c["end"]
        feed = torch.zeros(len(src), memory.shape[2])
        steps = max(len(t) for t in tgt) + 1
        inputs = [[start] + t + [end] * (steps - 1 - len(t)) for t in tgt]
        labels = [t + [end] * (steps - len(t)) for t in tgt]
        sums = torch.zeros(len(src))
        for k in range(steps):
            logp, state, feed = self.step(torch.tensor([s[k] for s in inputs]), state, feed, memory, lengths)
            for b, t in enumerate(tgt):
                if k <= len(t):
                    sums[b] -= logp[b, labels[b][k]]
        return sums

    def greedy(self, src, max_length):
        memory, lengths, state = self.encode(src)
        token = torch.full((len(src),), self.c["start"])
        feed = torch.zeros(len(src), memory.shape[2])
        outs = [[] for _ in src]
        logps = [0.0 for _ in src]
        done = [False for _ in src]
        for _ in range(max_length):
            logp, state, feed = self.step(token, state, feed, memory, lengths)
            token = logp.argmax(dim=1)
            for b in range(len(src)):
                if not done[b]:
                    outs[b].append(int(token[b]))
                    logps[b] += float(logp[b, token[b]])
                    done[b] = int(token[b]) == self.c["end"]
        return outs, logps


def main(folder):
    with open(os.path.join(folder, "pairs.json")) as f:
        data = json.load(f)
    expected = {"torch_version": torch.__version__, "cases": {}}
    for name in ("lstm", "gru"):
        path = os.path.join(folder, f"{name}.safetensors")
        with safe_open(path, "pt") as f:
            config = json.loads(f.metadata()["config"])
        tensors = {k: v.double() for k, v in load_file(path).items() if not k.startswith("optimizer/")}
        model = Seq2Seq(config)
        model.load_state_dict(tensors, strict=True)  # every name and shape PyTorch's own
        ids = data["ids"][name]
        src = [p["source"] for p in ids]
        tgt = [p["target"] for p in ids]
        with torch.no_grad():
            sums = model.pair_losses(src, tgt)
            tokens = sum(len(t) + 1 for t in tgt)
            outs, logps = model.greedy(src, 2 * max(len(s) for s in src) + 10)
        expected["cases"][name] = {
            "config": config,
            "parameters": sorted(tensors),
            "loss": float(sums.sum() / tokens),
            "pair_losses": [float(s) for s in sums],
            "greedy": [{"tokens": o, "log_prob": p} for o, p in zip(outs, logps)],
        }
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
