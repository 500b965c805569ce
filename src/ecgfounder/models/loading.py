"""Safe, strict checkpoint loading and our own safetensors format.

* Published ``.pth`` files are read with ``torch.load(weights_only=True)`` and an allow-list of
  exactly the numpy scalar/dtype globals their metadata needs.  A file that needs anything else
  is refused with the name of the global; nothing is ever fully unpickled.
* ``state_dict`` / ``model`` nesting and ``module.`` / ``_orig_mod.`` prefixes are unwrapped.
* Loading is strict by default; a mismatch names the missing and unexpected keys.
* Our format is a ``.safetensors`` file whose header holds JSON metadata (architecture, labels,
  preprocessing contract, task, source and hash, and a SHA-256 of its tensors and these claims, checked
  when it is loaded: :func:`~ecgfounder.models.tensorchecks.check_claims`); a ``.json`` copy is written beside it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .._fileio import atomic_path, atomic_write, to_jsonable
from ..errors import CheckpointError, SetupError
from ..recording import FS_MAX, FS_MIN
from .description import FORMAT_NAME, FORMAT_VERSION, ModelDescription, model_metadata
from .hubref import HF_SCHEME, WEIGHTS_NAME, fetch_pretrained
from .net1d import Net1D, Net1DConfig
from .state_dicts import unwrap_state_dict
from .tensorchecks import DIGEST_KEY, check_claims, check_finite, check_size, check_stored, config_from_meta, sealed_digest
from .weights import download_weights, resolve_known, sha256_cached

__all__ = [
    "load_model",
    "save_model",
    "convert_checkpoint",
    "read_checkpoint",
    "unwrap_state_dict",
    "config_from_state_dict",
    "FORMAT_NAME",
]

# Test oracles live in ecgfounder.testing; these names keep the former import path working.
from ..testing import build_synthetic_checkpoint, synthetic_state_dict  # noqa: E402,F401

_META_KEY = "ecgfounder"


def _numpy_safe_globals() -> list:
    """The numpy globals that a checkpoint's numpy-scalar metadata legitimately needs."""
    out: list = []
    scalar = None
    try:
        from numpy._core.multiarray import scalar as scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar as scalar  # type: ignore[no-redef]
    out += [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    out.append(np.dtype)
    dtypes_mod = getattr(np, "dtypes", None)
    if dtypes_mod is not None:
        for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType",
                     "Int16DType", "Int8DType", "UInt8DType", "BoolDType"):
            cls = getattr(dtypes_mod, name, None)
            if cls is not None:
                out.append(cls)
    return out


def _check_zip(path: Path) -> None:
    """Before torch reads a zip checkpoint: a readable central directory and members that do not
    expand beyond the file (torch stores tensors uncompressed; a deflated giant member is a bomb)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(i.file_size for i in zf.infolist())
            program = any(n.endswith("/constants.pkl") for n in zf.namelist())  # (torch's mark of TorchScript)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt zip: {exc}).") from None
    if program:
        raise CheckpointError(f"{path}: is a TorchScript archive (a program, e.g. from ecgfounder export), not a checkpoint; "
                              "run it with torch.jit.load, or give the .pth/.safetensors weights it was made from.")
    if declared > 2 * size + (16 << 20):
        raise CheckpointError(f"{path}: checkpoint members declare {declared} bytes in a {size}-byte file "
                              "(a decompression bomb?); refused.")


def _pickle_protocol(path: Path, zipped: bool) -> int:
    """The pickle protocol of a torch checkpoint's object (``0``: not told)."""
    try:
        if zipped:
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                head = zf.open(name).read(2) if name else b""
        else:
            with open(path, "rb") as fh:
                head = fh.read(2)
    except (OSError, zipfile.BadZipFile, ValueError):
        return 0
    return head[1] if len(head) == 2 and head[0] == 0x80 else 0


