"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Request counts and latency per route, batch sizes, forward time, rejections, in-flight requests."""

    def __init__(self, routes: set[str], inflight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.routes = routes
        r = self.registry
        self.requests = Counter("ecgfounder_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("ecgfounder_request_seconds", "request latency", ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_windows = Histogram("ecgfounder_batch_windows", "windows per forward pass",
                                       buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_requests = Histogram("ecgfounder_batch_requests", "requests per forward pass",
                                        buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.forward = Histogram("ecgfounder_forward_seconds", "forward pass time", buckets=_LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("ecgfounder_rejected", "requests refused before analysis", ["reason"], registry=r)
        g = Gauge("ecgfounder_inflight_requests", "requests admitted and not yet answered", registry=r)
        g.set_function(inflight)

    def on_batch(self, n_windows: int, n_requests: int, seconds: float) -> None:
        self.batch_windows.observe(n_windows)
        self.batch_requests.observe(n_requests)
        self.forward.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self, app: Any) -> Any:
        """ASGI middleware counting every HTTP request by route (unknown paths count as ``other``)."""
        metrics = self

        async def wrapped(scope: dict, receive: Callable, send: Callable) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path = scope.get("path", "")
            route = path if path in metrics.routes else ("/viewer" if path.startswith("/viewer") else "other")
            status = 500
            t0 = time.perf_counter()

            async def send_status(msg: dict) -> None:
                nonlocal status
                if msg["type"] == "http.response.start":
                    status = int(msg["status"])
                await send(msg)

            try:
                await app(scope, receive, send_status)
            finally:
                metrics.requests.labels(route, str(status)).inc()
                metrics.latency.labels(route).observe(time.perf_counter() - t0)

        return wrapped
