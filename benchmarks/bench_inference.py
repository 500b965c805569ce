"""Model throughput of every inference path against the **published** Net1D eager fp32 forward
(reproduced in ``published.py`` and checked against the golden outputs), measured in the same run
at batch 1 and 32, with agreement on the 50 real records and the machine's matmul limits.

    python benchmarks/bench_inference.py [--batches 1,32] [--threads 2] [--seconds 3] [--rounds 3]
                                         [--paths fp32/torch,int8/openvino,...] [--device cuda]
                                         [--pin] [--json out.json]

``--pin`` runs on one core with one thread (per-CPU-second figures are then the steadiest on a
shared machine).  ``auto`` is reported as the path it picks (its own measurement, cached).
Weights: the documented synthetic weights of the released 12-lead architecture (speed and
agreement are those of the released model; only the numbers in the weights differ).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, load_average, load_real_records, matmul_limits, matmul_size  # noqa: E402
from published import PublishedNet1D  # noqa: E402

GFLOP_PER_ECG = 2.34  # the released 12-lead Net1D on one 10-s window (MODEL.md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    ap.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime / OpenVINO threads")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best is reported)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--paths", help="comma-separated precision/backend pairs (default: every path available)")
    ap.add_argument("--pin", action="store_true", help="one core, one thread")
    ap.add_argument("--no-auto", action="store_true", help="skip the auto measurement at the end")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        args.threads = 1

    import torch

    from ecgfounder.models.loading import build_synthetic_checkpoint, load_model
    from ecgfounder.runtime import build_runner, candidate_paths, make_runner, native_bf16
    from ecgfounder.runtime.auto import agreement, machine_identity
    from ecgfounder.signal.preprocess import preprocess

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    tmp = tempfile.TemporaryDirectory()
    ckpt = build_synthetic_checkpoint(Path(tmp.name) / "synthetic12.pth", 12)
    model = load_model(ckpt, map_location=args.device)
    pub = PublishedNet1D().eval()
    pub.load_state_dict(model.state_dict(), strict=True)
    pub.to(dev)
    _, sigs = load_real_records()
    real = np.stack([preprocess(s, 500.0, model.contract.leads, warn=False)[0] for s in sigs])
    golden = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden_cinc2021.npz"

    @torch.inference_mode()
    def published(x: np.ndarray):
        logits, feats = pub.forward_both(torch.from_numpy(x).to(dev))
        return torch.sigmoid(logits).float().cpu().numpy(), feats.float().cpu().numpy()

    ref_p, ref_f = published(real)
    with np.load(golden) as g:
        gold = float(np.abs(ref_f - g["features_12"]).max())
    paths = ([tuple(p.split("/")) for p in args.paths.split(",")] if args.paths
             else candidate_paths("auto", "auto", dev))
    runners, agree = {"published eager fp32": published}, {"published eager fp32": (0.0, 1.0)}
    cache = Path(tmp.name) / "cache"
    build_s = {}
    for prec, be in paths:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = build_runner(model, prec, be, dev, calibration=real[:16] if prec == "int8" else None,
                               cache_dir=cache, threads=args.threads)
        p, f = run(real)
        build_s[f"{prec}/{be}"] = time.perf_counter() - t0
        runners[f"{prec}/{be}"] = run
        agree[f"{prec}/{be}"] = agreement(p, f, ref_p, ref_f)

    print(f"# Net1D 12-lead ({GFLOP_PER_ECG} GFLOP/ECG), {args.threads} thread(s){' pinned to one core' if args.pin else ''}, "
          f"device {args.device}; {load_average()}")
    ident = machine_identity(args.device)
    print(f"# {ident.get('gpu') or ident['cpu']}; torch capability {ident['capability']}; native bf16: {native_bf16(dev)}")
    print(f"# published forward vs golden features: max |Δ| = {gold:.1e}")
    limits = matmul_limits(args.device, seconds=min(2.0, args.seconds))
    print(f"# matmul limits ({matmul_size(args.device)}³, same run): " + ", ".join(f"{k} {v:.0f} GFLOP/s → {v / GFLOP_PER_ECG:.0f} ECG/s"
                                                         for k, v in limits.items()))
    out = {"identity": ident, "threads": args.threads, "pinned": args.pin, "limits_gflops": limits,
           "golden_max_abs": gold, "load": load_average(), "batches": {}}
    for batch in [int(b) for b in args.batches.split(",")]:
        xb = np.ascontiguousarray(np.stack([real[i % len(real)] for i in range(batch)]))

        def case(fn):
            def go() -> int:
                fn(xb)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                return batch
            return go

        res = interleaved({k: case(v) for k, v in runners.items()}, args.seconds, args.rounds)
        base = res["published eager fp32"]
        print(f"\n## batch {batch}")
        print(f"{'path':22s} {'ECG/s best':>10s} {'median':>8s} {'ms/batch':>9s} {'ECG/CPU-s':>10s} {'×pub':>6s} "
              f"{'×pub CPU':>8s} {'max|Δprob|':>11s} {'min cos':>9s}")
        rows = {}
        for k, r in res.items():
            dp, cs = agree[k]
            rows[k] = {**r, "x_published": r["best"] / base["best"], "x_published_cpu": r["cpu"] / base["cpu"],
                       "max_dprob": dp, "min_cosine": cs, "ms_per_batch": 1000 * batch / r["best"]}
            print(f"{k:22s} {r['best']:10.1f} {r['median']:8.1f} {1000 * batch / r['best']:9.1f} {r['cpu']:10.1f} "
                  f"{r['best'] / base['best']:6.2f} {r['cpu'] / base['cpu']:8.2f} {dp:11.2e} {cs:9.6f}")
        out["batches"][batch] = rows
    if not args.no_auto:
        auto = make_runner(model, "auto", "auto", dev, calibration=real[:32], cache_dir=cache, threads=args.threads,
                           batch=32)
        print(f"\n# auto (no flags) picks {auto.precision}/{auto.backend} (its own measurement, batch 32)")
        out["auto"] = auto.choice.to_dict()
    print("# build seconds (export/quantise/compile, cached afterwards): "
          + ", ".join(f"{k} {v:.1f}" for k, v in build_s.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
