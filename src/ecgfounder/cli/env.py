"""``ecgfounder env``: versions, devices and cache paths, for bug reports."""

from __future__ import annotations

import argparse
import importlib
import os
import platform

__all__ = ["add_parser", "run", "environment"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="print versions, devices and cache paths (for bug reports)")
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
    from .._fileio import cache_dir

    root = cache_dir()
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
    info["ecgfounder cache"] = f"{root} ({size / 1e6:.0f} MB; $ECGFOUNDER_CACHE to move it)"
    return info


def run(args: argparse.Namespace) -> int:  # noqa: ARG001
    for k, v in environment().items():
        print(f"{k:>16}: {v}")
    return 0
