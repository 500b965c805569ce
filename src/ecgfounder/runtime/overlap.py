"""Overlap preparation (reading + preprocessing) with inference: a bounded background producer.

:func:`prefetch` runs an iterator (typically the ``(RecordResult, Prepared)`` pairs of the
prediction engine) in a thread and hands its items over in order through a bounded queue, so
records are read and filtered while the model runs on the previous batch.  A thread suffices:
the model (torch, ONNX Runtime, OpenVINO) and the compiled preprocessing kernels release the GIL
while they compute, and no process start-up, pickling or second copy of the windows is paid.
It pays only where a core is free for it (:func:`overlap_pays`): on a CPU whose cores the model's
threads already fill, preparing in turn with inference was measured faster.

Errors raised by the producer are re-raised in the consumer, at the position they occurred.
Leaving the loop early (``break``, an exception, garbage collection) stops the producer.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Iterable, Iterator, TypeVar

__all__ = ["prefetch", "overlap_pays"]

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def overlap_pays(device: str = "cpu", model_threads: int | None = None) -> bool:
    """Whether a prefetch thread speeds prediction up: with the model on a GPU, or when the CPU has
    a core the model's threads leave free.  Measured on 2 cores with int8/OpenVINO on 2 threads
    (``benchmarks/bench_predict.py --serial``): the extra thread preempts the model's workers at
    their barriers and predict fell from 56.9 (prepare, then infer) to 29.9 ECG/s."""
    if not str(device).startswith("cpu"):
        return True
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    return cores > int(model_threads or torch.get_num_threads())


def prefetch(items: Iterable[T], depth: int = 16) -> Iterator[T]:
    """Yield the items of ``items`` in order, produced ahead in a background thread.

    Args:
        items: any iterable; it is iterated in the background thread only.
        depth: how many items may wait (bounds memory: ~240 kB per 10-s 12-lead record).
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1; got {depth}.")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(obj: object) -> bool:
        while not stop.is_set():
            try:
                q.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="ecgfounder-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            obj = q.get()
            if obj is _DONE:
                return
            if isinstance(obj, _Failure):
                raise obj.exc
            yield obj
    finally:
        stop.set()
        thread.join(timeout=5.0)
