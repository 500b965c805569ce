"""Where a GPU runner's time goes at one batch size: the package's runners (numpy in, numpy out)
against their parts measured alone: the host-to-device copy of the windows (from pageable memory,
as the runners do, and from pinned memory), the forward pass on windows already on the device
(cuDNN's default algorithms and ``cudnn.benchmark``), the same forward replayed as a CUDA graph,
and the device-to-host copy of the features.  Figures in ms per batch and ECG/s, with the
agreement of each variant's probabilities with the fp32 runner beside it.

    python benchmarks/bench_gpu_parts.py [--batch 256] [--seconds 1.5] [--device cuda] [--json f]

Weights: the synthetic weights of the released 12-lead architecture; windows: the 50 real
records, preprocessed, cycled to fill the batch.  On a CPU it runs the parts that exist there.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_real_records  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.5, help="seconds per measurement")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    import torch

    from ecgfounder.models.loading import build_synthetic_checkpoint, load_model
    from ecgfounder.runtime import build_runner
    from ecgfounder.signal.preprocess import preprocess

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def ms_per_call(fn) -> float:
        for _ in range(3):
            fn()
        sync()
        best, end = float("inf"), time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        return best * 1e3

    tmp = tempfile.TemporaryDirectory()
    model = load_model(build_synthetic_checkpoint(Path(tmp.name) / "syn12.pth", 12), map_location=args.device)
    _, sigs = load_real_records()
    real = np.stack([preprocess(s, 500.0, model.contract.leads, warn=False)[0] for s in sigs])
    x = np.ascontiguousarray(np.stack([real[i % len(real)] for i in range(args.batch)]), dtype=np.float32)
    rows: dict[str, dict] = {}

    def row(name: str, ms: float, probs: np.ndarray | None = None) -> None:
        r = {"ms_per_batch": ms, "ecg_per_s": args.batch / ms * 1e3}
        if probs is not None:
            r["max_dprob_vs_fp32"] = float(np.abs(probs - ref).max())
        rows[name] = r
        extra = f"  max |Δprob| vs fp32 {r['max_dprob_vs_fp32']:.1e}" if "max_dprob_vs_fp32" in r else ""
        print(f"{name:48s} {ms:9.2f} ms {r['ecg_per_s']:10.0f} ECG/s{extra}", flush=True)

    run32 = build_runner(model, "fp32", "torch", dev)
    ref = run32(x)[0]
    print(f"# {torch.cuda.get_device_name(0) if cuda else 'CPU'}; batch {args.batch} "
          f"({x.nbytes / 2**20:.0f} MiB of windows); torch {torch.__version__}")
    row("runner fp32/torch (numpy in and out)", ms_per_call(lambda: run32(x)), ref)
    run16 = build_runner(model, "bf16", "torch", dev)
    row("runner bf16/torch (numpy in and out)", ms_per_call(lambda: run16(x)), run16(x)[0])

    xt = torch.from_numpy(x)
    row("host→device copy, pageable", ms_per_call(lambda: xt.to(dev)))
    if cuda:
        pinned = torch.empty(xt.shape, dtype=xt.dtype, pin_memory=True)
        row("host copy into pinned memory", ms_per_call(lambda: pinned.copy_(xt)))
        row("host→device copy, pinned", ms_per_call(lambda: pinned.to(dev, non_blocking=True)))
    xd = xt.to(dev)

    import copy

    net16 = copy.deepcopy(model).to(torch.bfloat16).eval()
    task = dict(model.task_meta or {})
    from ecgfounder.runtime.runners import _scores

    def fwd(net, dtype):
        @torch.inference_mode()
        def go():
            feats = net.forward_features(xd.to(dtype))
            return net.forward_head(feats), feats
        return go

    for bench in (False, True):
        if cuda:
            torch.backends.cudnn.benchmark = bench
        tag = ", cudnn.benchmark" if bench else ""
        f32, f16 = fwd(model, torch.float32), fwd(net16, torch.bfloat16)
        row(f"forward fp32 on device{tag}", ms_per_call(f32), _scores(f32()[0].float(), task))
        row(f"forward bf16 on device{tag}", ms_per_call(f16), _scores(f16()[0].float(), task))
        if not cuda:
            break
    feats = f16()[1]
    row("device→host copy of the features", ms_per_call(lambda: feats.float().cpu()))
    if cuda:
        static_in = xd.clone()
        with torch.inference_mode():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    net16.forward_head(net16.forward_features(static_in.to(torch.bfloat16)))
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = net16.forward_head(net16.forward_features(static_in.to(torch.bfloat16)))
        row("forward bf16 replayed as a CUDA graph", ms_per_call(graph.replay), _scores(static_out.float(), task))
        torch.backends.cudnn.benchmark = False
    if args.json:
        Path(args.json).write_text(json.dumps({"batch": args.batch, "device": args.device, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
