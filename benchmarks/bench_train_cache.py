"""Training throughput (ECGs/s) from the preprocessed window cache versus reading and filtering
WFDB files in every step (what the published notebook does), measured in the same run.

    python benchmarks/bench_train_cache.py [--data DIR] [--steps 20] [--batch 16] [--arch small|released]

DIR holds CPSC 2021 records (default: tests/data/train/cpsc2021).  Both loops run the same model,
optimiser, batches and number of steps; only the source of the windows differs.  The time to
fill the cache once is printed separately.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ecgfounder.models.net1d import Net1D, Net1DConfig
from ecgfounder.signal.preprocess import PreprocessContract
from ecgfounder.train.cache import RecordRef, WindowCache, load_windows
from ecgfounder.train.config import SMALL_ARCH
from ecgfounder.train.presets import cpsc2021_manifest

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "tests" / "data" / "train" / "cpsc2021"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--arch", choices=["small", "released"], default="small")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    df = cpsc2021_manifest(args.data)
    refs = [RecordRef(p, s, d) for p, s, d in zip(df.path, df.start_s, df.duration_s)]
    y = torch.tensor(df.AF.to_numpy(), dtype=torch.float32)
    contract = PreprocessContract(leads=("I",))
    arch = dict(SMALL_ARCH) if args.arch == "small" else {}
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(refs), args.batch, replace=False) for _ in range(args.steps)]

    def make():
        torch.manual_seed(0)
        m = Net1D(Net1DConfig(in_channels=1, n_classes=1, **arch))
        return m, torch.optim.AdamW(m.parameters(), lr=1e-3)

    def step(m, opt, x, t):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x)[:, 0], t)
        loss.backward()
        opt.step()
        opt.zero_grad()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = WindowCache(tmp, contract).build(refs, workers=1)
        t_fill = time.perf_counter() - t0

        m, opt = make()
        step(m, opt, torch.from_numpy(np.stack([index.window(0, 0)])), y[:1])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            x = torch.from_numpy(np.stack([index.window(int(i), 0) for i in b]))
            step(m, opt, x, y[b])
        t_cache = time.perf_counter() - t0

        m, opt = make()
        t0 = time.perf_counter()
        for b in batches:
            x = torch.from_numpy(np.concatenate([load_windows(refs[int(i)], contract) for i in b]))
            step(m, opt, x, y[b])
        t_files = time.perf_counter() - t0

    n = args.steps * args.batch
    print(f"{len(refs)} windows from {df.path.nunique()} records; model {args.arch}, batch {args.batch}, "
          f"{args.steps} steps, {args.threads} thread(s)")
    print(f"cache fill (once):            {t_fill:7.2f} s  ({len(refs) / t_fill:7.1f} windows/s)")
    print(f"training from cache:          {n / t_cache:7.1f} ECGs/s")
    print(f"training reading WFDB files:  {n / t_files:7.1f} ECGs/s")
    print(f"ratio cache / files:          {t_files / t_cache:7.2f}x")


if __name__ == "__main__":
    main()
