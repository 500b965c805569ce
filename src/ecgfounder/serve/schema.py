"""The response schema of the service (version :data:`SCHEMA_VERSION`), as pydantic models.

The same models describe the HTTP answers (OpenAPI at ``/docs``) and the MCP tool's output.
Changes that remove or retype a field bump the major version; added optional fields bump the minor.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .members import Skipped

__all__ = [
    "validation_line",
    "SCHEMA_VERSION", "ModelInfo", "RecordInfo", "LabelScore", "Finding", "QualityReport",
    "Attribution", "DisplaySignal", "Prediction", "SignalRequest", "BatchSignalRequest",
    "BatchItem", "BatchResponse", "LabelInfo", "LabelsResponse", "ErrorResponse",
]

SCHEMA_VERSION = "1.2"  # 1.1: batch items' status and member, n_skipped; 1.2: quality.words


class ModelInfo(BaseModel):
    """Which weights answered, and what input they were fed."""

    id: str = Field(description="model name, e.g. 'ECGFounder 12-lead' or the checkpoint file name")
    revision: str | None = Field(None, description="Hugging Face Hub revision of published weights")
    weights_sha256: str | None = Field(None, description="SHA-256 of the weights file being served")
    n_labels: int
    task: str = Field(description="multilabel, binary, multiclass or regression")
    contract: dict[str, Any] = Field(description="the preprocessing contract (rate, window, leads, filters)")
    package_version: str


class RecordInfo(BaseModel):
    id: str = Field(description="record id from the file, else the file name stem")
    filename: str | None = None
    format: str | None = Field(None, description="detected file format; 'json' for an inline signal")
    fs: float = Field(description="sampling rate of the recording as read (Hz)")
    leads: list[str]
    derived_leads: list[str] = Field(default_factory=list, description="those of 'leads' not stored in the file but "
                                     "computed on reading from its limb leads (III, aVR, aVL, aVF from I and II)")
    duration_s: float
    n_windows: int = Field(description="10-s windows the model saw; probabilities are their mean")


class LabelScore(BaseModel):
    label: str
    probability: float = Field(description="model output (sigmoid), mean over windows")
    calibrated_probability: float | None = Field(None, description="after the weights' calibration; null where they carry none, or it leaves this label as the model scores it (too few positives when it was fitted)")
    threshold: float = Field(description="operating threshold compared with the (calibrated) probability")
    threshold_source: Literal["file", "weights", "default"] = Field(
        description="'file': the service's --thresholds CSV; 'weights': the weights' metadata; "
                    "'default': the service's --threshold")
    above_threshold: bool


class Finding(BaseModel):
    label: str
    probability: float
    calibrated_probability: float | None = None
    threshold: float


class QualityReport(BaseModel):
    available: bool = Field(description="false when signal-quality assessment is not installed")
    source: str = Field(description="what produced the flags")
    good: bool | None = Field(None, description="no flag at all (None: not assessed)")
    summary: str | None = Field(None, description="'good' or e.g. 'flat:V3;reversal:LA-RA'")
    flags: list[str] = Field(default_factory=list,
                             description="per lead 'flag:LEAD' (flat, gap, clipped, noise, ...), record flags "
                                         "(e.g. 'reversal:LA-RA'), and 'nan_samples'/'short_record' from preprocessing")
    flagged_leads: list[str] = Field(default_factory=list)
    words: dict[str, str] = Field(default_factory=dict, description="each of 'flags' in words, by flag: the leads "
                                  "it is about, then what its check means (ecgfounder.signal.quality.CHECKS)")
    detail: dict[str, Any] | None = None
    note: str | None = None


class Attribution(BaseModel):
    available: bool
    method: str | None = None
    baseline: str | None = Field(None, description="the reference input of integrated gradients")
    label: str | None = Field(None, description="the finding explained")
    fs: float | None = Field(None, description="rate of 'values' (the display rate)")
    start_s: float = Field(0.0, description="the second of the recording 'values' start at (the page shown)")
    leads: list[str] = Field(default_factory=list)
    values: list[list[float]] = Field(default_factory=list, description="leads × time over the page shown, scaled "
                                                                        "to 0..1 by the peak of the whole recording")
    lead_share: dict[str, float] | None = Field(None, description="each lead's share of the page shown")
    page_s: float | None = Field(None, description="the length of a page (10 s, or 60 s for 1-3 leads)")
    page_share: list[float] | None = Field(None, description="each page's share of the whole recording's "
                                                             "attribution, pages from 0 s: where the model looked")
    note: str | None = None


class DisplaySignal(BaseModel):
    fs: float
    start_s: float = Field(0.0, description="the second of the recording 'data' starts at (the query's start)")
    page_s: float = Field(10.0, description="the length of a page: 10 s, or 60 s for a recording of 1-3 leads")
    units: str = "mV"
    leads: list[str]
    data: list[list[float]] = Field(description="leads × samples at 'fs' from 'start_s' (the query's start): 10 s "
                                                "of every lead, or for a recording of 1-3 leads (stored in its "
                                                "file) a minute")


class Prediction(BaseModel):
    """The analysis of one recording."""

    schema_version: str = SCHEMA_VERSION
    record: RecordInfo
    model: ModelInfo
    labels: list[LabelScore] = Field(description="every output of the model, in output order")
    findings: list[Finding] = Field(description="labels above their threshold, most probable first")
    quality: QualityReport
    notes: list[str] = Field(default_factory=list, description="what preprocessing noticed")
    embedding: list[float] | None = Field(None, description="pooled features (mean over windows), on request")
    attribution: Attribution | None = Field(None, description="on request")
    signal: DisplaySignal | None = Field(None, description="on request, for display")
    timing_ms: dict[str, float] = Field(default_factory=dict)


class SignalRequest(BaseModel):
    """An inline recording: ``signal`` is leads × samples in millivolts.  Unknown fields are refused: a
    misspelt or unsupported one (``units``) would otherwise be ignored."""

    model_config = ConfigDict(extra="forbid")

    signal: list[list[float]] = Field(min_length=1, max_length=16)
    fs: float = Field(gt=0, le=20000, allow_inf_nan=False,
                      description="sampling rate in Hz (required: no rate is assumed)")
    leads: list[str] = Field(min_length=1, max_length=16, description="one name per row of 'signal'")
    id: str | None = Field(None, max_length=200)


class BatchSignalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[SignalRequest] = Field(min_length=1)


class BatchItem(BaseModel):
    name: str = Field(description="FILE, FILE#k (recording k of a file of several) or ARCHIVE/MEMBER (a file "
                                  "of an uploaded zip archive passed over)")
    ok: bool = Field(description="whether 'result' holds the recording's analysis")
    status: Literal["ok", "failed", "skipped"] = Field(
        description="'ok': analysed; 'failed': the recording could not be (error says why); 'skipped': a file of an "
                    "uploaded zip archive not read as an ECG (a README, an image, an XML of no ECG dialect; error "
                    "says why), not counted as failed")
    member: str | None = Field(None, description="a skipped file's path in its archive (INNER.zip/PATH for a file "
                                                 "of a zip archive inside the uploaded one)")
    result: Prediction | None = None
    error: str | None = Field(None, description="one-line reason when the record failed or the file was skipped")

    @classmethod
    def of(cls, name: str, got: "Prediction | BaseException | str | Skipped") -> "BatchItem":
        """The item of one recording: its answer, or its error (an exception or a reason) on one line;
        or of a file of an archive passed over."""
        if isinstance(got, Prediction):
            return cls(name=name, ok=True, status="ok", result=got)
        if isinstance(got, Skipped):
            return cls(name=got.name, ok=False, status="skipped", member=got.member, error=got.reason)
        return cls(name=name, ok=False, status="failed", error=" ".join(str(got).split()))


class BatchResponse(BaseModel):
    schema_version: str = SCHEMA_VERSION
    n_ok: int
    n_failed: int
    n_skipped: int = Field(0, description="files of uploaded archives passed over, not read as ECGs")
    items: list[BatchItem]

    @classmethod
    def of(cls, items: list[BatchItem]) -> "BatchResponse":
        count = {s: sum(it.status == s for it in items) for s in ("ok", "failed", "skipped")}
        return cls(n_ok=count["ok"], n_failed=count["failed"], n_skipped=count["skipped"], items=items)


class LabelInfo(BaseModel):
    index: int
    label: str
    threshold: float
    threshold_source: Literal["file", "weights", "default"]


class LabelsResponse(BaseModel):
    schema_version: str = SCHEMA_VERSION
    model: ModelInfo
    labels: list[LabelInfo]


class ErrorResponse(BaseModel):
    detail: str = Field(description="one line: what was wrong and how to fix it")


def validation_line(errors: list[dict], *, what: str = "request", fix: str = "see the schema at /docs",
                    noun: str = "field") -> str:
    """Pydantic's validation errors as one line, not its multi-line report with documentation links:
    up to three fields, each with what is wrong and the value given (its JSON type and start); errors of
    one kind on one field (every sample of a signal) are counted, not listed.  ``noun``: what the
    request's names are called (an unknown one is an "unknown {noun}")."""
    groups: dict[tuple, list[dict]] = {}
    for e in errors:
        loc = tuple(x for x in e.get("loc", ()) if x != "body")
        groups.setdefault((loc[:2] if loc[:1] == ("query",) else loc[:1], e.get("type")), []).append(e)
    parts = []
    for same in list(groups.values())[:3]:
        more = f" (and {len(same) - 1} more like it)" if len(same) > 1 else ""
        parts.append(_one_error(same[0], noun) + more)
    more = f" (+{len(groups) - 3} more)" if len(groups) > 3 else ""
    return f"invalid {what}: " + "; ".join(parts) + more + f" ({fix})"


