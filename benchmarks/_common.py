"""Shared helpers of the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "tests" / "data" / "cinc2021"


def load_real_records() -> tuple[list[str], list[np.ndarray]]:
    """The 50 real 12-lead records shipped with the tests: names and (12, 5000) mV arrays."""
    import wfdb

    names = sorted(p.stem for p in RECORDS.glob("*.hea"))
    sigs = [np.nan_to_num(wfdb.rdsamp(str(RECORDS / n))[0].T) for n in names]
    return names, sigs


def load_average() -> str:
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cores"
    except OSError:  # pragma: no cover
        return "load average unknown"


def measure(fn: Callable[[], int], seconds: float) -> tuple[float, float]:
    """Run ``fn`` (returns items done) repeatedly for ``seconds``; ``(items/s wall, items per CPU-second)``."""
    fn()  # warm-up (twice: OpenVINO compiles a static shape on a batch size's second use)
    fn()
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - t0 < seconds:
        n += fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / wall, n / max(cpu, 1e-9)


def interleaved(cases: dict[str, Callable[[], int]], seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    """Measure every case ``rounds`` times, interleaved (so load changes hit all alike); best and median."""
    walls: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for k, fn in cases.items():
            w, c = measure(fn, seconds)
            walls[k].append(w)
            cpus[k].append(c)
    return {k: {"best": max(walls[k]), "median": float(np.median(walls[k])), "cpu": max(cpus[k])} for k in cases}


def matmul_size(device: str = "cpu") -> int:
    """The side of the square matmul that measures a device's ceiling: 2048 on a CPU; 8192 on a GPU,
    where a 2048³ product (~25 µs in bf16) would time its launch rather than its arithmetic."""
    import torch

    return 8192 if torch.device(device).type == "cuda" else 2048


def matmul_limits(device: str = "cpu", n: int | None = None, seconds: float = 2.0) -> dict[str, float]:
    """Best GFLOP/s of an ``n``³ matmul (``n``: :func:`matmul_size`) in fp32 and bf16 (and int8
    GOP/s where ``torch._int_mm`` runs), with the threads torch is set to: the ceilings a model path
    can approach."""
    import torch

    dev = torch.device(device)
    n = n or matmul_size(device)
    out: dict[str, float] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8", torch.int8)):
        try:
            if dtype == torch.int8:
                a = torch.randint(-100, 100, (n, n), dtype=dtype, device=dev)
                b = torch.randint(-100, 100, (n, n), dtype=dtype, device=dev)
                op = lambda: torch._int_mm(a, b)  # noqa: E731
            else:
                a = torch.randn(n, n, device=dev).to(dtype)
                b = torch.randn(n, n, device=dev).to(dtype)
                op = lambda: a @ b  # noqa: E731
            op()
            best, t_end = float("inf"), time.perf_counter() + seconds
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                op()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            out[name] = 2 * n**3 / best / 1e9
        except (RuntimeError, NotImplementedError):
            continue
    return out
