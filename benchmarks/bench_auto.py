"""What ``auto``'s first use costs: seconds and peak memory of measuring every path on a fresh
cache, with the published architecture (random weights: speed does not depend on their values),
and the figures it chose by.

    python benchmarks/bench_auto.py [--threads 2] [--batch 32] [--device cpu]

Builds ``make_runner(model, "auto", "auto", calibration=<32 real preprocessed windows>)`` in a
temporary cache folder, so every candidate path is built, checked against fp32 and timed (in turn
with the fp32/torch reference) exactly as on a new machine.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, load_real_records  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from ecgfounder.models.loading import build_synthetic_checkpoint, load_model
    from ecgfounder.runtime import make_runner
    from ecgfounder.signal.preprocess import preprocess

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(build_synthetic_checkpoint(Path(tmp) / "syn12.pth", 12), map_location=args.device)
        _, sigs = load_real_records()
        real = np.stack([preprocess(s, 500.0, model.contract.leads, warn=False)[0] for s in sigs])[:32]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner = make_runner(model, "auto", "auto", args.device, calibration=real, cache_dir=Path(tmp) / "cache",
                                 threads=args.threads, batch=args.batch)
        secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# auto's first use on {args.device}, batch {args.batch}, {args.threads} threads; {load_average()}")
    print(f"measuring took {secs:.1f} s, peak RSS of this process {peak:.0f} MiB; chose {runner.precision}/{runner.backend}")
    for f in runner.choice.figures:
        state = f"{f.ecg_per_s:8.1f} ECG/s" if f.ok else f"not chosen: {f.reason}"
        print(f"  {f.name:18s} {state}   built in {f.build_s:.2f} s")


if __name__ == "__main__":
    main()
