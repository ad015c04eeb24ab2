"""Reference values for gyre's reduceOnPlateau schedule, from PyTorch's own
torch.optim.lr_scheduler.ReduceLROnPlateau (mode 'min'): for several settings and sequences of
monitored losses, the learning rate after each epoch's step. gyre's `Plateau::step`
(crates/gyre-core/src/optim/schedule.rs) is checked against plateau.json by
crates/gyre-core/tests/plateau.rs.

    python make.py            # writes plateau.json (needs torch; not installed in CI)
    python make.py --check    # fails if the committed file differs from what it makes

Made with PyTorch 2.15 CPU.
"""
import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "plateau.json")


def losses(seed, n):
    """A loss that falls, stalls, wobbles and falls again (deterministic)."""
    out = []
    x = 1.0
    for t in range(n):
        phase = (t // 7) % 3
        if phase == 0:
            x *= 0.9
        elif phase == 1:
            x *= 1.0 + 0.00005 * math.sin(seed + t)  # a plateau within the threshold
        else:
            x *= 1.0 + 0.02 * math.sin(seed * 3 + t)
        out.append(round(x, 12))
    return out


SETTINGS = [
    dict(factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0),
    dict(factor=0.5, patience=2, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0),
    dict(factor=0.5, patience=1, threshold=1e-3, threshold_mode="abs", cooldown=2, min_lr=1e-3),
    dict(factor=0.3, patience=0, threshold=0.0, threshold_mode="rel", cooldown=1, min_lr=0.0),
]


def make():
    cases = []
    for i, s in enumerate(SETTINGS):
        for seed in (1, 2):
            lr0 = 0.1
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=lr0)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **s)
            seq = losses(seed + 10 * i, 60)
            lrs = []
            for loss in seq:
                sched.step(loss)
                lrs.append(opt.param_groups[0]["lr"])
            # The values as f64 bit patterns too: exact whatever the JSON reader's rounding.
            bits = lambda xs: [struct.unpack("<Q", struct.pack("<d", x))[0] for x in xs]
            cases.append(dict(settings=s, lr=lr0, losses=seq, lrs=lrs, loss_bits=bits(seq), lr_bits=bits(lrs)))
    return {"made_with": f"torch {torch.__version__}", "cases": cases}


if __name__ == "__main__":
    data = make()
    text = json.dumps(data, indent=1) + "\n"
    if "--check" in sys.argv:
        with open(OUT) as f:
            old = json.load(f)
        if old["cases"] != data["cases"]:
            sys.exit("plateau.json differs from what make.py makes")
        print("plateau.json reproduces")
    else:
        with open(OUT, "w") as f:
            f.write(text)
        print(f"wrote {OUT}: {len(data['cases'])} cases")
