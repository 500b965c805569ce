"""Dynamic batching: windows of concurrent requests share one forward pass.

The first request to arrive opens a batch and waits at most ``max_wait_s`` for others; the batch
closes early when it holds ``max_batch`` windows.  One forward pass runs at a time, in one worker
thread, so the model is never entered concurrently; requests that arrive meanwhile form the next
batch.  Admission (how many requests may wait at all) is the caller's business
(:class:`ecgfounder.serve.service.Service`).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

__all__ = ["DynamicBatcher"]

RunFn = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


class DynamicBatcher:
    """Collect ``(n, leads, samples)`` window arrays from many coroutines into batched calls of ``run``.

    Args:
        run: ``run(windows) -> (scores, features)``, called in a worker thread.
        max_batch: windows per batch before it closes early (a single larger request is one batch).
        max_wait_s: how long an open batch waits for more requests.
        on_batch: called with ``(n_windows, n_requests, seconds)`` after each forward pass (metrics).
    """

    def __init__(self, run: RunFn, *, max_batch: int = 32, max_wait_s: float = 0.005,
                 on_batch: Callable[[int, int, float], None] | None = None) -> None:
        self._run = run
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self._on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        if self.running:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgfounder-forward")
        self._task = asyncio.create_task(self._loop(), name="ecgfounder-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and features of ``windows``, computed in some batch."""
        if not self.running:
            raise RuntimeError("the batcher is not running; call start() first (the app's lifespan does).")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((windows, fut))
        return await fut

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        loop = asyncio.get_running_loop()
        first = await self._queue.get()
        items, n = [first], first[0].shape[0]
        deadline = loop.time() + self.max_wait_s
        while n < self.max_batch:
            try:
                remaining = deadline - loop.time()
                item = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self._queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            items.append(item)
            n += item[0].shape[0]
        return [it for it in items if not it[1].done()]  # requests that timed out meanwhile are dropped

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            if not items:
                continue
            x = np.concatenate([w for w, _ in items], axis=0)
            t0 = time.perf_counter()
            try:
                scores, feats = await loop.run_in_executor(self._executor, self._run, x)
            except Exception as exc:  # the forward failed: every request of the batch gets the error
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(int(x.shape[0]), len(items), time.perf_counter() - t0)
            off = 0
            for w, fut in items:
                k = w.shape[0]
                if not fut.done():
                    fut.set_result((scores[off:off + k], feats[off:off + k]))
                off += k