def _one_error(e: dict, noun: str) -> str:
    loc = [x for x in e.get("loc", ()) if x != "body"]
    name = ""
    for x in loc:
        name += f"[{x}]" if isinstance(x, int) else (f".{x}" if name else str(x))
    name = name.replace("query.", "query parameter ", 1) if name.startswith("query.") else name or "body"
    kind = e.get("type")
    if kind == "missing":
        return f"{name}: missing (required)"
    if kind == "json_invalid":  # the message says where; the input is the whole body
        return f"{name}: {e.get('msg', 'invalid JSON')}"
    msg = f"unknown {noun}" if kind == "extra_forbidden" else e.get("msg", "invalid")
    return f"{name}: {msg} (got {_given(e['input'])})" if "input" in e else f"{name}: {msg}"


def _given(value: Any) -> str:
    """A value as its JSON type and its start, e.g. ``string "abc..." (5000 characters)``."""
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} item{'s' * (len(value) != 1)}"
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:5])) + (", ..." if len(value) > 5 else "")
        return f"an object with keys {keys}" if value else "an empty object"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)
    try:
        text = json.dumps(value[:40] if isinstance(value, str) else value)
    except (TypeError, ValueError):
        text = repr(value)[:40]
    if isinstance(value, str) and len(value) > 40:
        text = f"{text[:-1]}...\" ({len(value)} characters)"
    return f"{kind} {text}"
