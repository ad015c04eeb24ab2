#!/usr/bin/env python3
"""PyTorch (CPU) on one of gyre's benchmark workloads, driven by benchmark/run.mjs.

    python benchmark/torch_bench.py '<task JSON>'    # {"workload": {...}, "settings": {...}}
    python benchmark/torch_bench.py --versions       # what run.mjs records about this PyTorch

The task is what run.mjs gives its Node workers: the workload of benchmark/lib/workloads.mjs
(cell, input, hidden, steps, batch, output, loss, oneHot) and the run's settings (threads,
batches per repetition, repetitions, time budget). The model is gyre's: one nn.LSTM or nn.GRU
(batch_first, PyTorch's two biases, as in gyre) and an nn.Linear readout at every step;
softmax on the readout for the cross-entropy workload (lstm-s) at inference, as gyre's model
outputs it; for training, nn.CrossEntropyLoss on the readout (the same softmax and
cross-entropy) or nn.MSELoss, and torch.optim.Adam (lr 0.001, PyTorch's defaults otherwise,
which are gyre's). Data: the same shapes and distributions as gyre's (uniform in [-1, 1),
one-hot rows for lstm-s), drawn by PyTorch's seeded generator.

One repetition processes `batches[workload]` batches: at inference a forward pass per batch
under torch.inference_mode() (the model in eval mode), in training a forward pass, the loss,
backward and an Adam step per batch. Threads: torch.set_num_threads(n) for each n of the
settings (interop threads 1). Timing follows benchmark/lib/timing.mjs `measure`: one warm-up
repetition, then repetitions until `reps` are done or the time budget is spent once `minReps`
are, and short ones go on until `minTotalMs`; sequences per second from the median. A warm-up
that took the whole budget or more is the one sample instead ("warm-up only", as for the slow
baselines). PyTorch's own threading defaults are kept (OpenMP threads that spin while they
wait: on a core another process keeps busy, 2 threads can run many times slower than 1).

Prints one line `RESULT <json>` on stdout ({"ok": true, "result": [rows]}, as the Node
workers do); anything else is diagnostics. PyTorch is never a dependency of gyre: run.mjs
calls this script only with the python it is given (--torch-python or GYRE_BENCH_TORCH_PYTHON).
"""

import json
import platform
import sys
import time
import traceback


def versions():
    import torch

    out = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "threadsDefault": torch.get_num_threads(),
    }
    try:
        out["cpuCapability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older PyTorch
        out["cpuCapability"] = None
    info = torch.__config__.parallel_info()
    out["parallelBackend"] = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if "parallel backend" in line), None
    )
    return out


def median(values):
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def measure(rep, seqs_per_rep, reps, min_reps, budget_ms, min_total_ms, max_reps=1000):
    """benchmark/lib/timing.mjs `measure` with one warm-up repetition, and a warm-up that took
    the whole time budget or more as the one sample ("warm-up only"), so that a pathological
    case (OpenMP threads waiting on a core another process keeps busy) cannot take minutes per
    sample."""
    t0 = time.perf_counter()
    rep()
    warmup_ms = [(time.perf_counter() - t0) * 1000]
    if warmup_ms[0] >= budget_ms:
        return {
            "seqPerSec": seqs_per_rep * 1000 / warmup_ms[0],
            "seqsPerRep": seqs_per_rep,
            "reps": 1,
            "timesMs": warmup_ms,
            "warmupMs": warmup_ms,
            "warmupOnly": True,
        }
    times_ms = []
    start = time.perf_counter()

    def more():
        n = len(times_ms)
        elapsed = (time.perf_counter() - start) * 1000
        if n < min_reps:
            return True
        if n < reps and elapsed < budget_ms:
            return True
        return elapsed < min_total_ms and n < max_reps

    while more():
        t0 = time.perf_counter()
        rep()
        times_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "seqPerSec": seqs_per_rep * 1000 / median(times_ms),
        "seqsPerRep": seqs_per_rep,
        "reps": len(times_ms),
        "timesMs": times_ms,
        "warmupMs": warmup_ms,
        "warmupOnly": False,
    }


def bench(w, s):
    import torch
    from torch import nn

    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    batches = s["batches"][w["name"]]
    B, T, I, H, O = w["batch"], w["steps"], w["input"], w["hidden"], w["output"]
    sequences = batches * B
    cross_entropy = w["loss"] == "crossEntropy"

    if w["oneHot"]:
        tokens = torch.randint(0, I, (sequences, T + 1))
        x = nn.functional.one_hot(tokens[:, :T], I).float()
        y = tokens[:, 1:].contiguous()
    else:
        x = torch.rand(sequences, T, I) * 2 - 1
        y = torch.rand(sequences, T, O) * 2 - 1
    xs = list(x.split(B))
    ys = list(y.split(B))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            cell = nn.LSTM if w["cell"] == "lstm" else nn.GRU
            self.rnn = cell(I, H, batch_first=True)
            self.readout = nn.Linear(H, O)

        def forward(self, inputs):
            out, _ = self.rnn(inputs)
            return self.readout(out)

    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss() if cross_entropy else nn.MSELoss()

    def infer():
        model.eval()
        with torch.inference_mode():
            for xb in xs:
                out = model(xb)
                if cross_entropy:
                    out = torch.softmax(out, dim=-1)

    def train():
        model.train()
        for xb, yb in zip(xs, ys):
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out.reshape(-1, O), yb.reshape(-1)) if cross_entropy else loss_fn(out, yb)
            loss.backward()
            optimizer.step()

    opts = dict(
        seqs_per_rep=sequences,
        reps=s["reps"],
        min_reps=s["minReps"],
        budget_ms=s["fastBudgetMs"],
        min_total_ms=s["minTotalMs"],
    )
    cell_name = "nn.LSTM" if w["cell"] == "lstm" else "nn.GRU"
    note = f"{batches} batch(es) of {B} per rep"
    rows = []
    for threads in s["threads"]:
        torch.set_num_threads(threads)
        rows.append(
            {
                "mode": "inference",
                "threads": threads,
                "torchThreads": torch.get_num_threads(),
                **measure(infer, **opts),
                "note": f"{cell_name} + nn.Linear{' + softmax' if cross_entropy else ''} under inference_mode, {note}",
            }
        )
        rows.append(
            {
                "mode": "training",
                "threads": threads,
                "torchThreads": torch.get_num_threads(),
                **measure(train, **opts),
                "note": f"{'CrossEntropyLoss' if cross_entropy else 'MSELoss'}, backward, Adam step per batch, {note}",
            }
        )
    return rows


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--versions":
        result = versions()
    elif len(sys.argv) == 2:
        task = json.loads(sys.argv[1])
        result = bench(task["workload"], task["settings"])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print("RESULT " + json.dumps({"ok": True, "result": result}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        print("RESULT " + json.dumps({"ok": False, "error": traceback.format_exc()}), flush=True)
