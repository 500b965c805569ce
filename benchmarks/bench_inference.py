"""Model throughput of each inference path against a plain eager fp32 forward, measured in the
same run, with agreement on the 50 real records printed beside each speed.

    python benchmarks/bench_inference.py [--batch 32] [--threads 2] [--seconds 4] [--rounds 3]
                                         [--device cuda] [--paths fp32/torch,int8/onnxruntime,...]

Weights: the documented synthetic weights of the released 12-lead architecture (or --checkpoint).
Agreement: max |Δprobability| and min cosine of the 1024-d embeddings against eager fp32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, load_average, load_real_records  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime intra-op threads")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best is reported)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--paths", help="comma-separated precision/backend pairs (default: those that suit the device)")
    ap.add_argument("--checkpoint", help="weights (default: synthetic weights of the 12-lead architecture)")
    ap.add_argument("--cache-dir", help="where exported graphs are cached (default: a temporary folder)")
    args = ap.parse_args()

    import torch

    from ecgfounder.models.loading import build_synthetic_checkpoint, load_model
    from ecgfounder.runtime import make_runner, native_bf16
    from ecgfounder.signal.preprocess import preprocess

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    ckpt = args.checkpoint or build_synthetic_checkpoint(Path(tmp.name) / "synthetic12.pth", 12)
    model = load_model(ckpt, map_location=args.device)
    _, sigs = load_real_records()
    real = np.stack([preprocess(s, 500.0, model.contract.leads, warn=False)[0] for s in sigs])
    xb = np.stack([real[i % len(real)] for i in range(args.batch)])
    dev = torch.device(args.device)
    if args.paths:
        paths = [tuple(p.split("/")) for p in args.paths.split(",")]
    elif dev.type == "cuda":
        paths = [("fp32", "torch"), ("bf16", "torch")]
    else:
        paths = [("fp32", "torch"), ("fp32", "onnxruntime"), ("int8", "onnxruntime")]
        if native_bf16(dev):
            paths.append(("bf16", "torch"))
    cache = args.cache_dir or tmp.name

    # the reference: a plain eager fp32 forward of the same architecture
    @torch.inference_mode()
    def eager(x: np.ndarray):
        t = torch.from_numpy(x).to(dev)
        f = model.forward_features(t)
        return torch.sigmoid(model.forward_head(f)).cpu().numpy(), f.cpu().numpy()

    ref_p, ref_f = eager(real)
    runners, agree = {"eager fp32 (reference)": eager}, {"eager fp32 (reference)": (0.0, 1.0)}
    for prec, be in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = make_runner(model, prec, be, dev, calibration=real[:16] if prec == "int8" else None,
                              cache_dir=cache, threads=args.threads)
        p, f = run(real)
        cos = (f * ref_f).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(ref_f, axis=1)
        runners[f"{prec}/{be}"] = run
        agree[f"{prec}/{be}"] = (float(np.abs(p - ref_p).max()), float(cos.min()))

    def case(fn):
        def go() -> int:
            fn(xb)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return len(xb)
        return go

    print(f"# Net1D 12-lead (2.3 GFLOP/ECG), batch {args.batch}, {args.threads} threads, device {args.device}; {load_average()}")
    if dev.type == "cpu":
        print(f"# CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16(dev)}")
    res = interleaved({k: case(v) for k, v in runners.items()}, args.seconds, args.rounds)
    base = res["eager fp32 (reference)"]
    print(f"{'path':24s} {'ECG/s best':>10s} {'median':>8s} {'ECG/CPU-s':>10s} {'×eager':>7s} {'×eager CPU':>10s} "
          f"{'max|Δprob|':>11s} {'min cos':>9s}")
    for k, r in res.items():
        dp, cs = agree[k]
        print(f"{k:24s} {r['best']:10.1f} {r['median']:8.1f} {r['cpu']:10.1f} {r['best'] / base['best']:7.2f} "
              f"{r['cpu'] / base['cpu']:10.2f} {dp:11.2e} {cs:9.6f}")


if __name__ == "__main__":
    main()
