"""Checks of a checkpoint's tensors and declared architecture, made before anything is built from
them: every declared weight stored in the file (no expanded views or shared storages inflating a
small file into gigabytes), finite values, an architecture no larger than the tensors held, and
tensors that are the ones saved with the file's description (:func:`check_claims`)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import CheckpointError
from .description import tensors_digest
from .net1d import Net1DConfig
from .weights import digest_cached

__all__ = ["check_stored", "check_finite", "config_from_meta", "check_size", "check_claims", "sealed_digest",
           "CONFIG_BOUNDS", "DIGEST_KEY"]

DIGEST_KEY = "integrity_sha256"  # (the metadata field save_model writes: the sealed_digest of what it wrote)
_CLAIMS = ("name", "sha256", "revision", "source")  # (what the weights are: dropped when the tensors are others)


def sealed_digest(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> str:
    """SHA-256 of a file's tensors and of the claims its description makes about them (name, hash,
    revision, source; JSON as stored): :func:`~ecgfounder.models.loading.save_model` records it as
    ``DIGEST_KEY``; :func:`check_claims` checks a file against it."""
    return tensors_digest(tensors, json.dumps({k: meta.get(k) for k in _CLAIMS}, sort_keys=True))


def check_stored(p: Path, sd: Mapping[str, torch.Tensor]) -> None:
    """Refuse tensors the file does not hold: a saved view may repeat a few stored numbers (an
    expanded tensor, stride 0) or several tensors may share one storage, so that a small file
    declares gigabytes of weights, which the model built for them would allocate.  One tensor under
    two names (a module held twice by a wrapper) counts once."""
    stores: dict[int, int] = {}
    views: dict[tuple, int] = {}
    for k, v in sd.items():
        s = v.untyped_storage()
        stores[s.data_ptr() if s.nbytes() else -1 - len(stores)] = s.nbytes()
        if v.numel() * v.element_size() > s.nbytes():
            raise CheckpointError(f"{p}: tensor {k} {tuple(v.shape)} is a view of {s.nbytes()} stored bytes (an expanded "
                                  "or overlapping tensor); a saved state dict holds every weight; refused.")
        views[(v.data_ptr(), v.dtype, tuple(v.shape), v.stride())] = v.numel() * v.element_size()
    declared, held = sum(views.values()), sum(stores.values())
    if declared > held:
        raise CheckpointError(f"{p}: its tensors declare {declared} bytes of weights over {held} stored bytes (views "
                              "sharing storage); a saved state dict holds every weight; refused.")


def check_finite(p: Path, sd: Mapping[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or infinity (they make every output NaN: empty cells, exit 0)."""
    for k, v in sd.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{p}: tensor {k} holds NaN or infinite values; the checkpoint is corrupt.")


CONFIG_BOUNDS = {"in_channels": 64, "base_filters": 4096, "kernel_size": 1024, "stride": 64,
                 "groups_width": 4096, "n_classes": 100_000}


def config_from_meta(p: Path, cfg: Any, sd: Mapping[str, torch.Tensor]) -> Net1DConfig:
    """The architecture a checkpoint's metadata declares, checked before anything is allocated:
    known keys, sane sizes, and a parameter count close to the tensors the file actually holds."""
    if not isinstance(cfg, Mapping):
        raise CheckpointError(f"{p}: metadata 'config' is a {type(cfg).__name__}, not an object.")
    known = {f.name for f in dataclasses.fields(Net1DConfig)}
    unknown = sorted(set(map(str, cfg)) - known)
    if unknown:
        raise CheckpointError(f"{p}: metadata 'config' has unknown keys {unknown}; known: {sorted(known)}.")
    for k, v in cfg.items():  # JSON types: 16.5 or "16" where an integer belongs, "no" where a boolean does
        kind = bool if k in ("use_bn", "use_do") else (int, float) if k == "ratio" else None
        ints = v if k in ("filter_list", "m_blocks_list") else [v] if kind is None else []
        if (kind is not None and (not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)))) or \
                (k in ("filter_list", "m_blocks_list") and not isinstance(v, list)) or \
                any(isinstance(x, bool) or not isinstance(x, int) for x in ints):
            want = "true or false" if kind is bool else "a number" if kind else \
                "a list of integers" if k.endswith("_list") else "an integer"
            raise CheckpointError(f"{p}: metadata 'config' {k}={v!r} must be {want}; re-save the model with save_model().")
    try:
        conf = Net1DConfig(**cfg)
        for k, hi in CONFIG_BOUNDS.items():
            if not 0 <= int(getattr(conf, k)) <= hi:
                raise ValueError(f"{k}={getattr(conf, k)!r} is outside 0..{hi}")
        if not 0 < float(conf.ratio) <= 16 or len(conf.filter_list) > 32 or max(conf.filter_list) > 16384 \
                or max(conf.m_blocks_list) > 64:
            raise ValueError(f"stage sizes {conf.filter_list} x {conf.m_blocks_list} (ratio {conf.ratio}) are absurd")
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{p}: metadata 'config' is not a valid Net1DConfig: {' '.join(str(exc).split())[:200]}") from None
    check_size(p, conf, sd, "metadata 'config' describes")
    return conf


