"""Preprocessing throughput on one core: the **published per-record code** (``published.py``: the
three per-lead loops of ``util.filter_bandpass`` + z-score, checked against the golden outputs)
against the package, on the 50 real records, with agreement printed beside each speed.

    python benchmarks/bench_preprocess.py [--seconds 3] [--rounds 3] [--torch] [--device cuda] [--json f]
    python benchmarks/bench_preprocess.py --parts     # each kernel of the chain, compiled vs scipy/numpy
    python benchmarks/bench_preprocess.py --records DIR   # reading (+ preparing) every record of DIR

One thread, pinned to one core.  Rows: the published code; the package's chain alone (compiled
with numba when installed, else scipy); ``ecgfounder.preprocess`` (lead matching, checks,
windows, z-score: what ``predict`` runs); the scipy form of the chain (what runs without numba);
``--torch`` adds the batched torch chain of ``torch_chain.py`` (an experiment for GPUs, not part of
the package; slow on a CPU).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, load_average, load_real_records  # noqa: E402
from published import published_preprocess  # noqa: E402


def _without_numba(fn):
    """``fn`` with the compiled kernels switched off while it runs: the scipy forms (``filtfilt_ba``
    itself runs in the compiled IIR kernel when numba is on)."""
    from ecgfounder.signal import filters

    def run(*args):
        saved = filters._COMPILED[:]
        filters._COMPILED[:] = [None]
        try:
            return fn(*args)
        finally:
            filters._COMPILED[:] = saved
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best is reported)")
    ap.add_argument("--torch", action="store_true", help="also the batched torch chain")
    ap.add_argument("--device", default="cpu", help="device of the torch chain")
    ap.add_argument("--batch", type=int, default=50, help="records per torch-chain batch")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--parts", action="store_true", help="time each step of the chain instead (ms per record)")
    ap.add_argument("--records", help="time reading every record of this folder as predict does, alone and "
                    "with prepare (quality check off), instead")
    args = ap.parse_args()
    if not args.no_pin:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import torch

    from ecgfounder.signal import fast
    from ecgfounder.signal.filters import zscore
    from ecgfounder.signal.preprocess import PreprocessContract, preprocess

    torch.set_num_threads(1)
    _, sigs = load_real_records()
    golden = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden_cinc2021.npz"
    leads = PreprocessContract().leads

    def z(x):
        return zscore(x).astype(np.float32)

    @_without_numba
    def scipy_chain(s):
        return z(fast._scipy_chain(np.asarray(s, np.float64), 500.0, 50.0, 30.0, (0.67, 40.0), 4, 0.4))

    if args.parts:
        return _parts(sigs, args.rounds)
    if args.records:
        return _records(args.records, args.rounds)
    ref = np.stack([published_preprocess(s) for s in sigs])
    with np.load(golden) as g:
        gold_ref = float(np.abs(ref[g["sub_index"]] - g["preprocessed_12_sub"]).max())
    fast.filter_chain(sigs[0], 500.0)  # compile (or load the compiled kernels) before timing
    outs = {
        "published per-record code": ref,
        "package chain (filter_chain + z-score)": np.stack([z(fast.filter_chain(s, 500.0)) for s in sigs]),
        "ecgfounder.preprocess": np.stack([preprocess(s, 500.0, leads, warn=False)[0] for s in sigs]),
        "scipy form of the chain (no numba)": np.stack([scipy_chain(s) for s in sigs]),
    }
    agree = {k: float(np.abs(v - ref).max()) for k, v in outs.items()}
    state = {"i": 0}

    def one(f):
        def run() -> int:
            f(sigs[state["i"] % len(sigs)])
            state["i"] += 1
            return 1
        return run

    cases = {
        "published per-record code": one(published_preprocess),
        "package chain (filter_chain + z-score)": one(lambda s: z(fast.filter_chain(s, 500.0))),
        "ecgfounder.preprocess": one(lambda s: preprocess(s, 500.0, leads, warn=False)),
        "scipy form of the chain (no numba)": one(scipy_chain),
    }
    if args.torch:
        from torch_chain import TorchChain  # benchmarks/torch_chain.py (not part of the package)

        tc = TorchChain(PreprocessContract(), args.device)
        xb = np.stack([sigs[i % len(sigs)] for i in range(args.batch)])
        out = tc(xb[: len(sigs)]).cpu().numpy()
        key = f"torch chain ({args.device}, batch {args.batch})"
        agree[key] = float(np.abs(out - ref[: len(out)]).max())

        def run_torch() -> int:
            tc(xb)
            if tc.device.type == "cuda":
                torch.cuda.synchronize()
            return len(xb)

        cases[key] = run_torch

    print(f"# preprocessing, 12-lead 10-s records at 500 Hz, 1 thread{'' if args.no_pin else ' pinned to one core'}; "
          f"{load_average()}; chain: {fast.chain_backend()}")
    print(f"# published per-record code vs published outputs (golden, 10 records): max |Δ| = {gold_ref:.2e}")
    res = interleaved(cases, args.seconds, args.rounds)
    base = res["published per-record code"]
    print(f"{'path':42s} {'rec/s best':>11s} {'median':>8s} {'rec/CPU-s':>10s} {'×pub':>6s} {'×pub CPU':>9s} "
          f"{'max |Δ| vs pub':>15s}")
    for k, r in res.items():
        r.update(x_published=r["best"] / base["best"], x_published_cpu=r["cpu"] / base["cpu"], max_abs=agree[k])
        print(f"{k:42s} {r['best']:11.1f} {r['median']:8.1f} {r['cpu']:10.1f} {r['x_published']:6.2f} "
              f"{r['x_published_cpu']:9.2f} {agree[k]:15.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load_average(), "golden_max_abs": gold_ref, "rows": res}, indent=1))


def _records(folder: str, rounds: int) -> None:
    """CPU-ms per record of ``iter_read`` (reader + reading policy) and of read + prepare, the path
    of ``predict`` (``prepared_in_process``, quality check off), best of ``rounds`` passes."""
    import time
    import warnings

    from ecgfounder.io import iter_read
    from ecgfounder.prediction.records import expand_inputs, prepared_in_process
    from ecgfounder.signal.preprocess import PreprocessContract

    warnings.simplefilter("ignore")
    contract = PreprocessContract()
    items = list(expand_inputs([folder]))
    prep_kwargs = {"lead": None, "fill_missing": False, "quality": "off"}

    def read() -> None:
        for _, path in items:
            for _rec in iter_read(path):
                pass

    def both() -> None:
        for _res, _prep in prepared_in_process(items, contract, {}, prep_kwargs):
            pass

    both()
    best = {"read (iter_read + reading policy)": float("inf"), "read + prepare (quality off)": float("inf")}
    for _ in range(max(rounds, 3)):
        for k, f in zip(best, (read, both)):
            c0 = time.process_time()
            f()
            best[k] = min(best[k], (time.process_time() - c0) / len(items) * 1e3)
    print(f"# {len(items)} records of {folder}, CPU-ms per record, best of {max(rounds, 3)} passes, one core; "
          f"{load_average()}")
    for k, v in best.items():
        print(f"{k:40s} {v:7.3f} ms")


def _parts(sigs: list, rounds: int) -> None:
    """Milliseconds of CPU per 12 × 5000 record for each step, compiled against scipy/numpy (best
    of ``rounds`` interleaved passes over the records)."""
    import time

    from ecgfounder.signal import compiled, filters

    plans = (filters._notch_plan(50.0, 30.0, 500.0), filters._band_plan(0.67, 40.0, 4, 500.0))
    sigs = [np.ascontiguousarray(s) for s in sigs]  # lead-major rows, as the readers return them
    ys = [compiled.filtfilt_rows(s, *plans) for s in sigs]
    ds = [compiled.running_median_rows(y, 201, subtract=True) for y in ys]
    steps = {
        "notch + band-pass filtfilt, scipy (lfilter, all rows)": (
            _without_numba(lambda s: filters.bandpass(filters.notch(s, 500.0), 500.0)), sigs),
        "notch + band-pass filtfilt, compiled (4-lane SIMD)": (lambda s: compiled.filtfilt_rows(s, *plans), sigs),
        "x - running median k=201, scipy rank filter": (lambda y: y - filters.scipy_running_median(y, 201), ys),
        "x - running median k=201, compiled sorted blocks": (lambda y: compiled.running_median_rows(y, 201, True), ys),
        "z-score to float32, numpy": (lambda d: filters.zscore(d).astype(np.float32), ds),
        "z-score to float32, compiled": (compiled.zscore_f32, ds),
    }
    best = {k: float("inf") for k in steps}
    for _ in range(max(rounds, 3)):
        for k, (f, data) in steps.items():
            f(data[0])
            c0 = time.process_time()
            for d in data:
                f(d)
            best[k] = min(best[k], (time.process_time() - c0) / len(data) * 1e3)
    print(f"# CPU-ms per 12 × 5000 record, best of {max(rounds, 3)} passes over {len(sigs)} records, one core; "
          f"{load_average()}")
    for k, v in best.items():
        print(f"{k:55s} {v:7.3f} ms")


if __name__ == "__main__":
    main()
