"""Serving: an HTTP service (FastAPI) with a web viewer, and an MCP tool for LLM agents.

Needs the ``serve`` extra (``pip install 'ecgfounder[serve]'``; the MCP tool: ``[mcp]``)::

    from ecgfounder.serve import Analyzer, ServeConfig, create_app, run_server
    run_server("12-lead", host="127.0.0.1", port=8000)          # what `ecgfounder serve` does

    app = create_app(Analyzer.load("model.safetensors"), ServeConfig(token="s3cret"))  # any ASGI server

The answer schema (version ``SCHEMA_VERSION``) is in :mod:`ecgfounder.serve.schema`.
"""

from __future__ import annotations

import os
from typing import Any

from .config import ServeConfig

__all__ = ["ServeConfig", "Analyzer", "create_app", "build_mcp_server", "run_server", "run_mcp", "SCHEMA_VERSION"]

_LAZY = {
    "Analyzer": ("adapter", "Analyzer"),
    "create_app": ("app", "create_app"),
    "build_mcp_server": ("mcp_tool", "build_mcp_server"),
    "SCHEMA_VERSION": ("schema", "SCHEMA_VERSION"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        from .._deps import require

        require("fastapi", "serve", "ecgfounder serve")
        if name == "build_mcp_server":
            require("mcp", "mcp", "the ecgfounder MCP tool")
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'ecgfounder.serve' has no attribute {name!r}")


def _load(source: str | os.PathLike, cfg: ServeConfig, device: str) -> Any:
    return __getattr__("Analyzer").load(source, threshold=cfg.threshold, thresholds_file=cfg.thresholds_file,
                                        device=device, threads=cfg.threads, precision=cfg.precision,
                                        backend=cfg.backend)


def run_server(source: str | os.PathLike = "12-lead", *, host: str = "127.0.0.1", port: int = 8000,
               config: ServeConfig | None = None, device: str = "cpu", log_level: str = "info") -> None:
    """Load the weights once and serve them over HTTP with uvicorn until interrupted."""
    from .._deps import require

    uvicorn = require("uvicorn", "serve", "ecgfounder serve")
    cfg = config or ServeConfig()
    analyzer = _load(source, cfg, device)
    app = __getattr__("create_app")(analyzer, cfg)
    # no uvicorn limit_concurrency: it counts open connections, idle keep-alive ones too (a proxy's pool, phones
    # that asked within timeout_keep_alive), and past it answers every request, on an idle server too, with a
    # plain-text 503 and closes the connection (a client still sending its upload sees the connection reset).
    # Work is bounded by the service's admission instead: past max_concurrency + max_queue, a JSON 429 with
    # Retry-After, sent before the body is read.
    if cfg.tmp_dir is not None:  # (Starlette spools each upload over 1 MB to a file in the default temporary folder)
        import tempfile

        tempfile.tempdir = str(cfg.tmp_dir)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=30)


def run_mcp(source: str | os.PathLike = "12-lead", *, config: ServeConfig | None = None, device: str = "cpu",
            allowed_dirs: tuple[str | os.PathLike, ...] = (".",)) -> None:
    """Serve the analysis as an MCP tool over stdio (for LLM agents)."""
    cfg = config or ServeConfig()
    analyzer = _load(source, cfg, device)
    __getattr__("build_mcp_server")(analyzer, cfg, allowed_dirs=allowed_dirs).run()