def _torch_load_safe(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with the numpy allow-list; refuses anything else."""
    import warnings

    with open(path, "rb") as fh:
        zipped = fh.read(4) == b"PK\x03\x04"
    if zipped:
        _check_zip(path)
    try:
        # (an open file: given a path named .safetensors, torch.load reads it as safetensors)
        with torch.serialization.safe_globals(_numpy_safe_globals()), open(path, "rb") as fh, \
                warnings.catch_warnings():  # (torch's advice on protocols >2, once per pickle: said below if it fails)
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = " ".join(str(exc).split())
        needed, proto = "", _pickle_protocol(path, zipped)
        if "Unsupported operand" in text and proto > 3:
            raise CheckpointError(
                f"{path}: refused to load. It was saved with pickle protocol {proto} (torch.save(..., "
                f"pickle_protocol={proto})), which torch's safe loader cannot read, and the file is never fully "
                "unpickled. If you trust it, re-save it with torch.save's default protocol from a trusted environment."
            ) from None
        if "GLOBAL " in text:
            needed = text.split("GLOBAL ", 1)[1].split(" ")[0]
            why = f"It needs {needed} to be unpickled, which could run arbitrary code"
        else:
            detail = text.split("WeightsUnpickler error:", 1)[-1].split(" Check the documentation")[0].strip()
            why = f"Its pickle holds more than tensors and plain data ({detail[:120]})"
        raise CheckpointError(
            f"{path}: refused to load. {why}; only tensors, plain containers and numpy scalars are "
            "allowed, and the file is never fully unpickled. If you trust it, re-save its state_dict "
            "with torch.save(model.state_dict(), ...) from a trusted environment."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, MemoryError, OverflowError,
            TypeError, KeyError, AttributeError, IndexError) as exc:  # OSError: a cut zip (Errno 22)
        msg = f"{type(exc).__name__}: " + " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated?): {msg}") from None


def config_from_state_dict(sd: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> Net1DConfig:
    """Infer the :class:`Net1DConfig` of a Net1D state dict from its tensor shapes."""
    if "first_conv.conv.weight" not in sd:
        raise CheckpointError(
            f"{source}: no 'first_conv.conv.weight'; this is not an ECGFounder/Net1D state dict "
            f"(first keys: {list(sd)[:5]})."
        )
    try:
        return _infer_config(sd, source)
    except KeyError as exc:
        raise CheckpointError(f"{source}: state dict lacks {exc}, which the architecture is read from; the checkpoint "
                              "is incomplete (not a whole Net1D state dict).") from None
    except (ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
        shapes = {k: tuple(sd[k].shape) for k in ("first_conv.conv.weight", "stage_list.0.block_list.0.conv2.conv.weight")
                  if k in sd}
        raise CheckpointError(f"{source}: tensor shapes do not describe a Net1D ({' '.join(str(exc).split())[:120]}; "
                              f"shapes: {shapes}); the checkpoint is corrupt or of another architecture.") from None


def _infer_config(sd: Mapping[str, torch.Tensor], source: str) -> Net1DConfig:
    base, in_ch, k = (int(v) for v in sd["first_conv.conv.weight"].shape)
    filters, blocks = [], []
    i = 0
    while f"stage_list.{i}.block_list.0.conv3.conv.weight" in sd:
        filters.append(int(sd[f"stage_list.{i}.block_list.0.conv3.conv.weight"].shape[0]))
        m = 0
        while f"stage_list.{i}.block_list.{m}.conv3.conv.weight" in sd:
            m += 1
        blocks.append(m)
        i += 1
    if not filters:
        raise CheckpointError(f"{source}: no stage_list.* blocks found; not a Net1D state dict.")
    mid = int(sd["stage_list.0.block_list.0.conv2.conv.weight"].shape[0])
    group_in = int(sd["stage_list.0.block_list.0.conv2.conv.weight"].shape[1])
    n_classes = int(sd["dense.weight"].shape[0]) if "dense.weight" in sd else 0
    if "dense.weight" not in sd and "dense.bias" in sd:  # a head without its weight: strict loading names it
        n_classes = int(sd["dense.bias"].shape[0])
    return Net1DConfig(
        in_channels=in_ch,
        base_filters=base,
        filter_list=tuple(filters),
        m_blocks_list=tuple(blocks),
        kernel_size=k,
        groups_width=group_in,
        ratio=mid / filters[0],
        n_classes=n_classes,
    )


def _load_state_strict(model: Net1D, sd: Mapping[str, torch.Tensor], strict: bool, source: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes do not fit the architecture: {'; '.join(wrong[:5])}"
                              + (f" (+{len(wrong) - 5} more)" if len(wrong) > 5 else ""))
    # load_state_dict casts silently: integer or boolean weights would load as numbers, and float64
    # values beyond the float32 range as infinities (past the NaN/inf check of the file's tensors)
    kinds = [f"{k} is {sd[k].dtype} where the model holds {own[k].dtype}" for k in own
             if k in sd and sd[k].dtype != own[k].dtype and (sd[k].is_floating_point() != own[k].is_floating_point()
                                                             or sd[k].is_complex())]
    kinds += [f"{k} ({sd[k].dtype}) overflows {own[k].dtype}" for k in own
              if k in sd and not kinds and sd[k].dtype != own[k].dtype and own[k].is_floating_point()
              and not bool(torch.isfinite(sd[k].to(own[k].dtype)).all())]
    if kinds:
        raise CheckpointError(f"{source}: tensor types do not fit the architecture: {'; '.join(kinds[:5])}"
                              + (f" (+{len(kinds) - 5} more)" if len(kinds) > 5 else "")
                              + "; weights must be floating point (float32 as published); the checkpoint is corrupt.")
    if strict and (missing or unexpected):
        def _fmt(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        raise CheckpointError(
            f"{source}: state dict does not match the architecture "
            f"(missing keys: {_fmt(missing) or 'none'}; unexpected keys: {_fmt(unexpected) or 'none'}). "
            "Pass strict=False (CLI: --no-strict) only if you know why."
        )
    if missing or unexpected:  # (strict=False) loaded all the same: said, not silent
        import warnings

        warnings.warn(f"{source}: loaded with strict=False (CLI: --no-strict): {len(missing)} tensor(s) of the "
                      f"architecture left at their initial values ({', '.join(missing[:4]) or 'none'}), "
                      f"{len(unexpected)} of the file ignored ({', '.join(unexpected[:4]) or 'none'}).", stacklevel=3)
    model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)


def _check_meta_types(meta: Mapping[str, Any]) -> None:
    """The JSON types of the description's fields, checked before they are used: a string where
    the labels or the contract's leads belong is a sequence of characters to Python, and would
    load as one label or lead per character."""
    from .heads import TASKS

    def bad(field: str, want: str, got: Any) -> CheckpointError:
        return CheckpointError(f"invalid checkpoint metadata: {field} must be {want}; got {type(got).__name__} "
                               f"{str(got)[:60]!r}. Re-save the model with save_model().")

    labels = meta.get("labels")
    if labels is not None and not (isinstance(labels, (list, tuple)) and all(isinstance(x, str) and x for x in labels)):
        raise bad("'labels'", "a list of non-empty strings, one per output (or null)", labels)
    for key in ("task_meta", "source"):
        if meta.get(key) is not None and not isinstance(meta[key], Mapping):
            raise bad(f"'{key}'", "an object", meta[key])
    task = (meta.get("task_meta") or {}).get("task", "multilabel")
    if task not in TASKS:
        raise bad("'task_meta.task'", f"one of {', '.join(TASKS)}", task)
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for key in ("target_mean", "target_std"):  # one number, or one per output
        v = (meta.get("task_meta") or {}).get(key)
        if v is not None and not (number(v) or (isinstance(v, (list, tuple)) and all(map(number, v)))):
            raise bad(f"'task_meta.{key}'", "a number or a list of numbers (one per output)", v)
    contract = meta.get("contract")
    if contract is None:
        return
    if not isinstance(contract, Mapping):
        raise bad("'contract'", "an object", contract)
    leads = contract.get("leads", ())
    if not (isinstance(leads, (list, tuple)) and all(isinstance(x, str) for x in leads)):
        raise bad("'contract.leads'", "a list of lead names", leads)
    if len(set(leads)) != len(leads):
        raise bad("'contract.leads'", "distinct lead names", leads)
    for key in ("n_samples", "band_order"):
        v = contract.get(key, 1)
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad(f"'contract.{key}'", "an integer", v)
    for key in ("fs", "notch_hz", "notch_q", "baseline_window_s"):
        v = contract.get(key, 1.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad(f"'contract.{key}'", "a number", v)


def _finish(model: Net1D, meta: Mapping[str, Any]) -> Net1D:
    """Attach the description stored in ``meta`` (the one place a loaded model gets it)."""
    _check_meta_types(meta)
    try:
        model.description = ModelDescription.for_model(model.config.in_channels, model.num_classes, meta,
                                                       unknown_labels="none")
    except (TypeError, ValueError, AttributeError) as exc:
        why = " ".join(str(exc).split())[:200]  # (the description's own check names the metadata already)
        raise CheckpointError(why if why.startswith("checkpoint metadata") else f"invalid checkpoint metadata: {why}") \
            from None
    c = model.description.contract
    if c is not None and not (FS_MIN <= c.fs <= FS_MAX and 1 <= c.n_samples <= 10 * FS_MAX * 60):
        raise CheckpointError(f"checkpoint contract asks for {c.n_samples} samples at {c.fs:g} Hz; expected "
                              f"{FS_MIN:g}-{FS_MAX:g} Hz and windows of at most 10 min.")
    model.eval()
    return model


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, metadata)`` of a checkpoint file (published ``.pth`` or our ``.safetensors``)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint file not found.")
    if not p.is_file():
        raise CheckpointError(f"{p}: is a folder (or not a regular file), not a checkpoint; give the weights file "
                              "itself (.pth or .safetensors), or a folder written by save_pretrained "
                              f"({WEIGHTS_NAME}).")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: checkpoint file is empty.")
    with open(p, "rb") as f:
        head = f.read(16)
    # the content decides, not the name: safetensors is an 8-byte little-endian header length, then
    # the JSON header; torch's format a zip, its legacy one a pickle (opening with b"\x80")
    torch_file = head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[8:9] != b"{")
    if not torch_file:
        if p.suffix != ".safetensors" and head[8:9] != b"{":
            raise CheckpointError(f"{p}: not a checkpoint: neither a PyTorch file (zip or pickle) nor safetensors "
                                  f"(it begins with {head[:8]!r}); give the .pth or .safetensors weights file.")
        sd, meta = _read_safetensors(p)
        check_finite(p, sd)
        return sd, meta
    obj = _torch_load_safe(p)
    sd = unwrap_state_dict(obj, source=str(p))
    check_stored(p, sd)
    check_finite(p, sd)
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for k in ("epoch", "step", "val_auroc"):
            if k in obj and not isinstance(obj[k], (torch.Tensor, Mapping)):
                v = obj[k]
                meta.setdefault("checkpoint_info", {})[k] = v.item() if hasattr(v, "item") else v
    return sd, meta


def _read_safetensors(p: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            header = f.metadata() or {}
        sd = load_file(str(p))
    except (SafetensorError, OSError, ValueError, MemoryError, OverflowError, RuntimeError) as exc:
        raise CheckpointError(f"{p}: not a readable safetensors file: {' '.join(str(exc).split())[:200]}") from None
    meta: Any = {}
    if _META_KEY in header:
        try:
            meta = json.loads(header[_META_KEY])
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{p}: the '{_META_KEY}' metadata is not valid JSON ({exc}).") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{p}: the '{_META_KEY}' metadata is a {type(meta).__name__}, not a JSON object.")
    return sd, meta


def load_model(
    source: str | os.PathLike = "12-lead",
    *,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Net1D:
    """Load ECGFounder weights into a :class:`Net1D`, in eval mode, with labels and contract.

    Args:
        source: ``"12-lead"`` or ``"1-lead"`` (published weights, downloaded from the Hugging Face
            Hub into its standard cache and SHA-256 checked where the hash is known), a published
            ``.pth`` file, a ``.safetensors`` file written by :func:`save_model`, a folder written by
            :func:`~ecgfounder.models.hub.save_pretrained`, or a model shared on the Hub,
            ``"hf://owner/name[@revision]"`` (see :mod:`ecgfounder.models.hub`).
        map_location: device for the weights.
        strict: refuse state dicts whose keys differ from the architecture, and files of ours whose
            tensors are not the ones saved with their description (default).  ``False``: load them
            (the description's name, hash and source dropped where the tensors are others), warned.
    """
    p, known = _locate(source, cache_dir)
    return _load_file(p, known, strict).to(map_location)


def _locate(source: str | os.PathLike, cache_dir: str | os.PathLike | None) -> tuple[Path, Any]:
    """``(the weights file, its KnownWeights or None)`` of a :func:`load_model` source, fetched if needed."""
    known = None
    p = Path(source)
    if str(source).startswith(HF_SCHEME):  # a model shared on the Hub (models/hub.py)
        p = fetch_pretrained(str(source), cache_dir=cache_dir)
    elif not p.exists():
        known = resolve_known(str(source))
        if known is None:
            if p.suffix or os.sep in str(source):
                raise CheckpointError(f"checkpoint file {source} not found.")
            raise SetupError(f"unknown weights {str(source)!r}: not a file, and not a known name "
                             f"({', '.join(['12-lead', '1-lead'])}); pass a checkpoint path or one of those names.",
                             "model")
        p = download_weights(known.name, cache_dir=cache_dir)
    if p.is_dir() and (p / WEIGHTS_NAME).is_file():  # a folder written by save_pretrained (models/hub.py)
        p = p / WEIGHTS_NAME
    return p, known


def _load_file(p: Path, known: Any, strict: bool) -> Net1D:
    before = (p.stat(), time.time_ns())  # (the file as it was before it was read: its digest is remembered under it)
    sd, meta = read_checkpoint(p)
    version = meta.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):  # (a release whose fields may mean otherwise)
        raise CheckpointError(f"{p}: written as format_version={version!r}; this ecgfounder reads format_version="
                              f"{FORMAT_VERSION} (a newer release may read it: pip install -U ecgfounder).")
    meta = check_claims(p, sd, meta, strict, before)
    if meta.get("config"):
        cfg = config_from_meta(p, meta["config"], sd)
    else:
        cfg = config_from_state_dict(sd, source=str(p))
        check_size(p, cfg, sd, "its tensor shapes describe")
    if known is not None and (cfg.in_channels, cfg.n_classes) != (known.n_leads, 150):
        raise CheckpointError(f"{p}: holds a Net1D of {cfg.in_channels} input lead(s) and {cfg.n_classes} outputs, "
                              f"not the {known.name} ECGFounder weights ({known.n_leads} lead(s), 150 outputs) it was "
                              "fetched as: the cached file is another one. Remove it and load the name again (it is "
                              "downloaded anew), or load the file by its own path.")
    model = Net1D(cfg)
    _load_state_strict(model, sd, strict, str(p))
    if known is not None:  # published weights: their description, with the file they came from
        meta = {**known.description.to_dict(), **{k: v for k, v in meta.items() if v is not None}}
        meta["source"] = {**known.description.source, "file": str(p)}
    elif not meta.get("source"):
        meta["source"] = {"file": str(p), "name": None}
    try:
        model = _finish(model, meta)
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    return model


def save_model(model: Net1D, path: str | os.PathLike, *, source: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as ``.safetensors`` (metadata in the header) plus a ``.json`` copy of the
    metadata beside it.  Written atomically (temporary file, then rename).  The metadata records a
    SHA-256 of the tensors written and of the description's name, hash and source (``integrity_sha256``):
    loading checks that the file's tensors are still the ones that description was saved with."""
    from safetensors.torch import save_file

    p = Path(path)
    if p.suffix != ".safetensors":
        p = p.with_suffix(".safetensors")
    meta = model_metadata(model)
    if source:
        meta["source"] = {**meta["source"], **to_jsonable(dict(source))}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = to_jsonable({**meta, "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    meta[DIGEST_KEY] = sealed_digest(tensors, meta)
    with atomic_path(p) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})
    atomic_write(p.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return p


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike | None = None, *, strict: bool = True) -> Path:
    """Convert a published ``.pth`` (or a known name, or any :func:`load_model` source) to our
    ``.safetensors`` format, by default beside the file read; returns the path.  The file converted
    is recorded (path and SHA-256) where the description names no source of its own; one of ours
    keeps its description as it is."""
    from .._fileio import same_file

    p, known = _locate(src, None)
    model = _load_file(p, known, strict)
    out = Path(dst) if dst else p.with_suffix(".safetensors")
    if same_file(out, p) or same_file(out.with_suffix(".safetensors"), p):
        raise CheckpointError(f"{p}: is already a .safetensors file, and converting it to {out} would replace it; give "
                              "another output file (dst=, CLI: -o FILE).")
    mine = model.source.get("file") == str(p)  # (the loader named the file: it has no provenance of its own)
    return save_model(model, out, source={"file": str(p), "sha256": sha256_cached(p)} if mine else None)
