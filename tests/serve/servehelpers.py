"""Helpers of the service tests: test files, a live uvicorn server, an inline-signal request."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DATA = Path(__file__).resolve().parents[1] / "data"
MUSE = DATA / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml"
WFDB = DATA / "cinc2021" / "E07500"


@contextmanager
def running_server(app, **config) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread; yields the base URL.
    ``config``: more arguments of ``uvicorn.Config`` (those ``ecgfounder serve`` gives it)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": "warning", "lifespan": "on", **config}))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


STANDARD_12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def sine_signal(seconds: float = 4.0, fs: float = 500.0, seed: int = 0) -> dict:
    """A JSON request body: 12 leads of a 1.2 Hz 'heartbeat' plus noise, in mV."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    x = np.stack([np.sin(2 * np.pi * 1.2 * t + k) + 0.05 * rng.standard_normal(t.size) for k in range(12)])
    return {"signal": np.round(x, 4).tolist(), "fs": fs, "leads": STANDARD_12, "id": f"sine{seed}"}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive of ``{name: bytes}``, in that order."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def hdf5_batch(n: int, seed: int = 0) -> bytes:
    """An HDF5 file of ``n`` 10-s 12-lead 500-Hz recordings of noise (dataset ``tracings``, CODE-15's
    layout: recordings × samples × leads), its rate and leads as attributes."""
    import io

    import h5py
    import numpy as np

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        d = f.create_dataset("tracings", data=np.random.default_rng(seed).normal(0, 0.3, (n, 5000, 12)))
        d.attrs["fs"] = 500.0
        d.attrs["leads"] = STANDARD_12
    return buf.getvalue()
