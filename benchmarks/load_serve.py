"""Load test of ``ecgfounder serve`` on loopback: sustained requests/s, latency percentiles, errors, RSS.

Starts the server as a subprocess (``python -m ecgfounder serve``) on 127.0.0.1 with synthetic
weights, then drives it with an asyncio/httpx client: single-record uploads (a real 10-s 12-lead GE
MUSE XML file from the tests) at each ``--levels`` concurrency, then the bar run (``--bar-n``
requests at ``--bar-concurrency``), sampling the server's resident memory (``/proc/PID/status``)
all along.  Bounded: a request count per level and a time cap per level (``--max-seconds``).

    python benchmarks/load_serve.py --arch tiny                 # a small synthetic model
    python benchmarks/load_serve.py --arch full --n 60 --bar-n 200   # the released architecture

Loopback only: the server listens on 127.0.0.1 and the client talks to nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FILE = REPO / "tests" / "data" / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml"


def make_checkpoint(arch: str, out: Path) -> Path:
    """``full``: :func:`build_synthetic_checkpoint` (30.8 M parameters, the released architecture);
    ``tiny``: 2 narrow stages with the real 150-label head."""
    if arch == "full":
        from ecgfounder.models.loading import build_synthetic_checkpoint

        return build_synthetic_checkpoint(out / "12_lead_synthetic.pth", leads=12)
    import torch

    from ecgfounder.labels import load_labels
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.signal.preprocess import PreprocessContract

    torch.manual_seed(0)
    m = Net1D(Net1DConfig(in_channels=12, base_filters=16, filter_list=(16, 32, 64), m_blocks_list=(1, 1, 1),
                          kernel_size=8, groups_width=8, n_classes=150))
    m.labels, m.contract = load_labels(), PreprocessContract()
    return save_model(m, out / "tiny.safetensors")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive(url: str, n: int, concurrency: int, max_seconds: float, data: bytes, pid: int,
                rss_trace: list, rss_at: dict | None = None) -> dict:
    """``n`` uploads with ``concurrency`` workers (stops early at ``max_seconds``)."""
    import httpx

    lat, codes, done = [], [], 0
    t0, c0 = time.perf_counter(), cpu_s(pid)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker() -> None:
            nonlocal done
            while done < n and time.perf_counter() - t0 < max_seconds:
                done += 1
                k = done
                s = time.perf_counter()
                try:
                    r = await client.post("/v1/predict", files={"file": (FILE.name, data, "application/xml")})
                    codes.append(r.status_code)
                except httpx.HTTPError:
                    codes.append(-1)
                lat.append(time.perf_counter() - s)
                if rss_at is not None and k == 100:
                    rss_at["after_100"] = rss_mb(pid)

        async def sampler() -> None:
            while True:
                rss_trace.append((round(time.perf_counter() - t0, 2), rss_mb(pid)))
                await asyncio.sleep(0.5)

        samp = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        samp.cancel()
    wall = time.perf_counter() - t0
    server_cpu = cpu_s(pid) - c0
    a = np.asarray(lat) * 1e3
    codes_a = np.asarray(codes)
    return {"concurrency": concurrency, "requests": len(lat), "seconds": round(wall, 2),
            "req_per_s": round(len(lat) / wall, 2),
            "p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1),
            "error_rate": round(float(np.mean(codes_a != 200)), 4), "n_5xx": int(np.sum(codes_a >= 500)),
            "n_429": int(np.sum(codes_a == 429)), "n_conn_err": int(np.sum(codes_a == -1)),
            "server_cpu_ms_per_req": round(1e3 * server_cpu / max(len(lat), 1), 1),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=("tiny", "full"), default="tiny")
    ap.add_argument("--levels", default="1,8,32", help="concurrency levels (default 1,8,32)")
    ap.add_argument("--n", type=int, default=200, help="requests per level (default 200)")
    ap.add_argument("--max-seconds", type=float, default=120, help="time cap per level (default 120)")
    ap.add_argument("--bar-n", type=int, default=1000, help="requests of the bar run (default 1000)")
    ap.add_argument("--bar-concurrency", type=int, default=16)
    ap.add_argument("--bar-max-seconds", type=float, default=600)
    ap.add_argument("--server-args", default="", help="extra arguments of ecgfounder serve")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = ap.parse_args()

    data = FILE.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(args.arch, Path(tmp))
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "ecgfounder", "serve", "--checkpoint", str(ckpt), "--host", "127.0.0.1",
               "--port", str(port), *args.server_args.split()]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit(f"server did not become ready: {proc.stderr.read().decode()[-2000:] if proc.poll() is not None else 'timeout'}")
                time.sleep(0.3)
            out = {"arch": args.arch, "cores": os.cpu_count(), "load_before": os.getloadavg(),
                   "rss_ready_mb": round(rss_mb(proc.pid), 1), "levels": [], "server": " ".join(cmd[3:])}
            for c in (int(x) for x in args.levels.split(",") if x):
                res = asyncio.run(drive(url, args.n, c, args.max_seconds, data, proc.pid, []))
                out["levels"].append(res)
                print(json.dumps(res), flush=True)
            trace: list = []
            rss_at: dict = {}
            bar = asyncio.run(drive(url, args.bar_n, args.bar_concurrency, args.bar_max_seconds, data, proc.pid,
                                    trace, rss_at))
            bar["rss_after_100_mb"] = round(rss_at.get("after_100", float("nan")), 1)
            bar["rss_after_mb"] = round(rss_mb(proc.pid), 1)
            bar["rss_growth_pct"] = round(100 * (bar["rss_after_mb"] / bar["rss_after_100_mb"] - 1), 2)
            bar["rss_min_max_mb"] = [round(min(v for _, v in trace), 1), round(max(v for _, v in trace), 1)]
            bar["metrics_batches"] = _batch_summary(httpx.get(url + "/metrics").text)
            out["bar"] = bar
            print(json.dumps(bar), flush=True)
        finally:
            proc.terminate()
            proc.wait(20)
    ok = bar["n_5xx"] == 0 and bar["p95_ms"] < 2000 and abs(bar["rss_growth_pct"]) <= 10
    out["bar_met"] = bool(ok)
    print(f"bar (no 5xx, p95 < 2 s, RSS within 10 %): {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _batch_summary(text: str) -> dict:
    vals = {}
    for line in text.splitlines():
        for key in ("ecgfounder_batch_requests_sum", "ecgfounder_batch_requests_count", "ecgfounder_forward_seconds_sum"):
            if line.startswith(key + " "):
                vals[key] = float(line.split()[1])
    n = vals.get("ecgfounder_batch_requests_count", 0) or 1
    return {"forward_passes": int(vals.get("ecgfounder_batch_requests_count", 0)),
            "mean_requests_per_pass": round(vals.get("ecgfounder_batch_requests_sum", 0) / n, 2),
            "mean_forward_ms": round(1e3 * vals.get("ecgfounder_forward_seconds_sum", 0) / n, 1)}


if __name__ == "__main__":
    sys.exit(main())
