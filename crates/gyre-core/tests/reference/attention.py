#!/usr/bin/env python3
"""Independent NumPy reference for attention over an encoder's outputs (forward + backward).

Scores (see crates/gyre-core/src/attention/mod.rs for gyre's definitions):
  dot       s_ij = q_i . k_j                                   (Luong 2015)
  general   s_ij = q_i . (W k_j),  W [Hq, Hk]                  (Luong 2015)
  additive  s_ij = v . tanh(Wq q_i + Wk k_j + b),  Wq [A, Hq], Wk [A, Hk], b, v [A]
                                                               (Bahdanau 2015)
alpha_i = softmax over the valid steps j < L_b (0 elsewhere; all 0 when L_b = 0),
context_i = sum_j alpha_ij k_j.  Loss L = sum(context * grad_context) + sum(alpha * grad_weights).

Written one query and one memory step at a time with explicit loops (unlike gyre's batched
matrix products), in float64.  The backward pass is derived by hand, and every gradient element
is checked against central finite differences before anything is written.

And the attention decoder (decoder_cases): the same scores after a torch.nn-style cell, with
Luong's attentional state and input feeding, forward written out with loops; its gradients by
central finite differences (rechecked within FD_CHECK_TOL: finite differences carry the
forward's rounding, which differs from CPU to CPU).

Usage:
    python3 attention.py           # (re)write attention.json next to this file
    python3 attention.py --check   # regenerate in memory, compare to attention.json
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PATH = os.path.join(HERE, "attention.json")
FD_EPS = 1e-6
FD_ABS_TOL = 1e-8
FD_REL_TOL = 1e-6
CHECK_TOL = 1e-12
# The decoder's gradients are central finite differences: (L(p + e) - L(p - e)) / 2e carries the
# forward's rounding, about 1.1e-16 |L| / 2e = 5.5e-11 |L| at FD_EPS, and that rounding follows
# the CPU's float64 kernels (NumPy's SIMD loops and BLAS). Regenerated on an AMD EPYC (Zen 5)
# they moved by up to 3.3e-10 from the file written on an Intel Xeon; the bound of the finite
# differences themselves (FD_ABS_TOL) is the recheck's tolerance.
FD_CHECK_TOL = FD_ABS_TOL

# (name, score, batch, query steps, query width, memory steps, memory width, units, lengths)
CASES = [
    ("dot_varlen", "dot", 3, 4, 5, 6, 5, 0, [6, 3, 1]),
    ("dot_with_empty", "dot", 2, 2, 3, 4, 3, 0, [0, 4]),
    ("general_varlen", "general", 3, 4, 5, 6, 3, 0, [2, 6, 5]),
    ("general_single", "general", 1, 1, 2, 1, 4, 0, [1]),
    ("additive_varlen", "additive", 3, 4, 5, 6, 3, 7, [6, 1, 4]),
    ("additive_with_empty", "additive", 2, 3, 2, 5, 4, 3, [5, 0]),
]

PARAMS = {"dot": [], "general": ["weight"], "additive": ["query_weight", "key_weight", "bias", "v"]}


def make_inputs(seed, score, b, tq, hq, tk, hk, a):
    rng = np.random.default_rng(seed)
    p = {
        "query": rng.uniform(-1, 1, (b, tq, hq)),
        "memory": rng.uniform(-1, 1, (b, tk, hk)),
        "grad_context": rng.uniform(-1, 1, (b, tq, hk)),
        "grad_weights": rng.uniform(-1, 1, (b, tq, tk)),
    }
    if score == "general":
        p["weight"] = rng.uniform(-0.8, 0.8, (hq, hk))
    if score == "additive":
        p["query_weight"] = rng.uniform(-0.8, 0.8, (a, hq))
        p["key_weight"] = rng.uniform(-0.8, 0.8, (a, hk))
        p["bias"] = rng.uniform(-0.5, 0.5, (a,))
        p["v"] = rng.uniform(-1, 1, (a,))
    return p


def score_of(score, p, q, k):
    if score == "dot":
        return float(np.sum(q * k))
    if score == "general":
        return float(q @ (p["weight"] @ k))
    t = np.tanh(p["query_weight"] @ q + p["key_weight"] @ k + p["bias"])
    return float(p["v"] @ t)


def forward(score, p, lengths):
    query, memory = p["query"], p["memory"]
    b, tq, _ = query.shape
    tk, hk = memory.shape[1], memory.shape[2]
    context = np.zeros((b, tq, hk))
    weights = np.zeros((b, tq, tk))
    for n in range(b):
        L = lengths[n]
        if L == 0:
            continue
        for i in range(tq):
            s = np.array([score_of(score, p, query[n, i], memory[n, j]) for j in range(L)])
            e = np.exp(s - s.max())
            alpha = e / e.sum()
            weights[n, i, :L] = alpha
            for j in range(L):
                context[n, i] += alpha[j] * memory[n, j]
    return context, weights


def loss(score, p, lengths):
    c, w = forward(score, p, lengths)
    return float(np.sum(c * p["grad_context"]) + np.sum(w * p["grad_weights"]))


def backward(score, p, lengths):
    query, memory = p["query"], p["memory"]
    gc, gw = p["grad_context"], p["grad_weights"]
    b, tq, _ = query.shape
    g = {"query": np.zeros_like(query), "memory": np.zeros_like(memory)}
    for name in PARAMS[score]:
        g[name] = np.zeros_like(p[name])
    for n in range(b):
        L = lengths[n]
        for i in range(tq):
            if L == 0:
                continue
            q = query[n, i]
            s = np.array([score_of(score, p, q, memory[n, j]) for j in range(L)])
            e = np.exp(s - s.max())
            alpha = e / e.sum()
            # d alpha_j = gc_i . k_j + gw_ij ; value path dk_j += alpha_j gc_i
            d_alpha = np.array([gc[n, i] @ memory[n, j] + gw[n, i, j] for j in range(L)])
            for j in range(L):
                g["memory"][n, j] += alpha[j] * gc[n, i]
            ds = alpha * (d_alpha - np.sum(alpha * d_alpha))
            for j in range(L):
                k = memory[n, j]
                if score == "dot":
                    g["query"][n, i] += ds[j] * k
                    g["memory"][n, j] += ds[j] * q
                elif score == "general":
                    W = p["weight"]
                    g["query"][n, i] += ds[j] * (W @ k)
                    g["memory"][n, j] += ds[j] * (W.T @ q)
                    g["weight"] += ds[j] * np.outer(q, k)
                else:
                    Wq, Wk, v = p["query_weight"], p["key_weight"], p["v"]
                    t = np.tanh(Wq @ q + Wk @ k + p["bias"])
                    gz = ds[j] * v * (1.0 - t * t)
                    g["query"][n, i] += Wq.T @ gz
                    g["memory"][n, j] += Wk.T @ gz
                    g["query_weight"] += np.outer(gz, q)
                    g["key_weight"] += np.outer(gz, k)
                    g["bias"] += gz
                    g["v"] += ds[j] * t
    return g


def finite_difference_check(score, p, lengths, grads):
    worst = 0.0
    for name, analytic in grads.items():
        arr = p[name]
        flat = arr.reshape(-1)
        for idx in range(flat.size):
            orig = flat[idx]
            flat[idx] = orig + FD_EPS
            up = loss(score, p, lengths)
            flat[idx] = orig - FD_EPS
            down = loss(score, p, lengths)
            flat[idx] = orig
            numeric = (up - down) / (2 * FD_EPS)
            a = analytic.reshape(-1)[idx]
            err = abs(a - numeric)
            if not (err < FD_ABS_TOL or err <= FD_REL_TOL * abs(numeric)):
                raise AssertionError(f"{score} {name}[{idx}]: analytic {a!r}, numeric {numeric!r}")
            worst = max(worst, err)
    return worst


# --------------------------------------------------------------------------
# The attention decoder (crates/gyre-core/src/attention/decoder.rs): per step the cell reads
# x_t (or [x_t; h~_{t-1}] with input feeding, h~_{-1} = 0), attention of its h_t over the
# memory gives ctx_t, and h~_t = tanh(Wc [ctx_t; h_t] + bc).  Cells as torch.nn's
# (LSTM i,f,g,o; GRU r,z,n).  Forward written out here; its gradients by central finite
# differences of the same loss (this reference checks the decoder's semantics and the
# gradients to ~1e-9; gyre's own backward is also checked by finite differences in Rust).
# --------------------------------------------------------------------------

# (name, cell, score, input feeding, batch, query steps, input, hidden, memory steps, memory width, units, lengths)
DECODER_CASES = [
    ("decoder_lstm_general_feed", "lstm", "general", True, 2, 3, 2, 3, 4, 2, 0, [4, 2]),
    ("decoder_lstm_additive", "lstm", "additive", False, 2, 3, 2, 3, 4, 2, 3, [3, 0]),
    ("decoder_lstm_dot_feed", "lstm", "dot", True, 2, 2, 1, 3, 3, 3, 0, [1, 3]),
    ("decoder_gru_dot_feed", "gru", "dot", True, 2, 3, 2, 3, 4, 3, 0, [4, 1]),
    ("decoder_gru_additive_feed", "gru", "additive", True, 2, 3, 2, 2, 4, 3, 3, [2, 4]),
    ("decoder_gru_reset_before_general", "gru_reset_before", "general", False, 2, 3, 2, 3, 3, 2, 0, [3, 2]),
    ("decoder_rnn_tanh_dot", "rnn_tanh", "dot", False, 2, 3, 2, 3, 4, 3, 0, [2, 4]),
    ("decoder_rnn_relu_additive_feed", "rnn_relu", "additive", True, 2, 3, 2, 3, 4, 2, 3, [4, 3]),
]

DECODER_GATES = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "rnn_tanh": 1, "rnn_relu": 1}


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def cell_step(cell, p, x, h, c):
    a_i = p["weight_ih"] @ x + p["bias_ih"]
    a_h = p["weight_hh"] @ h + p["bias_hh"]
    if cell in ("rnn_tanh", "rnn_relu"):
        a = a_i + a_h
        return (np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0.0)), None
    if cell == "lstm":
        i, f, g, o = np.split(a_i + a_h, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c), c
    H = h.shape[0]
    r = sigmoid(a_i[:H] + a_h[:H])
    z = sigmoid(a_i[H:2 * H] + a_h[H:2 * H])
    if cell == "gru":
        n = np.tanh(a_i[2 * H:] + r * a_h[2 * H:])
    else:
        n = np.tanh(a_i[2 * H:] + p["weight_hh"][2 * H:] @ (r * h) + p["bias_hh"][2 * H:])
    return (1.0 - z) * n + z * h, None


def decoder_forward(cell, score, feed, p, lengths):
    x, memory = p["x"], p["memory"]
    B, Tq, _ = x.shape
    Tk, Hk = memory.shape[1], memory.shape[2]
    H = p["weight_hh"].shape[1]
    out = np.zeros((B, Tq, H))
    weights = np.zeros((B, Tq, Tk))
    h_n = np.zeros((B, H))
    c_n = np.zeros((B, H))
    for n in range(B):
        h = p["h0"][n].copy()
        c = p["c0"][n].copy() if cell == "lstm" else None
        h_tilde = np.zeros(H)
        L = lengths[n]
        for t in range(Tq):
            inp = np.concatenate([x[n, t], h_tilde]) if feed else x[n, t]
            h, c = cell_step(cell, p, inp, h, c)
            ctx = np.zeros(Hk)
            if L > 0:
                s = np.array([score_of(score, p, h, memory[n, j]) for j in range(L)])
                e = np.exp(s - s.max())
                alpha = e / e.sum()
                weights[n, t, :L] = alpha
                for j in range(L):
                    ctx += alpha[j] * memory[n, j]
            h_tilde = np.tanh(p["combine_weight"] @ np.concatenate([ctx, h]) + p["combine_bias"])
            out[n, t] = h_tilde
        h_n[n] = h
        if cell == "lstm":
            c_n[n] = c
    return out, weights, h_n, c_n


def decoder_loss(cell, score, feed, p, lengths):
    out, w, h_n, c_n = decoder_forward(cell, score, feed, p, lengths)
    loss = np.sum(out * p["grad_output"]) + np.sum(w * p["grad_weights"]) + np.sum(h_n * p["grad_hidden"])
    if cell == "lstm":
        loss += np.sum(c_n * p["grad_cell"])
    return float(loss)


def decoder_inputs(seed, cell, score, feed, b, tq, i, h, tk, hk, a):
    rng = np.random.default_rng(seed)
    g = DECODER_GATES[cell]
    p = {
        "x": rng.uniform(-1, 1, (b, tq, i)),
        "memory": rng.uniform(-1, 1, (b, tk, hk)),
        "h0": rng.uniform(-0.5, 0.5, (b, h)),
        "weight_ih": rng.uniform(-0.7, 0.7, (g * h, i + h if feed else i)),
        "weight_hh": rng.uniform(-0.7, 0.7, (g * h, h)),
        "bias_ih": rng.uniform(-0.3, 0.3, (g * h,)),
        "bias_hh": rng.uniform(-0.3, 0.3, (g * h,)),
        "combine_weight": rng.uniform(-0.7, 0.7, (h, hk + h)),
        "combine_bias": rng.uniform(-0.3, 0.3, (h,)),
        "grad_output": rng.uniform(-1, 1, (b, tq, h)),
        "grad_weights": rng.uniform(-1, 1, (b, tq, tk)),
        "grad_hidden": rng.uniform(-1, 1, (b, h)),
    }
    if cell == "lstm":
        p["c0"] = rng.uniform(-0.5, 0.5, (b, h))
        p["grad_cell"] = rng.uniform(-1, 1, (b, h))
    if score == "general":
        p["weight"] = rng.uniform(-0.8, 0.8, (h, hk))
    if score == "additive":
        p["query_weight"] = rng.uniform(-0.8, 0.8, (a, h))
        p["key_weight"] = rng.uniform(-0.8, 0.8, (a, hk))
        p["bias"] = rng.uniform(-0.5, 0.5, (a,))
        p["v"] = rng.uniform(-1, 1, (a,))
    return p


DECODER_DIFFERENTIABLE = ["x", "memory", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh",
                          "combine_weight", "combine_bias", "weight", "query_weight", "key_weight", "bias", "v"]


def decoder_gradients(cell, score, feed, p, lengths):
    grads = {}
    for name in DECODER_DIFFERENTIABLE:
        if name not in p:
            continue
        flat_p = p[name].reshape(-1)
        g = np.zeros(flat_p.size)
        for idx in range(flat_p.size):
            orig = flat_p[idx]
            flat_p[idx] = orig + FD_EPS
            up = decoder_loss(cell, score, feed, p, lengths)
            flat_p[idx] = orig - FD_EPS
            down = decoder_loss(cell, score, feed, p, lengths)
            flat_p[idx] = orig
            g[idx] = (up - down) / (2 * FD_EPS)
        grads[name] = g
    return grads


def build_decoder(verbose):
    cases = []
    for seed, (name, cell, score, feed, b, tq, i, h, tk, hk, a, lengths) in enumerate(DECODER_CASES):
        p = decoder_inputs(200 + seed, cell, score, feed, b, tq, i, h, tk, hk, a)
        out, w, h_n, c_n = decoder_forward(cell, score, feed, p, lengths)
        grads = decoder_gradients(cell, score, feed, p, lengths)
        outputs = {"output": flat(out), "weights": flat(w), "hidden": flat(h_n)}
        if cell == "lstm":
            outputs["cell"] = flat(c_n)
        cases.append({
            "name": name, "cell": cell, "score": score, "input_feeding": feed, "batch": b, "query_steps": tq,
            "input_size": i, "hidden_size": h, "memory_steps": tk, "memory_size": hk, "units": a,
            "lengths": lengths, "inputs": {k: flat(v) for k, v in p.items()}, "outputs": outputs,
            "gradients": {k: flat(v) for k, v in grads.items()},
        })
        if verbose:
            print(f"  {name:34s} forward and {sum(len(v) for v in grads.values())} finite-difference gradients", file=sys.stderr)
    return cases


def flat(a):
    return [float(v) for v in np.asarray(a).reshape(-1)]


def build(verbose):
    cases, worst = [], 0.0
    for seed, (name, score, b, tq, hq, tk, hk, a, lengths) in enumerate(CASES):
        p = make_inputs(100 + seed, score, b, tq, hq, tk, hk, a)
        context, weights = forward(score, p, lengths)
        grads = backward(score, p, lengths)
        err = finite_difference_check(score, p, lengths, grads)
        worst = max(worst, err)
        if verbose:
            print(f"  {name:24s} fd max abs err {err:.3e}", file=sys.stderr)
        inputs = {k: flat(v) for k, v in p.items()}
        cases.append({
            "name": name, "score": score, "batch": b, "query_steps": tq, "query_size": hq,
            "memory_steps": tk, "memory_size": hk, "units": a, "lengths": lengths,
            "inputs": inputs,
            "outputs": {"context": flat(context), "weights": flat(weights)},
            "gradients": {k: flat(v) for k, v in grads.items()},
        })
    doc = {"generator": "attention.py", "numpy_version": np.__version__, "cases": cases,
           "decoder_cases": build_decoder(verbose)}
    return doc, worst


def dumps(doc):
    return json.dumps(doc, indent=None, separators=(",", ":"), sort_keys=True) + "\n"


def compare(expected, actual):
    return compare_list(expected["cases"], actual.get("cases", [])) + compare_list(
        expected["decoder_cases"], actual.get("decoder_cases", []), tol=FD_CHECK_TOL)


def compare_list(expected, actual, tol=CHECK_TOL):
    problems = []
    exp, act = {c["name"]: c for c in expected}, {c["name"]: c for c in actual}
    for n in sorted(exp.keys() ^ act.keys()):
        problems.append(f"{n}: {'missing from' if n in exp else 'unexpected in'} attention.json")
    for n in sorted(exp.keys() & act.keys()):
        e, a = exp[n], act[n]
        for k in sorted(set(e) - {"name", "inputs", "outputs", "gradients"}):
            if e[k] != a.get(k):
                problems.append(f"{n}/{k}: expected {e[k]!r}, got {a.get(k)!r}")
        for section in ("inputs", "outputs", "gradients"):
            es, as_ = e[section], a.get(section, {})
            for field in sorted(es.keys() | as_.keys()):
                if field not in es or field not in as_:
                    problems.append(f"{n}/{section}/{field}: {'missing' if field in es else 'unexpected'}")
                    continue
                ev, av = np.asarray(es[field], float), np.asarray(as_[field], float)
                if ev.shape != av.shape or (ev.size and not float(np.max(np.abs(ev - av))) <= tol):
                    problems.append(f"{n}/{section}/{field}: differs by more than {tol:g}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="regenerate in memory and compare against attention.json")
    args = ap.parse_args()
    doc, worst = build(verbose=not args.check)
    if args.check:
        try:
            with open(OUT_PATH, "r", encoding="utf-8") as fh:
                committed = json.load(fh)
        except (OSError, ValueError) as exc:
            print(f"CHECK FAILED: cannot read {OUT_PATH}: {exc}")
            return 1
        problems = compare(doc, committed)
        for pr in problems:
            print(f"MISMATCH {pr}")
        if problems:
            print(f"CHECK FAILED: {len(problems)} field(s) differ")
            return 1
        print(f"OK: attention.json matches the regenerated reference ({len(doc['cases'])} cases; fd max abs err {worst:.2e})")
        return 0
    with open(OUT_PATH, "w", encoding="utf-8") as fh:
        fh.write(dumps(doc))
    print(f"wrote {OUT_PATH} ({len(doc['cases'])} cases; fd max abs err {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
