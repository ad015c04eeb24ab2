#!/usr/bin/env python3
"""Independent NumPy reference for the forward pass of torch.nn.RNN / LSTM / GRU.

Semantics match batch_first=True modules fed through
pack_padded_sequence(enforce_sorted=False) -> module -> pad_packed_sequence:
every sequence runs only over its own length, the reverse direction starts at
the sequence's own last valid step, padded outputs are 0, and h_n / c_n hold
the state after each sequence's last processed step (step 0 for reverse).

Usage:
  python3 torch_ref.py make [OUT_DIR]      # default: cases/ beside this script (committed)
  python3 torch_ref.py make --check        # regenerate into a temporary folder and compare
                                           # with the committed cases/ (inputs byte for byte,
                                           # results within MAKE_CHECK_TOL)
  python3 torch_ref.py check FILE.safetensors SPEC.json

Only numpy and safetensors are needed (no torch). The vitest suite reads the committed cases/,
so `npm test` needs no Python; CI reruns `make --check` so the committed files stay what this
script makes.
"""
import filecmp
import json
import os
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
TOL = 1e-5

# name -> (mode, input_size, hidden_size, num_layers, bidirectional, seed)
CASES = {
    "lstm": ("LSTM", 3, 4, 2, True, 1),
    "gru": ("GRU", 2, 5, 2, False, 2),
    "rnn_relu": ("RNN_RELU", 3, 4, 1, True, 3),
    "rnn_tanh": ("RNN_TANH", 2, 3, 3, False, 4),
}
BATCH, STEPS, LENGTHS, PAD = 3, 5, [5, 2, 4], 9.0


def param_shapes(mode, input_size, hidden, num_layers, bidirectional):
    """Exactly the state_dict entries (name -> shape) torch creates, in torch's order."""
    g, d = GATES[mode], 2 if bidirectional else 1
    shapes = {}
    for k in range(num_layers):
        in_k = input_size if k == 0 else d * hidden
        for sfx in ["", "_reverse"][:d]:
            shapes[f"weight_ih_l{k}{sfx}"] = (g * hidden, in_k)
            shapes[f"weight_hh_l{k}{sfx}"] = (g * hidden, hidden)
            shapes[f"bias_ih_l{k}{sfx}"] = (g * hidden,)
            shapes[f"bias_hh_l{k}{sfx}"] = (g * hidden,)
    return shapes


def cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One time step for a batch. x [B,in], h/c [B,H]. Returns (h', c')."""
    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    if mode == "RNN_TANH":
        return np.tanh(gi + gh), c
    if mode == "RNN_RELU":
        return np.maximum(gi + gh, 0.0), c
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        c_new = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c_new), c_new
    if mode == "GRU":
        i_r, i_z, i_n = np.split(gi, 3, axis=1)
        h_r, h_z, h_n = np.split(gh, 3, axis=1)
        r, z = sig(i_r + h_r), sig(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        return (1.0 - z) * n + z * h, c
    raise ValueError(f"unknown mode {mode}")


def run_direction(mode, x, lengths, p, reverse):
    """x [B,T,in] float64. Masked recurrence: a sequence's state only changes
    at its valid steps, so the reverse pass effectively starts at step len-1."""
    B, T, _ = x.shape
    H = p[1].shape[1]
    h, c = np.zeros((B, H)), np.zeros((B, H))
    out = np.zeros((B, T, H))
    for t in (reversed(range(T)) if reverse else range(T)):
        valid = (t < lengths)[:, None]
        h_new, c_new = cell(mode, x[:, t], h, c, *p)
        h, c = np.where(valid, h_new, h), np.where(valid, c_new, c)
        out[:, t] = np.where(valid, h, 0.0)
    return out, h, c


def forward(mode, weights, num_layers, bidirectional, x, lengths):
    """weights: name -> array (no prefix). Returns output [B,T,D*H], h_n, c_n [L*D,B,H]."""
    lengths = np.asarray(lengths)
    layer_in = np.asarray(x, dtype=np.float64)
    h_n, c_n = [], []
    for k in range(num_layers):
        outs = []
        for sfx in ["", "_reverse"][: 2 if bidirectional else 1]:
            p = [weights[f"{n}_l{k}{sfx}"].astype(np.float64)
                 for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            out, h, c = run_direction(mode, layer_in, lengths, p, reverse=bool(sfx))
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_in = np.concatenate(outs, axis=2)
    return layer_in, np.stack(h_n), np.stack(c_n)


def make(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for case, (mode, I, H, L, bi, seed) in CASES.items():
        rng = np.random.default_rng(seed)
        weights = {n: rng.uniform(-0.5, 0.5, s).astype(np.float32)
                   for n, s in param_shapes(mode, I, H, L, bi).items()}
        x = rng.uniform(-1.0, 1.0, (BATCH, STEPS, I)).astype(np.float32)
        for b, n in enumerate(LENGTHS):
            x[b, n:] = PAD  # garbage that must not influence anything
        output, h_n, c_n = forward(mode, weights, L, bi, x, LENGTHS)
        if mode == "RNN_RELU":
            valid = output[np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]]
            frac = float(np.mean(valid > 0))
            assert 0.2 < frac < 0.8, f"relu activity not mixed: {frac}"
        tensors = {f"rnn.{n}": w for n, w in weights.items()}
        tensors["head.weight"] = rng.uniform(-0.5, 0.5, (2, 2)).astype(np.float32)
        save_file(tensors, os.path.join(out_dir, f"{case}.safetensors"))
        spec = {"case": case, "mode": mode, "input_size": I, "hidden_size": H,
                "num_layers": L, "bidirectional": bi, "batch": BATCH, "steps": STEPS,
                "lengths": LENGTHS, "x": x.astype(np.float64).tolist(),
                "output": output.tolist(), "h_n": h_n.tolist()}
        if mode == "LSTM":
            spec["c_n"] = c_n.tolist()
        with open(os.path.join(out_dir, f"{case}.json"), "w") as f:
            json.dump(spec, f)
            f.write("\n")
        print(f"wrote {case}.safetensors / {case}.json ({mode})")


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(st_path, spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    mode, L, bi = spec["mode"], spec["num_layers"], bool(spec["bidirectional"])
    if mode not in GATES:
        fail(f"unknown mode {mode!r}")
    want = param_shapes(mode, spec["input_size"], spec["hidden_size"], L, bi)
    got = load_file(st_path)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        fail(f"tensor names differ: missing {missing}, unexpected {extra}")
    for n, shape in want.items():
        if tuple(got[n].shape) != shape or got[n].dtype != np.float32:
            fail(f"{n}: got {got[n].dtype}{list(got[n].shape)}, want float32{list(shape)}")

    x, lengths = np.asarray(spec["x"], dtype=np.float64), np.asarray(spec["lengths"])
    if x.ndim != 3 or lengths.shape != (x.shape[0],) or lengths.min() < 1 or lengths.max() > x.shape[1]:
        fail(f"bad x {x.shape} / lengths {lengths.tolist()}")
    output, h_n, c_n = forward(mode, got, L, bi, x, lengths)
    results = {"output": output, "h_n": h_n}
    if mode == "LSTM":
        results["c_n"] = c_n
    elif spec.get("c_n") is not None:
        fail(f"c_n given for {mode}")
    worst = []
    for key, ref in results.items():
        if spec.get(key) is None:
            fail(f"spec lacks {key}")
        theirs = np.asarray(spec[key], dtype=np.float64)
        if theirs.shape != ref.shape:
            fail(f"{key}: shape {list(theirs.shape)}, want {list(ref.shape)}")
        diff = np.nan_to_num(np.abs(theirs - ref), nan=np.inf)
        idx = np.unravel_index(np.argmax(diff), diff.shape)
        worst.append((float(diff[idx]), key, idx, float(theirs[idx]), float(ref[idx])))
    err, key, idx, theirs, ref = max(worst)
    if err > TOL:
        fail(f"worst mismatch {key}{list(map(int, idx))}: spec {theirs!r} vs numpy {ref!r} (|diff| {err:.3g} > {TOL})")
    print(f"OK {mode} layers={L} bidirectional={bi} tensors={len(want)} max|diff|={err:.3g}")


CASES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def make_check():
    """Regenerates every case into a temporary folder; fails unless the committed files match."""
    with tempfile.TemporaryDirectory() as tmp:
        make(tmp)
        names = sorted(os.listdir(tmp))
        committed = sorted(os.listdir(CASES_DIR)) if os.path.isdir(CASES_DIR) else []
        if names != committed:
            fail(f"{CASES_DIR} holds {committed}, the script makes {names}")
        # The inputs (safetensors) byte for byte; each case's JSON field by field, its float64
        # results within MAKE_CHECK_TOL: NumPy's exp, tanh and products round their last bit
        # differently on different CPUs (regenerated on an AMD EPYC, lstm.json differed from the
        # file written on an Intel Xeon in the 17th digit).
        binary = [n for n in names if not n.endswith(".json")]
        _, mismatch, errors = filecmp.cmpfiles(tmp, CASES_DIR, binary, shallow=False)
        mismatch += [n for n in names if n.endswith(".json") and not same_spec(
            os.path.join(tmp, n), os.path.join(CASES_DIR, n))]
        if mismatch or errors:
            fail(f"committed files differ from what the script makes: {mismatch + errors}")
    print(f"OK: {CASES_DIR} matches the script ({len(names)} files)")


# Tolerance of make --check on the committed float64 results (the vitest suite checks gyre's
# float32 outputs against them within TOL).
MAKE_CHECK_TOL = 1e-12


def same_spec(made, committed):
    """Whether two case files hold the same fields, equal, their numbers within MAKE_CHECK_TOL."""
    with open(made) as f:
        a = json.load(f)
    with open(committed) as f:
        b = json.load(f)
    if a.keys() != b.keys():
        return False
    for k in a:
        if isinstance(a[k], list) and k != "lengths":
            x, y = np.asarray(a[k], dtype=np.float64), np.asarray(b[k], dtype=np.float64)
            if x.shape != y.shape or (x.size and float(np.max(np.abs(x - y))) > MAKE_CHECK_TOL):
                return False
        elif a[k] != b[k]:
            return False
    return True


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["make"]:
        make(CASES_DIR)
    elif args == ["make", "--check"]:
        make_check()
    elif len(args) == 2 and args[0] == "make":
        make(args[1])
    elif len(args) == 3 and args[0] == "check":
        check(args[1], args[2])
    else:
        print(__doc__.strip())
        sys.exit(2)
