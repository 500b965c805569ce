"""Preprocessing throughput per core: the straightforward per-lead scipy chain (as published)
against the package's chain, on the 50 real records, with agreement printed beside each speed.

    python benchmarks/bench_preprocess.py [--seconds 3] [--rounds 3] [--torch] [--device cuda]

Single-threaded numpy/BLAS (per-core figures).  --torch adds the batched torch chain (meant for a
GPU; on a CPU its O(n·k) median is slow).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, load_average, load_real_records  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best is reported)")
    ap.add_argument("--torch", action="store_true", help="also the batched torch chain")
    ap.add_argument("--device", default="cpu", help="device of the torch chain")
    ap.add_argument("--batch", type=int, default=50, help="records per torch-chain batch")
    args = ap.parse_args()

    import torch

    from ecgfounder.signal import fast
    from ecgfounder.signal.preprocess import PreprocessContract, preprocess

    torch.set_num_threads(1)
    names, sigs = load_real_records()
    golden = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden_cinc2021.npz"
    leads = PreprocessContract().leads

    def z(x):
        return ((x - x.mean()) / (x.std() + 1e-8)).astype(np.float32)

    ref = np.stack([z(fast.reference_chain(s, 500.0)) for s in sigs])
    pkg = np.stack([preprocess(s, 500.0, leads, warn=False)[0] for s in sigs])
    chain = np.stack([z(fast.filter_chain(s, 500.0)) for s in sigs])
    agree = {"reference (per-lead scipy)": 0.0,
             "fast chain (all leads at once)": float(np.abs(chain - ref).max()),
             "ecgfounder.preprocess (+ lead checks, windows)": float(np.abs(pkg - ref).max())}
    with np.load(golden) as g:
        gold_ref = float(np.abs(ref[g["sub_index"]] - g["preprocessed_12_sub"]).max())

    state = {"i": 0}

    def one(f):
        def run() -> int:
            f(sigs[state["i"] % len(sigs)])
            state["i"] += 1
            return 1
        return run

    cases = {
        "reference (per-lead scipy)": one(lambda s: z(fast.reference_chain(s, 500.0))),
        "fast chain (all leads at once)": one(lambda s: z(fast.filter_chain(s, 500.0))),
        "ecgfounder.preprocess (+ lead checks, windows)": one(lambda s: preprocess(s, 500.0, leads, warn=False)),
    }
    if args.torch:
        from ecgfounder.signal.torch_chain import TorchChain

        tc = TorchChain(PreprocessContract(), args.device)
        xb = np.stack([sigs[i % len(sigs)] for i in range(args.batch)])
        out = tc(xb[: len(sigs)]).cpu().numpy()
        agree[f"torch chain ({args.device}, batch {args.batch})"] = float(np.abs(out - ref[: len(out)]).max())

        def run_torch() -> int:
            tc(xb)
            if tc.device.type == "cuda":
                torch.cuda.synchronize()
            return len(xb)

        cases[f"torch chain ({args.device}, batch {args.batch})"] = run_torch

    print(f"# preprocessing, 12-lead 10-s records at 500 Hz, 1 thread; {load_average()}")
    print(f"# reference vs published outputs (golden, 10 records): max |Δ| = {gold_ref:.2e}")
    res = interleaved(cases, args.seconds, args.rounds)
    base = res["reference (per-lead scipy)"]
    print(f"{'path':50s} {'rec/s best':>11s} {'median':>8s} {'rec/CPU-s':>10s} {'×ref':>6s} {'×ref CPU':>9s} {'max |Δ| vs ref':>15s}")
    for k, r in res.items():
        print(f"{k:50s} {r['best']:11.1f} {r['median']:8.1f} {r['cpu']:10.1f} {r['best'] / base['best']:6.2f} "
              f"{r['cpu'] / base['cpu']:9.2f} {agree[k]:15.2e}")


if __name__ == "__main__":
    main()
