"""Pre-training throughput: ECG windows per second per device, and where the time goes.

Three numbers, so a user sees whether storage or the accelerator is the limit:

- ``loading``: windows/s read from the shard store (WebDataset stream, shuffle buffer, decoding,
  lead selection/masking, label policy): the input pipeline alone;
- ``compute``: windows/s of forward + backward + AdamW step on batches already in device memory;
- ``end_to_end``: a real ``pretrain`` run of ``--steps`` steps, with its measured split of time
  between waiting for data and computing.

    python benchmarks/bench_pretrain.py                       # CPU, store built from tests/data
    python benchmarks/bench_pretrain.py --device cuda --size base --batch 256 --bf16 --store STORE

Without ``--store`` a store is built (in a temporary folder) from the 50 real CinC 2021 records
in tests/data at the published contract (500 Hz, 10 s, 12 leads).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from _common import RECORDS, load_average


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="existing shard store (default: build one from tests/data/cinc2021)")
    ap.add_argument("--size", default="tiny", choices=("tiny", "small", "base", "large"))
    ap.add_argument("--leads", type=int, default=12, choices=(12, 1))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from ecgfounder.models.net1d import Net1D
    from ecgfounder.pretrain.config import pretrain_config_from_dict
    from ecgfounder.pretrain.loop import pretrain
    from ecgfounder.pretrain.recipe import size_preset, targets, transform_batch
    from ecgfounder.pretrain.store import build_store, iter_batches, open_store

    tmp = Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
    t0 = time.perf_counter()
    if args.store:
        info = open_store(args.store)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = build_store(RECORDS, tmp / "store", workers=2, records_per_chunk=25)
    build_s = time.perf_counter() - t0
    model_leads = info.contract.leads if args.leads == 12 else ("I",)

    # loading alone
    n, t0 = 0, time.perf_counter()
    for epoch in range(1000):
        for x, st, keys in iter_batches(info, global_batch=args.batch, epoch=epoch, shuffle_buffer=256):
            x = transform_batch(x, keys, store_leads=info.contract.leads, model_leads=model_leads, seed=0, epoch=epoch,
                                lead_augment_p=0.5, lead_mask_p=0.1)
            targets(st)
            n += len(x)
        if n >= args.batch * args.steps:
            break
    loading = n / (time.perf_counter() - t0)

    # compute alone
    dev = torch.device(args.device)
    model = Net1D(size_preset(args.size, in_channels=len(model_leads), n_classes=len(info.labels))).to(dev)
    fwd = torch.compile(model) if args.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xb = torch.randn(args.batch, len(model_leads), info.contract.n_samples, device=dev)
    yb = (torch.rand(args.batch, len(info.labels), device=dev) < 0.05).float()
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step():
        opt.zero_grad(set_to_none=True)
        with amp:
            out = fwd(xb)
        torch.nn.functional.binary_cross_entropy_with_logits(out.float(), yb).backward()
        opt.step()

    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    compute = args.batch * args.steps / (time.perf_counter() - t0)

    # end to end
    cfg = pretrain_config_from_dict({
        "data": {"store": str(info.location), "shuffle_buffer": 256},
        "model": {"size": args.size, "leads": args.leads}, "recipe": {"lead_mask_p": 0.1},
        "train": {"out": str(tmp / "run"), "batch_size": args.batch, "max_steps": args.steps, "device": args.device,
                  "bf16": args.bf16, "compile": args.compile, "ckpt_every": 10**9, "log_every": 10**9}})
    t0 = time.perf_counter()
    pretrain(cfg)
    e2e_s = time.perf_counter() - t0
    timing = json.loads((tmp / "run" / "timing.json").read_text())
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "size": args.size, "params": n_params, "leads": len(model_leads), "batch": args.batch, "bf16": args.bf16,
        "compile": args.compile, "store_windows": info.n_samples, "store_build_s": round(build_s, 2),
        "loading_ecg_per_s": round(loading, 1), "compute_ecg_per_s": round(compute, 1),
        "end_to_end_ecg_per_s_incl_setup": round(args.batch * args.steps / e2e_s, 1),
        "end_to_end_data_s": round(timing["data_s"], 3), "end_to_end_compute_s": round(timing["compute_s"], 3),
        "data_share": round(timing["data_s"] / max(1e-9, timing["data_s"] + timing["compute_s"]), 3),
        "bound_by": "storage/input pipeline" if loading < compute else "compute",
        "load": load_average(),
    }))


if __name__ == "__main__":
    main()