def check_size(p: Path, conf: Net1DConfig, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse an architecture far larger than the tensors the file holds, before it is allocated."""
    stored = sum(int(v.numel()) for v in sd.values())
    est, prev = conf.in_channels * conf.base_filters * conf.kernel_size, conf.base_filters
    for w, m in zip(conf.filter_list, conf.m_blocks_list):
        mid = int(w * conf.ratio)
        for _ in range(m):
            est += prev * mid + mid * conf.groups_width * conf.kernel_size + mid * w
            prev = w
    est += prev * conf.n_classes
    if est > 4 * stored + 1_000_000:
        raise CheckpointError(f"{p}: {what} a model of about {est:.3g} parameters but the file holds {stored}; refused.")


def _claims_text(meta: Mapping[str, Any]) -> str:
    src = meta.get("source") if isinstance(meta.get("source"), Mapping) else {}
    said = [f"name {meta['name']!r}" if meta.get("name") else "", f"SHA-256 {meta['sha256']}" if meta.get("sha256") else "",
            f"source file {src['file']}" if src.get("file") else "",
            f"source SHA-256 {src['sha256']}" if src.get("sha256") and src.get("sha256") != meta.get("sha256") else ""]
    return ", ".join(x for x in said if x)


def check_claims(p: Path, sd: Mapping[str, torch.Tensor], meta: Mapping[str, Any], strict: bool,
                 before: tuple[os.stat_result, int]) -> dict[str, Any]:
    """The metadata of a file whose tensors were read into ``sd``, checked against the
    :func:`sealed_digest` that :func:`~ecgfounder.models.loading.save_model` recorded in it
    (``DIGEST_KEY``): a file rewritten with other tensors, or whose header was edited, claims a name
    and hash its weights do not have.  Refused (``strict``), or loaded with those claims (name, hash, revision,
    source) dropped and a warning (``strict=False``).  The digest is remembered under the file's
    identity (``before``: its stat and the time, taken before it was read): an unchanged file is
    checked once.  A file written before the digest was recorded is taken as it is."""
    claimed = meta.get(DIGEST_KEY)
    if claimed is None:
        return dict(meta)
    actual = digest_cached(p, lambda _: sealed_digest(sd, meta), kind=DIGEST_KEY, before=before,
                           expected=claimed if isinstance(claimed, str) else None)
    if actual == claimed:
        return dict(meta)
    said = (f"its tensors and description are not those save_model wrote together: the SHA-256 of its tensors and "
            f"claims is {actual}, "
            f"'{DIGEST_KEY}' records {str(claimed)[:80]!r} (other tensors written into the file, or its header "
            "edited, after save_model wrote it)")
    claims = _claims_text(meta)
    if strict:
        raise CheckpointError(f"{p}: {said}. " + (f"It claims {claims}, which cannot be taken for these weights" if claims else
                                                  "Its description was saved with other weights") + "; refused. "
                              "Restore the file as save_model wrote it; or, to use these tensors, load them with "
                              "strict=False (CLI: --no-strict), which drops those claims, and save the model anew "
                              "with save_model().")
    import warnings

    warnings.warn(f"{p}: loaded with strict=False (CLI: --no-strict): {said}; its claims ({claims or 'none'}) were "
                  "dropped, its labels, contract and task taken as written. save_model() records what it holds.",
                  stacklevel=4)
    kept = {k: v for k, v in meta.items() if k not in _CLAIMS and k != DIGEST_KEY}
    return {**kept, "source": {"file": str(p), "name": None}}
