"""``ecgfounder env``: versions, devices and cache paths, for bug reports."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
from pathlib import Path

__all__ = ["add_parser", "run", "environment", "package_caches"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="print versions, devices and cache paths (for bug reports)",
                       description="Print what a bug report needs: the versions of the package and its libraries, "
                       "the devices torch sees, where the published weights are cached (or how to download them), "
                       "the package's cache, and the inference path --precision auto chose per model on this machine "
                       "(with the folder to remove to measure again).")
    p.set_defaults(func=run)


def environment() -> dict[str, str]:
    from .. import __version__

    info: dict[str, str] = {"ecgfounder": __version__, "python": platform.python_version(),
                            "platform": platform.platform()}
    for mod in ("torch", "numpy", "scipy", "pandas", "wfdb", "huggingface_hub", "safetensors", "sklearn",
                "pydicom", "pyedflib", "h5py", "pyarrow", "onnxruntime"):
        try:
            info[mod] = getattr(importlib.import_module(mod), "__version__", "?")
        except ImportError:
            info[mod] = "not installed"
    import torch

    info["torch threads"] = str(torch.get_num_threads())
    info["cuda"] = (f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})" if torch.cuda.is_available()
                    else "not available")
    info["mkldnn"] = str(torch.backends.mkldnn.is_available())
    try:
        from huggingface_hub import constants

        info["hf cache"] = str(constants.HF_HUB_CACHE)
        info["hf endpoint"] = str(constants.ENDPOINT)
    except ImportError:
        pass
    info["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE", "")
    from ..models.weights import KNOWN_WEIGHTS, cached_weights

    for name, w in KNOWN_WEIGHTS.items():
        at = cached_weights(name)
        info[f"weights {name}"] = (str(at) if at else f"not in the cache (ecgfounder download {name}, ~{w.size_mb} MB)")
    info.update(package_caches())
    from ..runtime import speed_info  # CPU capability, the cached 'auto' choices, preprocessing chain

    info.update(speed_info())
    if torch.cuda.is_available():
        from ..prediction.workers import default_workers

        info["preparation (GPU)"] = (f"{default_workers('cuda')} worker process(es) (every core but one) beside a "
                                     "model on the GPU, forked from a server that loaded the readers and warmed "
                                     "the compiled kernels")
    return info


def _size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed while walking
                pass
    return total


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def package_caches() -> dict[str, str]:
    """The package's own cache folder (``$ECGFOUNDER_CACHE``, ``$XDG_CACHE_HOME/ecgfounder`` or
    ``~/.cache/ecgfounder``) with its size, and the size of each folder in it (``windows``: the
    fine-tuning window cache, ``runtime``: exported/quantised models, ...)."""
    from .._fileio import CACHE_ENV, cache_dir

    root = cache_dir()
    if root.exists() and not root.is_dir():
        return {"ecgfounder cache": f"{root} (a file, not a folder: nothing can be cached; set {CACHE_ENV} to a "
                                    "folder)"}
    if not root.is_dir():
        return {"ecgfounder cache": f"{root} (empty; set {CACHE_ENV} to move it)"}
    subs = sorted(p for p in root.iterdir() if p.is_dir())
    sizes = {p.name: _size(p) for p in subs}
    out = {"ecgfounder cache": f"{root} ({_human(_size(root))}; set {CACHE_ENV} to move it)"}
    for name, size in sizes.items():
        out[f"cache/{name}"] = _human(size)
    return out


def run(args: argparse.Namespace) -> int:  # noqa: ARG001
    for k, v in environment().items():
        print(f"{k:>16}: {v}")
    return 0
