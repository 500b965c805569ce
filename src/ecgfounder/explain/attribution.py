"""Attribution: where, on which lead and when, the model found the evidence for a label.

:func:`explain` takes a recording and a model and returns, per label, an attribution over the
model's leads × the recording's own samples (its input rate), stitched from the 10-s, 500-Hz
model windows.  Methods (all through Captum):

``"ig"`` (default): integrated gradients (Sundararajan et al. 2017) of the label's **logit**
    (pre-sigmoid/softmax output; the standardised value for regression heads).  Baseline: all
    zeros in the model's input space, i.e. every lead a flat line at the window's mean over all
    leads (the contract's z-score is one over all leads of a window, not one per lead; for
    ``mode="none"`` contracts: 0 mV).  Path integral
    with ``n_steps`` (default 32) Gauss-Legendre points.  Signed: positive = evidence for the
    label.  Completeness (sum of attributions = logit(x) - logit(baseline)) holds up to the
    reported ``convergence_delta``.
``"gradcam"``: Grad-CAM (Selvaraju et al. 2017) on the output of a stage of the network (default
    the last, ``layer=-1``; ``-2`` the one before), ReLU'd, linearly upsampled to the window.  Net1D
    mixes all leads in its first convolution, so Grad-CAM has no lead resolution: the time map is
    spread evenly over the leads (``lead_resolved=False``; its lead shares are uniform by
    construction) that carry signal.
``"guided_gradcam"``: Captum's guided Grad-CAM, the Grad-CAM time map times the input gradient of
    each lead: lead-resolved, non-negative map weighting.

A lead whose model input is all zeros in a window (a zero-filled missing lead, ``fill_missing``)
gets no attribution there from any method: it is the baseline, and holds no evidence.

Windows overlap when a record is not a multiple of 10 s (the last window is aligned to the end);
where they overlap the attributions are averaged.  Mapping from 500 Hz to the input rate keeps
the attribution mass: each input sample receives the attribution of the time interval it
covers (a cumulative-sum re-binning), so sums over a lead or an interval do not depend on the rate.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .._deps import require
from ..errors import ECGFounderError
from ..models.net1d import Net1D
from ..recording import Recording
from ..signal.filters import resampled_length, resampled_rate
from ..signal.preprocess import PreprocessContract, preprocess_recording, window_starts

__all__ = ["Explanation", "ExplainError", "METHODS", "MAX_WINDOWS", "check_length", "explain", "attribute_windows", "resolve_targets",
           "output_labels", "contract_of", "stitch", "rebin", "check_options"]

METHODS = ("ig", "gradcam", "guided_gradcam")
MAX_WINDOWS = 36  # explain() refuses longer records (6 minutes of 10-s windows) unless raised
BASELINE_TEXT = "zeros in the model input space (every lead flat at the window's mean over all leads, after the z-score)"


class ExplainError(ECGFounderError, ValueError):
    """An attribution request that cannot be answered (unknown label or method, no head)."""


@dataclass(frozen=True)
class Explanation:
    """Attributions of one recording.

    Attributes:
        record: the recording's id (or source file).
        method: ``"ig"``, ``"gradcam"`` or ``"guided_gradcam"``.
        labels: the explained labels, one per row of ``attributions``.
        targets: their output indices in the model's head.
        scores: ``(n_labels,)`` the model's scores for them (probability, or value for
            regression), averaged over windows as :func:`ecgfounder.predict` does.
        leads: the model's input leads (rows of each map); for a single-lead model fed another lead
            (``lead=``), that lead's name.
        fs: the recording's sampling rate; ``attributions`` are at this rate.
        attributions: float32 ``(n_labels, n_leads, n_samples)`` on the recording's samples.
        baseline, n_steps: integrated-gradients settings (``None`` for Grad-CAM).
        layer: Grad-CAM layer (``"stage_list[-1]"``), ``None`` for IG.
        lead_resolved: ``False`` for plain Grad-CAM (one time map shared by all leads).
        convergence_delta: IG completeness error per label (max |delta| over windows).
        notes: what preprocessing noticed (zero-filled leads, padding, ...).
    """

    record: str
    method: str
    labels: tuple[str, ...]
    targets: tuple[int, ...]
    scores: np.ndarray
    leads: tuple[str, ...]
    fs: float
    attributions: np.ndarray
    baseline: str | None = None
    n_steps: int | None = None
    layer: str | None = None
    lead_resolved: bool = True
    convergence_delta: np.ndarray | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __getitem__(self, label: str) -> np.ndarray:
        """The ``(n_leads, n_samples)`` map of one explained label."""
        try:
            return self.attributions[self.labels.index(label)]
        except ValueError:
            raise ExplainError(f"label {label!r} was not explained; explained: {list(self.labels)}.") from None

    def lead_shares(self, positive_only: bool = False):
        """Share of each lead in the attribution mass, per label: a DataFrame (labels × leads)
        whose rows sum to 1.  Mass is ``|attribution|`` (``positive_only``: positive part only)."""
        import pandas as pd

        a = np.clip(self.attributions, 0, None) if positive_only else np.abs(self.attributions)
        mass = a.sum(axis=2, dtype=np.float64)
        tot = mass.sum(axis=1, keepdims=True)
        shares = np.divide(mass, tot, out=np.zeros_like(mass), where=tot > 0)
        return pd.DataFrame(shares, index=list(self.labels), columns=list(self.leads))

    def summary(self, k: int = 3, positive_only: bool = False) -> dict[str, list[tuple[str, float]]]:
        """Per label, the ``k`` leads holding most attribution mass: ``[(lead, share), ...]``
        (``positive_only``: of the evidence for the label, as :meth:`lead_shares`)."""
        df = self.lead_shares(positive_only)
        return {lab: [(str(ld), float(v)) for ld, v in df.loc[lab].sort_values(ascending=False).head(k).items()]
                for lab in df.index}


def output_labels(model: Net1D) -> tuple[str, ...]:
    """One name per output of the model's head (``output_i`` where the weights name none)."""
    labels = tuple(model.labels or ())
    return labels if len(labels) == model.num_classes else tuple(f"output_{i}" for i in range(model.num_classes))


