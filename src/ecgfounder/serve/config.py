"""Settings of the HTTP service, fixed at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """How the service admits, batches and bounds work.

    Attributes:
        max_upload_bytes: largest request body accepted; larger bodies get ``413``, decided from
            ``Content-Length`` before anything is read, or while the bytes stream in.
        max_batch_windows: most 10-s windows in one forward pass (dynamic batching).
        batch_wait_ms: how long the first request of a batch waits for others to join it.
        max_concurrency: requests read and prepared at the same time.
        max_queue: requests allowed to wait beyond ``max_concurrency``; more get ``429``.
        retry_after_s: the ``Retry-After`` given with ``429``.
        request_timeout_s: the limit of one request as a whole, from its admission: receiving its
            body, reading, preparing, waiting and the model, for every recording it holds.  A request
            for one recording answers ``504`` at the limit; a batch answers at the limit with the
            recordings answered by then, the one in progress and those not reached each an item
            ``failed`` saying so (send them again).  A thread already reading or preparing a file
            cannot be stopped: it ends on its own, its ``max_concurrency`` slot held until then.
        token: when set, ``/v1/*`` and ``/metrics`` need ``Authorization: Bearer <token>``.
        threshold: default operating threshold where neither ``thresholds_file`` nor the weights give one.
        thresholds_file: per-label operating thresholds, a CSV (``label,threshold``) as written by
            ``ecgfounder evaluate`` (``thresholds.csv``).
        max_files: most files in one batch request.
        max_record_s: longest recording analysed, in seconds (a file is read no further; a longer
            one gets ``422``): bounds a request's memory and time whatever a compressed upload
            expands to (600 s = 60 windows; a day-long Holter belongs to ``ecgfounder predict``).
        tmp_dir: where uploads are written while they are analysed (deleted after each answer),
            and, in ``ecgfounder serve`` (:func:`~ecgfounder.serve.run_server`), every temporary
            file of the process (the web framework spools uploads over 1 MB while it parses them);
            ``None``: the system temporary directory.
        display_fs: sampling rate of the signal returned for display (``signal=true``).
        threads: torch intra-op threads of the forward pass (``None``: torch's default, one per
            core).  On a machine whose cores are busy with other work, 1 is much faster: an
            OpenMP team whose threads are descheduled waits at every barrier (measured 18 ms with
            1 thread against 1.7 s with 2 for a small model under a load of 11 on 2 cores).
        precision, backend: inference path of :func:`ecgfounder.runtime.make_runner`
            (``fp32``/``bf16``/``int8``/``auto``; ``torch``/``onnxruntime``/``auto``).
    """

    max_upload_bytes: int = 50 * 1024 * 1024
    max_batch_windows: int = 32
    batch_wait_ms: float = 5.0
    max_concurrency: int = 4
    max_queue: int = 64
    retry_after_s: int = 1
    request_timeout_s: float = 60.0
    token: str | None = None
    threshold: float = 0.5
    thresholds_file: Path | None = None
    max_files: int = 64
    max_record_s: float = 600.0
    tmp_dir: Path | None = None
    display_fs: float = 250.0
    threads: int | None = None
    precision: str = "fp32"
    backend: str = "torch"

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_batch_windows", "max_concurrency", "max_files"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ServeConfig.{name} must be >= 1; got {getattr(self, name)!r}.")
        if self.max_queue < 0 or self.batch_wait_ms < 0 or self.request_timeout_s <= 0:
            raise ValueError(
                f"ServeConfig needs max_queue >= 0, batch_wait_ms >= 0 and request_timeout_s > 0; got "
                f"{self.max_queue}, {self.batch_wait_ms}, {self.request_timeout_s}."
            )
        if not self.max_record_s > 0:  # NaN fails too
            raise ValueError(f"ServeConfig.max_record_s must be > 0 (seconds); got {self.max_record_s!r}.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"ServeConfig.threads must be >= 1 or None (torch's default); got {self.threads}.")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"ServeConfig.threshold must be in (0, 1); got {self.threshold}.")
        if self.token is not None and not self.token.strip():
            raise ValueError("ServeConfig.token is empty; give a non-empty token or None for no authentication.")
