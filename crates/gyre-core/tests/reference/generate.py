#!/usr/bin/env python3
"""Independent NumPy reference for PyTorch-style recurrent cells (forward + backward).

Cells: rnn_tanh, rnn_relu, lstm, gru, gru_reset_before.
Conventions follow torch.nn.RNN / LSTM / GRU (single layer, unidirectional,
batch_first=True); see README.md next to this file.  Everything is float64.

The backward pass is written by hand (backpropagation through time) and every
gradient element is verified against central finite differences before
anything is written.  Any failed check raises and the script exits non-zero.

Usage:
    python3 generate.py           # (re)write recurrent.json next to this file
    python3 generate.py --check   # regenerate in memory, compare to recurrent.json
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PATH = os.path.join(HERE, "recurrent.json")

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"]
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3}

# (batch, steps, input_size, hidden_size)
SHAPES = [
    (1, 1, 4, 5),
    (3, 6, 4, 5),
    (2, 9, 4, 5),
    (2, 3, 1, 3),
]

# gru and gru_reset_before share a seed family -> identical inputs per shape.
SEED_FAMILY = {"rnn_tanh": 1, "rnn_relu": 2, "lstm": 3, "gru": 4, "gru_reset_before": 4}

FD_EPS = 1e-6
FD_ABS_TOL = 1e-7
FD_REL_TOL = 1e-6
RELU_MIN_ABS_PREACT = 1e-3
CHECK_TOL = 1e-12

PARAM_NAMES = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# --------------------------------------------------------------------------
# Forward passes.  Each returns (output [B,T,H], h_n [B,H], c_n or None, cache)
# --------------------------------------------------------------------------

def forward(cell, p):
    x = p["x"]
    B, T, _ = x.shape
    w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    b_ih, b_hh = p["bias_ih_l0"], p["bias_hh_l0"]
    H = w_hh.shape[1]
    h = p["h0"].copy()
    c = p["c0"].copy() if cell == "lstm" else None
    out = np.zeros((B, T, H))
    cache = []
    for t in range(T):
        xt = x[:, t, :]
        h_prev, c_prev = h, c
        if cell in ("rnn_tanh", "rnn_relu"):
            a = xt @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
            h = np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0.0)
            cache.append({"x": xt, "h_prev": h_prev, "a": a, "h": h})
        elif cell == "lstm":
            a = xt @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
            ai, af, ag, ao = np.split(a, 4, axis=1)
            i, f, g, o = sigmoid(ai), sigmoid(af), np.tanh(ag), sigmoid(ao)
            c = f * c_prev + i * g
            tc = np.tanh(c)
            h = o * tc
            cache.append({"x": xt, "h_prev": h_prev, "c_prev": c_prev,
                          "i": i, "f": f, "g": g, "o": o, "tc": tc})
        elif cell == "gru":
            gi = xt @ w_ih.T + b_ih
            gh = h_prev @ w_hh.T + b_hh
            gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)
            gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)
            r = sigmoid(gi_r + gh_r)
            z = sigmoid(gi_z + gh_z)
            n = np.tanh(gi_n + r * gh_n)
            h = (1.0 - z) * n + z * h_prev
            cache.append({"x": xt, "h_prev": h_prev, "r": r, "z": z, "n": n,
                          "gh_n": gh_n})
        elif cell == "gru_reset_before":
            w_hr, w_hz, w_hn = np.split(w_hh, 3, axis=0)
            b_hr, b_hz, b_hn = np.split(b_hh, 3)
            gi = xt @ w_ih.T + b_ih
            gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)
            r = sigmoid(gi_r + h_prev @ w_hr.T + b_hr)
            z = sigmoid(gi_z + h_prev @ w_hz.T + b_hz)
            rh = r * h_prev
            n = np.tanh(gi_n + rh @ w_hn.T + b_hn)
            h = (1.0 - z) * n + z * h_prev
            cache.append({"x": xt, "h_prev": h_prev, "r": r, "z": z, "n": n,
                          "rh": rh})
        else:
            raise ValueError(cell)
        out[:, t, :] = h
    return out, h, c, cache


def loss(cell, p):
    out, hn, cn, _ = forward(cell, p)
    val = np.sum(out * p["grad_output"]) + np.sum(hn * p["grad_h_n"])
    if cell == "lstm":
        val += np.sum(cn * p["grad_c_n"])
    return val


# --------------------------------------------------------------------------
# Hand-written backward (BPTT)
# --------------------------------------------------------------------------

def backward(cell, p):
    x = p["x"]
    B, T, _ = x.shape
    w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    H = w_hh.shape[1]
    _, _, _, cache = forward(cell, p)
    g_out = p["grad_output"]

    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    db_ih = np.zeros(w_ih.shape[0])
    db_hh = np.zeros(w_hh.shape[0])
    dh_carry = p["grad_h_n"].copy()
    dc_carry = p["grad_c_n"].copy() if cell == "lstm" else None

    for t in reversed(range(T)):
        k = cache[t]
        dh = dh_carry + g_out[:, t, :]
        if cell in ("rnn_tanh", "rnn_relu"):
            if cell == "rnn_tanh":
                da = dh * (1.0 - k["h"] ** 2)
            else:
                da = dh * (k["a"] > 0.0)
            dgi = dgh = da
            dh_prev = dgh @ w_hh
        elif cell == "lstm":
            i, f, g, o, tc = k["i"], k["f"], k["g"], k["o"], k["tc"]
            dc = dc_carry + dh * o * (1.0 - tc ** 2)
            d_o = dh * tc
            d_i = dc * g
            d_g = dc * i
            d_f = dc * k["c_prev"]
            dc_carry = dc * f
            da = np.concatenate([
                d_i * i * (1.0 - i),
                d_f * f * (1.0 - f),
                d_g * (1.0 - g ** 2),
                d_o * o * (1.0 - o),
            ], axis=1)
            dgi = dgh = da
            dh_prev = dgh @ w_hh
        elif cell == "gru":
            r, z, n, gh_n, hp = k["r"], k["z"], k["n"], k["gh_n"], k["h_prev"]
            dn = dh * (1.0 - z)
            dz = dh * (hp - n)
            dan = dn * (1.0 - n ** 2)
            dr = dan * gh_n
            dar = dr * r * (1.0 - r)
            daz = dz * z * (1.0 - z)
            dgi = np.concatenate([dar, daz, dan], axis=1)
            dgh = np.concatenate([dar, daz, dan * r], axis=1)
            dh_prev = dh * z + dgh @ w_hh
        elif cell == "gru_reset_before":
            r, z, n, rh, hp = k["r"], k["z"], k["n"], k["rh"], k["h_prev"]
            w_hn = w_hh[2 * H:, :]
            dn = dh * (1.0 - z)
            dz = dh * (hp - n)
            dan = dn * (1.0 - n ** 2)
            drh = dan @ w_hn
            dr = drh * hp
            dar = dr * r * (1.0 - r)
            daz = dz * z * (1.0 - z)
            dgi = np.concatenate([dar, daz, dan], axis=1)
            # hidden-side contributions: r,z gates see h_prev, n gate sees r*h_prev
            d_rz = np.concatenate([dar, daz], axis=1)
            dw_hh[: 2 * H, :] += d_rz.T @ hp
            dw_hh[2 * H:, :] += dan.T @ rh
            db_hh += np.concatenate([dar, daz, dan], axis=1).sum(axis=0)
            dh_prev = dh * z + d_rz @ w_hh[: 2 * H, :] + drh * r
            dgh = None
        else:
            raise ValueError(cell)

        dw_ih += dgi.T @ k["x"]
        db_ih += dgi.sum(axis=0)
        dx[:, t, :] = dgi @ w_ih
        if dgh is not None:
            dw_hh += dgh.T @ k["h_prev"]
            db_hh += dgh.sum(axis=0)
        dh_carry = dh_prev

    grads = {"x": dx, "h0": dh_carry}
    if cell == "lstm":
        grads["c0"] = dc_carry
    grads.update({"weight_ih_l0": dw_ih, "weight_hh_l0": dw_hh,
                  "bias_ih_l0": db_ih, "bias_hh_l0": db_hh})
    return grads


# --------------------------------------------------------------------------
# Finite-difference verification
# --------------------------------------------------------------------------

def relu_mask(p):
    _, _, _, cache = forward("rnn_relu", p)
    return np.stack([k["a"] > 0.0 for k in cache])


def fd_check(name, cell, p, grads):
    """Central differences on every element of every gradient. Returns max abs error."""
    base_mask = relu_mask(p) if cell == "rnn_relu" else None
    max_err = 0.0
    for key, g in grads.items():
        arr = p[key]
        assert arr.shape == g.shape, (name, key, arr.shape, g.shape)
        fd = np.zeros_like(arr)
        view = arr.reshape(-1)  # view into p[key]
        for idx in range(view.size):
            orig = view[idx]
            view[idx] = orig + FD_EPS
            if base_mask is not None:
                assert np.array_equal(relu_mask(p), base_mask), (name, key, idx, "relu pattern changed")
            lp = loss(cell, p)
            view[idx] = orig - FD_EPS
            if base_mask is not None:
                assert np.array_equal(relu_mask(p), base_mask), (name, key, idx, "relu pattern changed")
            lm = loss(cell, p)
            view[idx] = orig
            fd.reshape(-1)[idx] = (lp - lm) / (2.0 * FD_EPS)
        err = np.abs(fd - g)
        ok = (err < FD_ABS_TOL) | (err <= FD_REL_TOL * np.abs(fd))
        if not np.all(ok):
            bad = int(np.argmax(np.where(ok, 0.0, err).reshape(-1)))
            raise AssertionError(
                f"finite-difference check FAILED: case={name} grad={key} flat_index={bad} "
                f"analytic={float(g.reshape(-1)[bad])!r} fd={float(fd.reshape(-1)[bad])!r} "
                f"abs_err={err.reshape(-1)[bad]:.3e}")
        max_err = max(max_err, float(err.max()))
    return max_err


# --------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------

def draw(rng, cell, B, T, I, H):
    G = GATES[cell]
    p = {
        "weight_ih_l0": rng.uniform(-0.5, 0.5, (G * H, I)),
        "weight_hh_l0": rng.uniform(-0.5, 0.5, (G * H, H)),
        "bias_ih_l0": rng.uniform(-0.5, 0.5, G * H),
        "bias_hh_l0": rng.uniform(-0.5, 0.5, G * H),
        "x": rng.uniform(-1.0, 1.0, (B, T, I)),
        "h0": rng.uniform(-1.0, 1.0, (B, H)),
    }
    if cell == "lstm":
        p["c0"] = rng.uniform(-1.0, 1.0, (B, H))
    p["grad_output"] = rng.uniform(-1.0, 1.0, (B, T, H))
    p["grad_h_n"] = rng.uniform(-1.0, 1.0, (B, H))
    if cell == "lstm":
        p["grad_c_n"] = rng.uniform(-1.0, 1.0, (B, H))
    return p


def relu_ok(p):
    _, _, _, cache = forward("rnn_relu", p)
    a = np.stack([k["a"] for k in cache])
    if np.min(np.abs(a)) < RELU_MIN_ABS_PREACT:
        return False
    frac = float(np.mean(a > 0.0))
    # require a genuine mix of active and inactive units
    return 0.25 <= frac <= 0.75


def make_inputs(cell, shape_idx):
    B, T, I, H = SHAPES[shape_idx]
    rng = np.random.default_rng(1000 * SEED_FAMILY[cell] + shape_idx)
    for _attempt in range(1000):
        p = draw(rng, cell, B, T, I, H)
        if cell != "rnn_relu" or relu_ok(p):
            break
    else:
        raise RuntimeError(f"could not draw valid rnn_relu inputs for shape {SHAPES[shape_idx]}")
    for key in ("h0", "c0", "x"):
        if key in p:
            assert np.all(p[key] != 0.0), (cell, key, "must be non-zero")
    return p


def case_name(cell, B, T, I, H):
    name = f"{cell}_b{B}_t{T}"
    if (I, H) != (4, 5):
        name += f"_i{I}_h{H}"
    return name


INPUT_ORDER = ["x", "h0", "c0", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
               "grad_output", "grad_h_n", "grad_c_n"]


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def build(verbose=True):
    cases = []
    max_fd = {c: 0.0 for c in CELLS}
    for cell in CELLS:
        for si, (B, T, I, H) in enumerate(SHAPES):
            name = case_name(cell, B, T, I, H)
            p = make_inputs(cell, si)
            out, hn, cn, _ = forward(cell, p)
            # consistency: last output step is h_n
            assert np.array_equal(out[:, -1, :], hn), name
            grads = backward(cell, p)
            err = fd_check(name, cell, p, grads)
            max_fd[cell] = max(max_fd[cell], err)

            if cell in ("gru", "gru_reset_before"):
                other = "gru_reset_before" if cell == "gru" else "gru"
                o2, _, _, _ = forward(other, p)
                diff = float(np.max(np.abs(out - o2)))
                assert diff > 1e-6, f"{name}: gru and gru_reset_before outputs do not differ ({diff})"

            inputs = {k: flat(p[k]) for k in INPUT_ORDER if k in p}
            outputs = {"output": flat(out), "h_n": flat(hn)}
            if cell == "lstm":
                outputs["c_n"] = flat(cn)
            cases.append({
                "name": name, "cell": cell, "batch": B, "steps": T,
                "input_size": I, "hidden_size": H,
                "inputs": inputs, "outputs": outputs,
                "gradients": {k: flat(v) for k, v in grads.items()},
            })
            if verbose:
                print(f"  {name:32s} fd max abs err {err:.3e}", file=sys.stderr)
    doc = {"generator": "generate.py", "numpy_version": np.__version__, "cases": cases}
    return doc, max_fd


def dumps(doc):
    return json.dumps(doc, indent=None, separators=(",", ":"), sort_keys=True) + "\n"


def compare(expected, actual):
    """Return list of human-readable differences (expected = freshly generated)."""
    problems = []
    exp_cases = {c["name"]: c for c in expected["cases"]}
    act_cases = {c["name"]: c for c in actual.get("cases", [])}
    for n in exp_cases.keys() - act_cases.keys():
        problems.append(f"{n}: missing from recurrent.json")
    for n in act_cases.keys() - exp_cases.keys():
        problems.append(f"{n}: unexpected case in recurrent.json")
    for n in sorted(exp_cases.keys() & act_cases.keys()):
        e, a = exp_cases[n], act_cases[n]
        for k in ("cell", "batch", "steps", "input_size", "hidden_size"):
            if e[k] != a.get(k):
                problems.append(f"{n}/{k}: expected {e[k]!r}, got {a.get(k)!r}")
        for section in ("inputs", "outputs", "gradients"):
            es, as_ = e[section], a.get(section, {})
            for field in sorted(es.keys() | as_.keys()):
                if field not in as_:
                    problems.append(f"{n}/{section}/{field}: missing")
                    continue
                if field not in es:
                    problems.append(f"{n}/{section}/{field}: unexpected")
                    continue
                ev, av = np.asarray(es[field], float), np.asarray(as_[field], float)
                if ev.shape != av.shape:
                    problems.append(f"{n}/{section}/{field}: length {av.shape} != {ev.shape}")
                    continue
                d = float(np.max(np.abs(ev - av))) if ev.size else 0.0
                if not d <= CHECK_TOL:
                    problems.append(f"{n}/{section}/{field}: max abs diff {d:.3e} > {CHECK_TOL:g}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory and compare against recurrent.json")
    args = ap.parse_args()

    doc, max_fd = build(verbose=not args.check)
    ncases = len(doc["cases"])
    fd_summary = ", ".join(f"{c}={max_fd[c]:.2e}" for c in CELLS)

    if args.check:
        try:
            with open(OUT_PATH, "r", encoding="utf-8") as fh:
                committed = json.load(fh)
        except (OSError, ValueError) as exc:
            print(f"CHECK FAILED: cannot read {OUT_PATH}: {exc}")
            return 1
        problems = compare(doc, committed)
        if problems:
            for pr in problems:
                print(f"MISMATCH {pr}")
            print(f"CHECK FAILED: {len(problems)} field(s) differ by more than {CHECK_TOL:g}")
            return 1
        print(f"OK: recurrent.json matches regenerated reference ({ncases} cases, "
              f"tol {CHECK_TOL:g}; fd max abs err {fd_summary})")
        return 0

    text = dumps(doc)
    with open(OUT_PATH, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    print(f"wrote {OUT_PATH}: {ncases} cases, {len(text.encode())} bytes; fd max abs err {fd_summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
