"""``ecgfounder serve``: the model as an HTTP service with a web viewer (or, with --mcp, an MCP tool)."""

from __future__ import annotations

import argparse
import os
import re

from ._checks import usage
from ._common import say

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the model over HTTP (JSON API, web viewer, Prometheus metrics) or as an MCP tool",
        description="Load the weights once and answer POST /v1/predict (a file in any supported format, or a "
        "JSON signal), /v1/predict/batch, GET /v1/labels, /healthz, /readyz, /metrics; the web viewer is at / "
        "and the API schema at /docs. Needs: pip install 'ecgfounder[serve]' ('[mcp]' for --mcp).",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", default="12-lead", metavar="NAME", help="published weights: 12-lead (default) or 1-lead")
    src.add_argument("--checkpoint", metavar="FILE", help="a local checkpoint (.pth or .safetensors)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8", "auto"),
                   help="inference precision (default fp32; see ecgfounder predict --help)")
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "auto"), help="default torch")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads of the forward pass (default: one per core; 1 is faster on a busy machine)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--token", metavar="T", default=os.environ.get("ECGFOUNDER_TOKEN"),
                   help="require 'Authorization: Bearer T' on /v1/* and /metrics (default: $ECGFOUNDER_TOKEN; none)")
    g = p.add_argument_group("limits")
    g.add_argument("--max-upload-mb", type=float, default=50.0, metavar="MB", help="largest request body (default 50)")
    g.add_argument("--max-batch", type=int, default=32, metavar="N", help="windows per forward pass (default 32)")
    g.add_argument("--batch-wait-ms", type=float, default=5.0, metavar="MS",
                   help="how long a batch waits for more requests (default 5)")
    g.add_argument("--max-concurrency", type=int, default=4, metavar="N",
                   help="requests read and prepared at once (default 4)")
    g.add_argument("--max-queue", type=int, default=64, metavar="N",
                   help="requests allowed to wait beyond that; more get 429 (default 64)")
    g.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="limit in seconds of a whole request: its body, reading, the model; a batch answers at it "
                   "with the recordings done (default 60)")
    g.add_argument("--max-record-s", type=float, default=600.0, metavar="S",
                   help="longest recording analysed, in seconds; longer ones get 422 (default 600)")
    g.add_argument("--threshold", type=float, default=0.5, metavar="P",
                   help="operating threshold where --thresholds and the weights give none (default 0.5)")
    g.add_argument("--thresholds", metavar="CSV",
                   help="per-label operating thresholds (label,threshold), e.g. thresholds.csv of ecgfounder evaluate")
    m = p.add_argument_group("MCP")
    m.add_argument("--mcp", action="store_true", help="serve an MCP tool over stdio instead of HTTP (for LLM agents)")
    m.add_argument("--mcp-dir", action="append", metavar="DIR",
                   help="directory whose files the MCP tool may read by path (repeatable; default: current directory)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace, source: str) -> None:
    """What can be refused before the model loads and the service says it is up."""
    from pathlib import Path

    from ..prediction.setup import check_device, check_weights

    check_device(args.device)
    check_weights(source)
    if args.thresholds and not Path(args.thresholds).is_file():
        raise usage(f"--thresholds {args.thresholds}: no such file; give a CSV of label,threshold (e.g. the "
                    "thresholds.csv that ecgfounder evaluate writes).")
    if args.mcp_dir and not args.mcp:
        raise usage("--mcp-dir names the folders the MCP tool may read; add --mcp (or drop --mcp-dir).")
    for d in args.mcp_dir or ():
        if not Path(d).is_dir():
            raise usage(f"--mcp-dir {d}: no such folder; give a folder holding the ECG files the tool may read.")


def run(args: argparse.Namespace) -> int:
    import math

    from ..serve import ServeConfig, run_mcp, run_server

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not a TCP port; choose one of 1-65535 (default 8000).")
    if not (math.isfinite(args.max_upload_mb) and args.max_upload_mb > 0):
        raise ValueError(f"--max-upload-mb {args.max_upload_mb:g} must be a positive size in MB (default 50).")
    try:
        config = ServeConfig(
            max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_batch_windows=args.max_batch,
            batch_wait_ms=args.batch_wait_ms, max_concurrency=args.max_concurrency, max_queue=args.max_queue,
            request_timeout_s=args.timeout, token=args.token, threshold=args.threshold, threads=args.threads,
            thresholds_file=args.thresholds, max_record_s=args.max_record_s,
            precision=args.precision, backend=args.backend,
        )
    except ValueError as exc:  # name the flag, not the library field
        msg = str(exc)
        for field, flag in (("max_upload_bytes", "--max-upload-mb"), ("max_batch_windows", "--max-batch"),
                            ("max_concurrency", "--max-concurrency"), ("max_queue", "--max-queue"),
                            ("request_timeout_s", "--timeout"), ("batch_wait_ms", "--batch-wait-ms"), ("max_record_s", "--max-record-s"),
                            ("thresholds_file", "--thresholds"), ("threshold", "--threshold"), ("token", "--token"), ("threads", "--threads")):
            msg = re.sub(rf"(?<![\w-])(ServeConfig\.)?{field}(?![\w-])", flag, msg)
        raise ValueError(msg) from None
    source = args.checkpoint or args.weights
    _check(args, source)
    if args.mcp:
        run_mcp(source, config=config, device=args.device, allowed_dirs=tuple(args.mcp_dir or (".",)))
        return 0
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.token:
        say(f"warning: listening on {args.host} without --token: anyone who can reach this port can use the model.")
    say(f"ecgfounder serve: {source} on http://{args.host}:{args.port} (viewer: /, API docs: /docs)")
    run_server(source, host=args.host, port=args.port, config=config, device=args.device)
    return 0