def contract_of(model: Net1D) -> PreprocessContract:
    """The model's preprocessing contract; an error naming the fix when it has none."""
    if model.contract is None:
        raise ExplainError(f"the model ({model.config.in_channels} input channels) has no preprocessing contract, so its "
                           "input cannot be prepared; set model.contract to a PreprocessContract naming its leads.")
    return model.contract


def resolve_targets(labels: Any, names: Sequence[str], scores: np.ndarray | None = None, top: int = 3) -> list[int]:
    """Output indices for ``labels`` (names, indices, one of either, or ``None`` = the ``top``
    highest ``scores``)."""
    if labels is None:
        if scores is None:
            raise ExplainError("labels=None needs scores to pick the top labels; pass labels=[...].")
        return [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")[: max(1, top)]]
    if isinstance(labels, (str, int, np.integer)):
        labels = [labels]
    out = []
    for lab in labels:
        if isinstance(lab, (int, np.integer)):
            if not 0 <= int(lab) < len(names):
                raise ExplainError(f"label index {lab} is out of range; the head has {len(names)} outputs (0-{len(names) - 1}).")
            out.append(int(lab))
        elif str(lab) in names:
            out.append(list(names).index(str(lab)))
        else:
            close = [n for n in names if str(lab).lower() in n.lower()][:5]
            raise ExplainError(
                f"label {lab!r} is not an output of this model; "
                + (f"did you mean one of {close}?" if close else f"its labels are e.g. {list(names)[:5]} (model.labels lists all).")
            )
    return out


def check_options(method: str, n_steps: int) -> None:
    """Refuse an unknown ``method`` or too few integrated-gradients steps (before any work)."""
    if method not in METHODS:
        raise ExplainError(f"unknown attribution method {method!r}; choose one of {METHODS}.")
    if n_steps < 2:
        raise ExplainError(f"n_steps={n_steps}: integrated gradients need at least 2 steps (32 is the default).")


def _stage(model: Net1D, layer: int | str) -> tuple[torch.nn.Module, str]:
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            stages = [n for n in modules if n.startswith("stage_list.") and n.count(".") == 1]
            raise ExplainError(f"layer={layer!r} is not a module of this model; pass a stage index (-1 … "
                               f"-{len(model.stage_list)}) or a module name such as {stages[-2:]} "
                               "(dict(model.named_modules()) lists all).")
        return modules[layer], layer
    n = len(model.stage_list)
    if not -n <= int(layer) < n:
        raise ExplainError(f"layer={layer} is not a stage of this model; it has {n} stages (use -1 … -{n} or 0 … {n - 1}).")
    return model.stage_list[int(layer)], f"stage_list[{int(layer)}]"


def _attribute(attr: Any, model: Net1D, x: torch.Tensor, live: torch.Tensor, target: int, method: str, n_steps: int,
               layer: int | str, internal_batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One chunk of windows, one target: ``(attributions like x, IG completeness error or None)``."""
    n, n_leads, length = x.shape
    if method == "ig":
        return attr.IntegratedGradients(model).attribute(x, baselines=0.0, target=target, n_steps=n_steps,
                                                         internal_batch_size=internal_batch_size,
                                                         return_convergence_delta=True)
    module, _ = _stage(model, layer)
    if method == "gradcam":
        cam = attr.LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
        cam = attr.LayerAttribution.interpolate(cam, (length,), interpolate_mode="linear")
        return cam.expand(n, n_leads, length) * live / live.sum(dim=1, keepdim=True).clamp(min=1), None
    with warnings.catch_warnings():  # Captum's notices about input grads and (absent) ReLU hooks
        warnings.simplefilter("ignore", UserWarning)
        return attr.GuidedGradCam(model, module).attribute(x, target=target, interpolate_mode="linear") * live, None


def attribute_windows(
    model: Net1D,
    windows: np.ndarray | torch.Tensor,
    targets: Sequence[int],
    *,
    method: str = "ig",
    n_steps: int = 32,
    layer: int | str = -1,
    internal_batch_size: int | None = 16,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Attributions in the model's input space.

    Args:
        model: a :class:`Net1D` with a head (its logits are explained).
        windows: float32 ``(n_windows, n_leads, n_samples)`` preprocessed as the model's contract
            says (500 Hz, z-scored for the published contract).
        targets: output indices to explain.
        method: one of :data:`METHODS`; ``n_steps`` (IG) and ``layer`` (Grad-CAM) as in the module
            documentation.
        internal_batch_size: the most inputs (windows × IG steps) one forward pass holds, however
            many windows: it bounds memory on long records (``None``: all windows at once).

    Returns:
        ``(attributions, delta)``: float32 ``(n_windows, n_targets, n_leads, n_samples)``, and for IG
        the completeness error ``(n_windows, n_targets)`` (else ``None``).
    """
    check_options(method, n_steps)
    if model.num_classes < 1:
        raise ExplainError("the model has no head (n_classes=0): nothing to explain; load a model with a classifier or regression head.")
    attr = require("captum.attr", "explain", "attribution")
    dev = torch.device(device)
    was_training = model.training
    model = model.to(dev).eval()
    x = torch.as_tensor(np.asarray(windows, dtype=np.float32)).to(dev)
    n, n_leads, length = x.shape
    # a lead whose input is all zeros in a window (a zero-filled missing lead) equals the baseline there
    # and carries no evidence: every method gives it no attribution (IG does so by itself)
    live = (x != 0).any(dim=-1, keepdim=True).to(x.dtype)  # (n, n_leads, 1)
    out = np.zeros((n, len(targets), n_leads, length), dtype=np.float32)
    delta = np.zeros((n, len(targets)), dtype=np.float32) if method == "ig" else None
    # windows go in chunks, so that no forward pass holds more than internal_batch_size inputs however
    # long the record (Captum's own internal_batch_size cannot go below the number of windows it is given)
    chunk = max(1, int(internal_batch_size)) if internal_batch_size else n
    try:
        for k, t in enumerate(targets):
            for c0 in range(0, n, chunk):
                xc, lc = x[c0:c0 + chunk], live[c0:c0 + chunk]
                a, d = _attribute(attr, model, xc, lc, int(t), method, n_steps, layer, internal_batch_size)
                out[c0:c0 + len(xc), k] = a.detach().float().cpu().numpy()
                if delta is not None:
                    delta[c0:c0 + len(xc), k] = d.detach().abs().cpu().numpy()
    finally:
        model.train(was_training)
    return out, delta


def stitch(per_window: np.ndarray, n_model: int) -> np.ndarray:
    """``(n_windows, ..., L)`` window maps → ``(..., n_model)`` on the model-rate timeline, windows
    placed as :func:`~ecgfounder.signal.preprocess.window_starts` cut them, overlaps averaged and
    zero padding dropped."""
    length = per_window.shape[-1]
    starts = window_starts(n_model, length)
    acc = np.zeros(per_window.shape[1:-1] + (max(n_model, 1),), dtype=np.float64)
    cnt = np.zeros(max(n_model, 1))
    for w, s in zip(per_window, starts):
        m = min(length, n_model - s)
        acc[..., s:s + m] += w[..., :m]
        cnt[s:s + m] += 1
    return (acc / np.maximum(cnt, 1)).astype(np.float32)


def rebin(a: np.ndarray, fs_from: float, fs_to: float, n_to: int) -> np.ndarray:
    """Mass-preserving re-binning along the last axis from ``fs_from`` to ``n_to`` samples at
    ``fs_to``: each target sample gets the integral of the source over the interval it covers."""
    if fs_from == fs_to and a.shape[-1] == n_to:
        return a
    n_from = a.shape[-1]
    c = np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(a, axis=-1, dtype=np.float64)], axis=-1)
    pos = np.minimum(np.arange(n_to + 1) / fs_to * fs_from, n_from)
    flat = c.reshape(-1, n_from + 1)
    ci = np.stack([np.interp(pos, np.arange(n_from + 1), row) for row in flat])
    return np.diff(ci, axis=-1).reshape(a.shape[:-1] + (n_to,)).astype(np.float32)


