#!/usr/bin/env python3
"""The benchmark suite's external sgemm roof: numpy's f32 matrix product (its BLAS: OpenBLAS in
numpy's wheels) at 1024 x 1024 x 1024, driven by benchmark/run.mjs.

    OPENBLAS_NUM_THREADS=1 python benchmark/numpy_sgemm.py [ROUNDS]

The thread count is the BLAS's, fixed by OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS,
MKL_NUM_THREADS for other BLAS builds) before numpy is imported: run.mjs runs one process per
thread count. np.matmul(a, b, out=c) on C-ordered float32 operands (uniform in [0, 1)), one
untimed product, then ROUNDS (default 11) timed products; GFLOP/s = 2 * 1024^3 / the median
time. Prints one line `RESULT <json>` on stdout, as the suite's other workers do.
"""

import json
import os
import platform
import sys
import time
import traceback


def blas_name(np):
    """'OpenBLAS 0.3.x ...' from numpy's build configuration, when it says."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        config = blas.get("openblas configuration")
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        return f"{name} ({config})" if config else name
    except Exception:
        return None


def openblas_runtime():
    """The kernel set OpenBLAS chose for this CPU ('SkylakeX', 'Haswell', ...; a DYNAMIC_ARCH
    build's configuration names the build's baseline, not this) and its thread count, asked of
    the loaded library itself (Linux: found in /proc/self/maps). None when not found."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        out = {}
        for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("", "")):
            try:
                corename = getattr(lib, f"{prefix}openblas_get_corename{suffix}")
                threads = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
            except AttributeError:
                continue
            corename.restype = ctypes.c_char_p
            threads.restype = ctypes.c_int
            out = {"corename": corename().decode(), "threads": threads()}
            break
        if out:
            return out
    return None


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    import numpy as np

    n = 1024
    rng = np.random.default_rng(7)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
    flops = 2 * n**3
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    return {
        "library": "numpy",
        "threads": int(threads) if threads else None,
        "gflops": flops / med / 1e9,
        "bestGflops": flops / times[0] / 1e9,
        "productMs": med * 1000,
        "rounds": rounds,
        "numpy": np.__version__,
        "blas": blas_name(np),
        "openblas": openblas_runtime(),
        "python": platform.python_version(),
        "how": "np.matmul(a, b, out=c), float32, C order",
    }


if __name__ == "__main__":
    try:
        result = main()
        print("RESULT " + json.dumps({"ok": True, "result": result}), flush=True)
    except Exception:
        print("RESULT " + json.dumps({"ok": False, "error": traceback.format_exc()}), flush=True)
