"""End-to-end ``predict`` over a folder of WFDB records against model-only throughput of the same
path (by default the one ``auto`` picks), with the peak memory of the whole process tree.

    python benchmarks/bench_predict.py [--n 2000] [--precision auto] [--backend auto] [--workers N]
                                       [--batch 32] [--threads 2] [--device cuda] [--serial] [--quality warn|off]
                                       [--pipeline] [--windows-via spool|pipe] [--json f]

Writes ``--n`` 10-s 12-lead records (the 50 real ones, cycled, each scaled by a random factor
within ±5 % and given 5 µV of noise, so no two files are equal) with ``wfdb.wrsamp`` into a
temporary folder, then times (1) the runner alone on preprocessed windows, before and after, and
(2) ``iter_predict`` over the folder: reading, the quality check and preprocessing overlap with
inference (threads in the model's process, at idle priority when the model's CPU threads meet after
every operation: see ``ecgfounder.runtime.overlap``; or ``--workers N`` processes).  ``--serial`` adds a run
without the overlap (prepare, then infer) for comparison; ``--pipeline`` runs predict once more with a
runner that answers at once, to show what preparation itself costs per record inside predict (with
its threads, and in turn).  All share the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, load_real_records  # noqa: E402


def _tree_memory(root: int) -> tuple[int, int, list[tuple[int, int, int, bool]]]:
    """``(RSS, PSS, [(pid, PSS, RSS, PSS known) for each process])`` in bytes, summed over ``root``
    and all its descendants (Linux /proc).  The RSS sum counts a page shared by forked workers once
    per worker; the PSS sum (proportional set size, from ``smaps_rollup``) shares it out, so it is
    what the tree really holds.  ``root`` itself counts with its RSS: ``smaps_rollup`` walks every
    page table of the process it reads, and for the model's process (1.5 GB in 4-kB pages) that cost
    ~0.7 CPU-ms per predicted record at four reads a second, stolen from the run it measured (its
    peak comes from the kernel's high-water mark instead: :class:`PeakRSS`).  A descendant whose
    ``smaps_rollup`` cannot be read (it is exiting, or the kernel has none) counts with its RSS."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            parents[int(d)] = int(parts[1])
            rss[int(d)] = int(parts[21]) * page
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    each = [(root, rss.get(root, 0), rss.get(root, 0), True)]
    for p in sorted(tree - {root}):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                each.append((p, next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:")),
                             rss.get(p, 0), True))
        except (OSError, StopIteration, ValueError):
            each.append((p, rss.get(p, 0), rss.get(p, 0), False))
    return sum(e[2] for e in each), sum(e[1] for e in each), each


def _high_water_mark(reset: bool = False) -> int:
    """This process's peak RSS in bytes since the last reset (``VmHWM``); ``reset``: start a new
    peak (writing 5 to ``/proc/self/clear_refs``, Linux >= 4.0).  0 where neither exists."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _kind(pid: int, root: int) -> str:
    """``this``, ``forkserver`` or ``worker`` (any other descendant)."""
    if pid == root:
        return "this"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return "forkserver" if b"forkserver" in f.read() else "worker"
    except OSError:
        return "worker"


_SAMPLERS: set[int] = set()  # native ids of the measuring threads, left out of every figure


class _Sampler:
    """A context whose ``sample()`` runs every ``interval`` s in a thread of its own while the block
    runs, and once more at its end (subclasses: ``begin()`` on entry, ``sample()``, ``end()``)."""

    def __init__(self, interval: float):
        self.interval, self._stop = interval, threading.Event()

    def begin(self) -> None:
        pass

    def sample(self) -> None:
        raise NotImplementedError

    def end(self) -> None:
        pass

    def __enter__(self):
        self.begin()

        def loop():
            _SAMPLERS.add(threading.get_native_id())
            while not self._stop.wait(self.interval):
                self.sample()
        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()
        self.sample()
        self.end()


class PeakRSS(_Sampler):
    """Peak memory of this process and its descendants (``peak``: this process's RSS + the
    descendants' PSS; ``peak_rss``: the RSS sum; ``at_peak``: where it was at its peak,
    :meth:`where`).  Sampled every ``interval`` s, and this process's own peak from the kernel's
    high-water mark (reset on entry), so that a peak between two samples is not missed."""

    def __init__(self, interval: float = 0.25):
        super().__init__(interval)
        self.peak, self.peak_rss, self.root = 0, 0, os.getpid()
        self.at_peak: list[tuple[str, int, bool]] = []

    def begin(self) -> None:
        _high_water_mark(reset=True)
        self.sample()

    def sample(self) -> None:
        rss, pss, each = _tree_memory(self.root)
        if pss > self.peak:
            self.at_peak = [(_kind(p, self.root), m, known) for p, m, _, known in each]
        self.peak, self.peak_rss = max(self.peak, pss), max(self.peak_rss, rss)

    def end(self) -> None:
        own = _high_water_mark()
        if own > self.peak:  # this process alone, between two samples, held more than the tree at any sample
            self.peak, self.peak_rss, self.at_peak = own, max(self.peak_rss, own), [("this", own, True)]

    def where(self) -> str:
        """The peak's PSS by process: this one, the forkserver, the workers (all, and the largest)."""
        mib = 2**20
        this = sum(m for k, m, _ in self.at_peak if k == "this")
        server = sum(m for k, m, _ in self.at_peak if k == "forkserver")
        workers = [m for k, m, _ in self.at_peak if k == "worker"]
        rss_only = sum(not known for _, _, known in self.at_peak)
        text = f"this process {this / mib:.0f} MiB"
        if server:
            text += f", forkserver {server / mib:.0f}"
        if workers:
            text += f", {len(workers)} worker(s) {sum(workers) / mib:.0f} (largest {max(workers) / mib:.0f})"
        return text + (f"; {rss_only} counted by RSS (no smaps_rollup)" if rss_only else "")


def _ticks(stat: str) -> float:
    """CPU seconds (user + system) from the text of a ``/proc/.../stat`` file."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by native thread id; key 0: the whole process
    (its ended threads included)."""
    with open("/proc/self/stat") as f:
        out = {0: _ticks(f.read())}
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/stat") as f:
                out[int(t)] = _ticks(f.read())
        except (OSError, IndexError, ValueError):
            continue
    return out


class ThreadCPU(_Sampler):
    """CPU seconds spent in a block by the calling thread (``consumer``), by the threads that were
    there before the block (``runtime``: the model's thread pools) and by the threads started in it
    (``preparation``), sampled every ``interval`` s; ``ended``: what threads that ended spent after
    their last sample (or all of it, if they ran between two samples).  The measuring threads of this
    script are left out."""

    def __init__(self, interval: float = 0.1):
        super().__init__(interval)
        self.spent: dict[str, float] = {}

    def begin(self) -> None:
        self._me, self._base = threading.get_native_id(), _thread_cpu()
        self._last = dict(self._base)

    def sample(self) -> None:
        self._last.update(_thread_cpu())

    def end(self) -> None:
        spent = {"consumer": 0.0, "runtime": 0.0, "preparation": 0.0, "ended": 0.0, "measuring": 0.0}
        for tid, sec in self._last.items():
            if tid == 0:
                continue
            kind = ("measuring" if tid in _SAMPLERS else "consumer" if tid == self._me else
                    "runtime" if tid in self._base else "preparation")
            spent[kind] += sec - self._base.get(tid, 0.0)
        spent["ended"] = max(0.0, self._last[0] - self._base[0] - sum(spent.values()))
        self.spent = spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="records to write and predict")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--workers", type=int, default=None, help="preprocessing processes (default: the engine's)")
    ap.add_argument("--serial", action="store_true", help="also predict without overlapping preparation")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of predict (and --serial) runs")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model-seconds", type=float, default=15.0, help="duration of the model-only measurement")
    ap.add_argument("--quality", default="warn", help="quality gate of predict: warn (the default), skip or off")
    ap.add_argument("--dir", help="use/keep records in this folder instead of a temporary one")
    ap.add_argument("--pipeline", action="store_true",
                    help="also run predict with a runner that answers at once (zeros): what preparation costs "
                         "in CPU-ms per record inside predict, with its threads and in turn (and, with --workers N, "
                         "what the consuming process costs beside N worker processes)")
    ap.add_argument("--windows-via", choices=("spool", "pipe"), default="spool",
                    help="how worker processes hand the windows back: files in /dev/shm (the engine's way where it "
                         "can) or the pool's pipe (its fallback)")
    args = ap.parse_args()
    if args.windows_via == "pipe":  # the engine's fallback where /dev/shm is missing or full
        from ecgfounder.prediction import workers as _workers

        _workers._spool_folder = lambda: None

    import torch

    from ecgfounder.models.loading import build_synthetic_checkpoint, load_model
    from ecgfounder.prediction.workers import default_workers
    from ecgfounder.prediction import iter_predict
    from ecgfounder.runtime import make_runner
    from ecgfounder.signal.preprocess import preprocess

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    folder = Path(args.dir or tmp.name) / "records"
    folder.mkdir(parents=True, exist_ok=True)
    _, sigs = load_real_records()
    t0 = time.perf_counter()
    _write_records(folder, len(list(folder.glob("*.hea"))), args.n)
    write_s = time.perf_counter() - t0
    model = load_model(build_synthetic_checkpoint(Path(tmp.name) / "syn12.pth", 12), map_location=args.device)
    real = np.stack([preprocess(s, 500.0, model.contract.leads, warn=False)[0] for s in sigs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = make_runner(model, args.precision, args.backend, args.device, calibration=real[:32],
                             cache_dir=Path(args.dir or tmp.name) / "cache", threads=args.threads, batch=args.batch)
    xb = np.stack([real[i % len(real)] for i in range(args.batch)])

    # CPU time of this process (every thread) per record and cores kept busy, per kind of run: the
    # host's drift moves throughput, much less the CPU a record costs (worker processes not counted)
    cpu: dict[str, list[tuple[float, float]]] = {"model": [], "predict": [], "serial": []}
    by_thread: dict[str, list[dict[str, float]]] = {"model": [], "predict": [], "serial": []}  # CPU-ms per record

    def model_only() -> float:
        for _ in range(3):  # warm: OpenVINO compiles its streams layout for a batch size seen twice
            runner(xb)
        with ThreadCPU() as threads:
            t0, c0, n = time.perf_counter(), time.process_time(), 0
            while time.perf_counter() - t0 < args.model_seconds:
                runner(xb)
                n += len(xb)
            wall, used = time.perf_counter() - t0, time.process_time() - c0
        cpu["model"].append((used / n * 1e3, used / wall))
        by_thread["model"].append({k: v / n * 1e3 for k, v in threads.spent.items()})
        return n / wall

    def run_predict(tag: str = "predict", **kw) -> tuple[float, int, float]:
        with PeakRSS() as mem, ThreadCPU() as threads:
            t0, c0, done = time.perf_counter(), time.process_time(), 0
            for res in iter_predict([folder], model, batch_size=args.batch, runner=runner, quality=args.quality, **kw):
                done += res.error is None
            secs, used = time.perf_counter() - t0, time.process_time() - c0
        cpu[tag].append((used / max(done, 1) * 1e3, used / secs))
        by_thread[tag].append({k: v / max(done, 1) * 1e3 for k, v in threads.spent.items()})
        peak_rss.append(mem.peak_rss)
        peak_where.append((mem.peak, mem.where()))
        return done / secs, mem.peak, secs

    workers = default_workers(args.device) if args.workers is None else args.workers

    def serial_predict() -> tuple[float, int, float]:
        return run_predict("serial", prepared=_in_turn(folder, model, args))

    rates, serial, models, peak_rss, peak_where = [], [], [model_only()], [], []
    for _ in range(max(1, args.rounds)):  # interleaved: load changes hit every variant alike
        rates.append(run_predict(workers=workers))
        if args.serial:
            serial.append(serial_predict())
        models.append(model_only())
    model_rate = float(np.median(models))
    from ecgfounder.runtime import overlap_plan

    n_prep, idle = overlap_plan(args.device, args.threads, runner.streams(args.batch))
    overlap = ((f" + {n_prep} preparation thread(s){' at idle priority' if idle else ''}" if n_prep else
                ", prepared in turn") if workers == 0 else "")
    rate, peak, secs = max(rates)
    print(f"# predict over {args.n} WFDB records ({write_s:.0f} s to write), path {runner.precision}/{runner.backend} "
          f"(asked {args.precision}/{args.backend}) on {args.device}, batch {args.batch}, {args.threads} model threads, "
          f"{workers} worker process(es){overlap}, quality gate {args.quality}"
          f"{', windows back through the pipe' if args.windows_via == 'pipe' and workers else ''}; {load_average()}")
    print(f"model only      {model_rate:8.1f} ECG/s   (median of {', '.join(f'{m:.1f}' for m in models)})")
    print(f"predict         {rate:8.1f} ECG/s   (best of {', '.join(f'{r[0]:.1f}' for r in rates)}; {secs:.1f} s)")
    # each predict round against the model-only runs just before and after it: a drift of the
    # machine's speed (shared host) moves both sides of a pair alike
    paired = [r[0] / ((models[i] + models[i + 1]) / 2) for i, r in enumerate(rates)]
    print(f"ratio           {rate / model_rate:8.2f}   (bar: >= 0.80; best predict / median model-only)")
    print(f"paired ratios   {' '.join(f'{p:.2f}' for p in paired)}   (each round / the model-only runs beside it; "
          f"median {np.median(paired):.2f})")
    print(f"peak memory     {max(r[1] for r in rates) / 2**20:8.0f} MiB (bar: < 2048; this process's RSS + its "
          f"descendants' PSS: pages shared by forked workers counted once; RSS summed over the tree {max(peak_rss) / 2**20:.0f} MiB)")
    print(f"  at the peak   {max(peak_where)[1]}")
    if workers == 0:  # (worker processes' CPU is not this process's)
        m_ms, m_busy = np.median(cpu["model"], axis=0)
        p_ms, p_busy = np.median(cpu["predict"], axis=0)
        print(f"CPU per record  model only {m_ms:.2f} ms ({m_busy:.2f} cores busy), predict {p_ms:.2f} ms "
              f"({p_busy:.2f} busy): preparation and the rest {p_ms - m_ms:.2f} ms, CPU ratio {m_ms / p_ms:.2f} "
              "(medians; with the cores saturated in both, the throughput ratio a steady host would show)")
    med = {tag: {k: float(np.median([d[k] for d in v])) for k in v[0]} for tag, v in by_thread.items() if v}
    print(f"CPU by thread   model runtime's threads {med['model']['runtime']:.2f} ms a record alone, "
          f"{med['predict']['runtime']:.2f} in predict; threads started by predict {med['predict']['preparation']:.2f}"
          f"{' (the pool' + chr(39) + 's own: workers prepare)' if workers else ' (preparation)'}; "
          f"consuming thread {med['predict']['consumer']:.2f}; threads that ended {med['predict']['ended']:.2f}; "
          f"this script's measuring threads {med['predict']['measuring']:.2f} (medians; this process only)")
    out = {"path": f"{runner.precision}/{runner.backend}", "n": args.n, "batch": args.batch, "threads": args.threads,
           "cpu_ms_by_thread": by_thread, "workers": workers, "model_only": model_rate, "model_runs": models, "predict": rate,
           "predict_runs": [r[0] for r in rates], "ratio": rate / model_rate, "paired_ratios": paired,
           "peak_mib": max(r[1] for r in rates) / 2**20,  # this process's RSS + its descendants' PSS (was PSS of all: peak_pss_mib)
           "peak_rss_sum_mib": max(peak_rss) / 2**20,
           "peak_where": max(peak_where)[1], "load": load_average(),
           "cpu_ms_per_record": {k: [c[0] for c in v] for k, v in cpu.items() if v},
           "cores_busy": {k: [c[1] for c in v] for k, v in cpu.items() if v}}
    if serial:
        s_rate = max(r[0] for r in serial)
        print(f"serial predict  {s_rate:8.1f} ECG/s   (no overlap; best of {', '.join(f'{r[0]:.1f}' for r in serial)}) "
              f"ratio {s_rate / model_rate:.2f}")
        out.update(serial=s_rate, serial_runs=[r[0] for r in serial], serial_ratio=s_rate / model_rate)
    if args.pipeline:
        out["pipeline"] = _pipeline(folder, model, runner, args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


def _write_span(folder: Path, start: int, stop: int) -> None:
    """Records ``start`` .. ``stop - 1``; record ``i`` is the same whichever process writes it."""
    import wfdb

    from ecgfounder.signal.leads import STANDARD_12

    _, sigs = load_real_records()
    for i in range(start, stop):
        rng = np.random.default_rng([0, i])
        base = sigs[i % len(sigs)]
        sig = base * rng.uniform(0.95, 1.05) + rng.normal(0, 0.005, base.shape)
        wfdb.wrsamp(f"b{i:06d}", fs=500, units=["mV"] * 12, sig_name=list(STANDARD_12), p_signal=sig.T,
                    fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))


def _write_records(folder: Path, start: int, stop: int) -> None:
    """Write the missing records, spread over the cores (2,000 took a minute on one core)."""
    n = len(os.sched_getaffinity(0))
    if stop - start < 200 or n < 3:
        return _write_span(folder, start, stop)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    edges = np.linspace(start, stop, n + 1).astype(int)
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        for f in [pool.submit(_write_span, folder, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]:
            f.result()


def _in_turn(folder: Path, model, args):
    """The folder's records read and prepared in the consumer's thread, one after another (no overlap)."""
    from ecgfounder.prediction.records import expand_inputs, prepared_in_process

    return prepared_in_process(expand_inputs([folder]), model.contract, {},
                               {"lead": None, "fill_missing": False, "quality": args.quality})


def _pipeline(folder: Path, model, runner, args) -> dict:
    """predict with an instant runner: the preparation's own cost per record (process CPU time,
    every thread of this process), with predict's threads and in turn.  The instant runner keeps the
    real one's description, so predict plans the same preparation threads for it (one thread at
    normal priority beside OpenVINO's streams, a pool at idle priority beside torch)."""
    from dataclasses import replace

    from ecgfounder.prediction import iter_predict

    def zeros(x):
        return np.zeros((len(x), len(model.labels)), np.float32), np.zeros((len(x), 1), np.float32)

    instant = replace(runner, fn=zeros)

    def one(**kw) -> tuple[float, float, float]:
        t0, c0, n = time.perf_counter(), time.process_time(), 0
        for res in iter_predict([folder], model, batch_size=args.batch, runner=instant, quality=args.quality, **kw):
            n += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return n / wall, cpu / n * 1e3, cpu / wall

    figures = {}
    modes = [("threads", lambda: {"workers": 0}), ("in turn", lambda: {"prepared": _in_turn(folder, model, args)})]
    if args.workers:  # the consuming process alone (the workers' CPU is theirs): what bounds a GPU's predict
        modes.append((f"{args.workers} worker(s), this process", lambda: {"workers": args.workers}))
    for name, kw in modes:
        rate, ms, busy = one(**kw())
        figures[name] = {"records_per_s": rate, "cpu_ms_per_record": ms, "cores_busy": busy}
        print(f"pipeline only ({name:7s}) {rate:7.1f} rec/s, {ms:5.2f} CPU-ms per record, {busy:4.2f} cores busy")
    return figures


if __name__ == "__main__":
    main()