def _model_rate_length(rec: Recording, fs_model: float) -> int:
    return resampled_length(rec.n_samples, rec.fs, fs_model)


def check_length(recording: Recording, contract: PreprocessContract, max_windows: int = MAX_WINDOWS) -> None:
    """Refuse a recording of more than ``max_windows`` model windows before any work on it."""
    n = len(window_starts(_model_rate_length(recording, contract.fs), contract.n_samples))
    if n > max_windows:
        raise ExplainError(
            f"the recording lasts {recording.duration:.0f} s ({n} model windows), more than max_windows={max_windows}; "
            "explain a part of it (CLI: --max-duration S reads the first S seconds; Python: recording.replace("
            "signal=recording.signal[:, a:b])) or raise max_windows."
        )


def explain(
    recording: Recording | str | os.PathLike,
    model: "Net1D | str | os.PathLike" = "12-lead",
    *,
    labels: Any = None,
    method: str = "ig",
    top: int = 3,
    n_steps: int = 32,
    layer: int | str = -1,
    lead: str | None = None,
    fill_missing: bool = False,
    device: str | torch.device = "cpu",
    internal_batch_size: int | None = 16,
    max_windows: int = MAX_WINDOWS,
) -> Explanation:
    """Per-label attribution maps of one recording (see the module documentation for the methods).

    Args:
        recording: a :class:`~ecgfounder.Recording` or a file path (read with :func:`ecgfounder.read`).
        model: a loaded :class:`Net1D` (published, fine-tuned binary/multi-class/regression heads
            alike), a weights name or a checkpoint path.
        labels: label names or output indices to explain; ``None``: the ``top`` highest-scoring.
        method: ``"ig"`` (integrated gradients, default), ``"gradcam"`` or ``"guided_gradcam"``.
        n_steps: integration steps of IG.  layer: Grad-CAM stage (``-1`` last, ``-2`` …) or a module name.
        lead, fill_missing: as in :func:`ecgfounder.predict` (single-lead substitution, zero-filled
            precordial leads).
        internal_batch_size: the most inputs one forward pass holds (bounds memory, not the result).
        max_windows: longer records (default: more than 36 windows, 6 minutes) are refused, so that
            a Holter file does not start hours of work; crop the recording or raise the bound.

    Returns:
        An :class:`Explanation` whose ``attributions`` are ``(n_labels, n_leads, n_samples)`` on the
        recording's own samples and rate.
    """
    from ..models.heads import scores_from_logits
    from ..prediction import resolve_model

    if method not in METHODS:
        raise ExplainError(f"unknown attribution method {method!r}; choose one of {METHODS}.")
    if not isinstance(recording, Recording):
        from ..io import read

        recording = read(recording)
    net = resolve_model(model)
    contract = contract_of(net)
    check_length(recording, contract, max_windows)
    prep = preprocess_recording(recording, contract, warn=False, lead=lead, fill_missing=fill_missing)
    names = output_labels(net)
    dev = torch.device(device)
    net = net.to(dev).eval()
    step = max(1, int(internal_batch_size)) if internal_batch_size else len(prep.windows)
    with torch.inference_mode():
        logits = torch.cat([net(torch.from_numpy(prep.windows[i:i + step]).to(dev)).float()
                            for i in range(0, len(prep.windows), step)])
        all_scores = scores_from_logits(logits, net.task_meta).cpu().numpy().mean(axis=0)
    targets = resolve_targets(labels, names, all_scores, top)
    per_window, delta = attribute_windows(net, prep.windows, targets, method=method, n_steps=n_steps, layer=layer,
                                          internal_batch_size=internal_batch_size, device=dev)
    n_model = _model_rate_length(recording, contract.fs)
    maps = rebin(stitch(per_window, n_model), resampled_rate(recording.fs, contract.fs), recording.fs, recording.n_samples)
    leads = tuple(contract.leads)
    if lead is not None and len(leads) == 1:
        from ..signal.leads import canonical_lead

        leads = (canonical_lead(lead),)
    return Explanation(
        record=str(recording.id or recording.meta.get("source") or "recording"),
        method=method,
        labels=tuple(names[t] for t in targets),
        targets=tuple(targets),
        scores=all_scores[targets].astype(np.float64),
        leads=leads,
        fs=recording.fs,
        attributions=maps,
        baseline=(BASELINE_TEXT if contract.mode != "none" else "zeros (0 mV, a flat line: the contract does not normalise)")
        if method == "ig" else None,
        n_steps=n_steps if method == "ig" else None,
        layer=None if method == "ig" else _stage(net, layer)[1],
        lead_resolved=method != "gradcam",
        convergence_delta=None if delta is None else delta.max(axis=0),
        notes=tuple(prep.notes),
    )
