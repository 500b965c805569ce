"""The weights inside a checkpoint: the nesting (``state_dict``, ``model``, ...) followed and the
wrappers' prefixes (DataParallel/DDP ``module.``, torch.compile ``_orig_mod.``, a Lightning
module's attribute) removed, refusing what would otherwise be guessed."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..errors import CheckpointError

__all__ = ["unwrap_state_dict"]

_FIRST = "first_conv.conv.weight"  # the first key of every Net1D state dict
_NESTED = ("state_dict", "model_state_dict", "model", "module")  # keys a checkpoint nests its weights under


def _holds_tensors(m: Mapping, depth: int = 4) -> bool:
    """Whether ``m`` holds tensors, itself or under nested mappings (not a config dict beside the weights)."""
    return any(isinstance(v, torch.Tensor) or (depth > 0 and isinstance(v, Mapping) and _holds_tensors(v, depth - 1))
               for v in m.values())


def _same_tensors(a: Mapping, b: Mapping) -> bool:
    """Whether two nested weight dicts hold the same tensors (a checkpoint keeping one network twice)."""
    if a is b:
        return True
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            if not _same_tensors(x, y):
                return False
        elif isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x, y):
                return False
    return True


def unwrap_state_dict(obj: Any, *, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: follows ``state_dict``/``model``/``model_state_dict``
    nesting and strips ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    seen = 0
    while isinstance(obj, Mapping) and seen < 4:
        found = [k for k in _NESTED if k in obj and isinstance(obj[k], Mapping) and _holds_tensors(obj[k])]
        if not found:
            found = [k for k in _NESTED if k in obj and isinstance(obj[k], Mapping)][:1]
        if not found:
            break
        if any(not _same_tensors(obj[found[0]], obj[k]) for k in found[1:]):
            raise CheckpointError(f"{source}: holds different networks' weights under {' and '.join(map(repr, found))}; "
                                  f"which to load is not guessed. Save the one to load alone, e.g. "
                                  f"torch.save(ckpt[{found[0]!r}], 'weights.pth'), and load that file.")
        obj = obj[found[0]]
        seen += 1
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a state dict.")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            f"{source}: no tensors found (top-level keys: {sorted(map(str, obj))[:10]}); is this a model checkpoint?"
        )
    out: dict[str, torch.Tensor] = {}
    named: dict[str, str] = {}
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise CheckpointError(f"{source}: tensor key {k!r} is a {type(k).__name__}, not a name; not a state dict.")
        key = k
        while key.startswith(("module.", "_orig_mod.")):  # in any order: DDP(compile(m)) or compile(DDP(m))
            key = key.split(".", 1)[1]
        if key in out:  # (one of two tensors would load silently, by the order of the file)
            raise CheckpointError(f"{source}: holds both {named[key]!r} and {k!r}, one tensor {key!r} once the "
                                  "'module.'/'_orig_mod.' prefixes are removed; which to load is not guessed. Keep "
                                  "one network's state dict in the file.")
        out[key], named[key] = v, k
    # the network held under one attribute of a wrapper (a Lightning module's "model."): its keys alone
    # lose the prefix; the wrapper's other tensors stay as they are (strict loading names them)
    heads = [k[: -len(_FIRST)] for k in out if k.endswith("." + _FIRST)]
    if _FIRST not in out and len(heads) == 1:
        out = {k.removeprefix(heads[0]): v for k, v in out.items()}
    return out
