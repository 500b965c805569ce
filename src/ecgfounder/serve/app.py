"""The HTTP app (FastAPI): prediction endpoints, labels, health, metrics and the web viewer."""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import tempfile
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline  # /docs with Swagger UI shipped in the package, not from a CDN
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..errors import SetupError
from ..recording import FS_MAX
from .adapter import Analyzer
from .config import ServeConfig
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .schema import (
    BatchItem, BatchResponse, BatchSignalRequest, ErrorResponse, LabelsResponse, ModelInfo, Prediction, SignalRequest,
    validation_line,
)
from .service import InputError, Options, Overloaded, RequestTimeout, Service
from .terms import WFDB_BESIDE, Terms
from .uploads import BodyLimitMiddleware, UnsupportedMediaType, UploadError, group_records, save_uploads

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_ERRORS = {401: {"model": ErrorResponse, "description": "missing or wrong bearer token"},
           413: {"model": ErrorResponse, "description": "body over the upload limit"},
           415: {"model": ErrorResponse, "description": "a body neither multipart/form-data nor application/json"},
           422: {"model": ErrorResponse, "description": "the file or signal could not be read (one-line reason)"},
           429: {"model": ErrorResponse, "description": "queue full; see Retry-After"},
           504: {"model": ErrorResponse, "description": "per-request timeout"}}
_GET_ERRORS = {401: _ERRORS[401]}  # a GET has no body and is not queued
_READY_SCHEMA = {"type": "object", "required": ["status", "model"], "properties": {
    "status": {"type": "string", "enum": ["ready"]}, "model": {"type": "string", "description": "the model's id"}}}
_FILE_SCHEMA = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "array", "items": {"type": "string", "format": "binary"},
             "description": "one recording (a WFDB record: its .hea and .dat together)"}}}


# where a request sets what the library's messages ask for: query parameters for an uploaded file,
# fields of the JSON body for an inline signal
_FILE_TERMS = Terms("the query parameter", frozenset({"fs", "leads", "format", "units", "key", "lead"}), csv_lists=True,
                    rewrites=((WFDB_BESIDE, "send it with the header: in the same request (each file a multipart "
                                            "field 'file'), or beside it in the zip"),))
_SIGNAL_TERMS = Terms("the JSON field", frozenset({"fs", "leads"}),  # (lead: a query parameter, as for a file)
                      elsewhere=Terms("the query parameter", frozenset({"lead"}), csv_lists=True))


def _body_doc(json_schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": _FILE_SCHEMA}, "application/json": {"schema": json_schema}}}}


def create_app(analyzer: Analyzer, config: ServeConfig | None = None) -> FastAPI:
    """The service's ASGI app around a loaded :class:`~ecgfounder.serve.adapter.Analyzer`."""
    cfg = config or ServeConfig()
    holder: dict[str, Any] = {}
    routes = {"/v1/predict", "/v1/predict/batch", "/v1/labels", "/v1/model", "/healthz", "/readyz", "/metrics", "/"}
    metrics = Metrics(routes, lambda: holder["service"].inflight)
    service = Service(analyzer, cfg, on_batch=metrics.on_batch, file_terms=_FILE_TERMS, signal_terms=_SIGNAL_TERMS)
    holder["service"] = service

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPIOffline(title="ECGFounder", version=analyzer.package_version, lifespan=lifespan,
                         description="ECG analysis with the ECGFounder foundation model. Not a medical device.")
    app.state.service = service
    app.state.metrics = metrics
    bearer = HTTPBearer(auto_error=False)

    # dependencies are coroutines: plain functions would each take a trip through the thread pool
    async def authorize(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if cfg.token is None:
            return
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), cfg.token.encode()):
            metrics.rejected.labels("auth").inc()
            raise HTTPException(401, "missing or wrong bearer token; send 'Authorization: Bearer <token>' "
                                     "with the token this server was started with (ask its operator).",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(InputError)
    @app.exception_handler(UploadError)
    async def _bad_input(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": " ".join(str(exc).split())},
                            status_code=415 if isinstance(exc, UnsupportedMediaType) else 422)

    @app.exception_handler(Overloaded)
    async def _busy(_r: Request, exc: Overloaded) -> JSONResponse:
        metrics.rejected.labels("queue_full").inc()
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestTimeout)
    async def _slow(_r: Request, exc: RequestTimeout) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=504)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_line(exc.errors())}, status_code=422)

    async def options(embedding: bool = False, attribution: bool = False, signal: bool = False,
                attribution_label: str | None = Query(None, description="label to explain (default: top finding)"),
                attribution_method: str = Query("ig", description="ig (integrated gradients), gradcam, guided_gradcam"),
                start: float = Query(0.0, ge=0, allow_inf_nan=False,
                                     description="second of the recording the signal and attribution start at "
                                                 "(a page: 10 s, or 60 s for 1-3 leads)"),
                lead: str | None = Query(None, max_length=32, description="for a single-lead model: the lead of the "
                                         "recording fed in place of the model's own (e.g. II for a lead-I model)")
                ) -> Options:
        if start and not (signal or attribution):
            raise InputError(f"the query parameter start={start:g} picks the page of the signal and attribution "
                             "shown; ask for signal=true or attribution=true with it, or leave start out.")
        return Options(embedding=embedding, attribution=attribution, signal=signal, attribution_label=attribution_label,
                       attribution_method=attribution_method, start=start, lead=lead)

    async def read_options(format: str | None = Query(None, description="force a reader (wfdb, muse, csv, ...)"),
                     fs: float | None = Query(None, gt=0, le=FS_MAX, allow_inf_nan=False,
                                              description="rate of a CSV/NumPy upload (Hz)"),
                     leads: str | None = Query(None, description="comma-separated lead names of a CSV/NumPy upload"),
                     units: str | None = Query(None, description="units of a CSV/NumPy upload (mV, uV)"),
                     key: str | None = Query(None, max_length=256, description="the NumPy .npz entry or MATLAB "
                                             "variable holding the signals (where the file holds several)")) -> dict:
        names = [x.strip() for x in leads.split(",")] if leads is not None else None
        if names is not None and not all(names):
            raise InputError(f"the query parameter leads={leads!r} has an empty lead name; give the names separated "
                             "by commas, e.g. leads=I,II,V1.")
        if format is not None:
            try:  # refused before the upload is read
                analyzer.check_format(format)
            except SetupError as exc:
                raise InputError(_FILE_TERMS(" ".join(str(exc).split()), exc.argument)) from None
        kw: dict[str, Any] = {"format": format, "fs": fs, "units": units, "leads": names, "key": key}
        return {k: v for k, v in kw.items() if v is not None}

    async def member_option(member: int | None = Query(
            None, ge=0, le=1_000_000_000, description="which recording (0-based) of a file holding several: a zip, "
                                                      "an HDF5/NumPy batch")) -> int | None:
        return member

    query_names = sorted({n for f in (options, read_options, member_option) for n in inspect.signature(f).parameters})

    async def known_query(request: Request) -> None:
        """Refuse a query parameter the endpoint does not take (a misspelt one would be ignored), or one
        given twice (one of the values would be ignored)."""
        unknown = [{"loc": ("query", k), "type": "extra_forbidden", "input": v}
                   for k, v in request.query_params.multi_items() if k not in query_names]
        if unknown:
            raise InputError(validation_line(unknown, noun="parameter",
                                             fix=f"the query parameters are {', '.join(query_names)}"))
        for k in dict.fromkeys(request.query_params.keys()):
            if len(values := request.query_params.getlist(k)) > 1:
                shown = ", ".join(repr(v[:40]) for v in values[:5]) + (", ..." if len(values) > 5 else "")
                raise InputError(f"the query parameter {k} is given {len(values)} times ({shown}); give it once.")

    async def _receive(read: Any, deadline: float) -> Any:
        """The body, read by ``read()`` by ``deadline`` (the request's: ``request_timeout_s`` from its
        arrival): a client that declares a body and sends it slowly, or never, must not hold its
        admission slot for ever."""
        try:
            return await asyncio.wait_for(read(), max(deadline - asyncio.get_running_loop().time(), 0.001))
        except asyncio.TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {cfg.request_timeout_s:g} s (the server's "
                                 "request_timeout_s); send the whole body at once, with a true Content-Length.") from None
        except ClientDisconnect:
            raise UploadError("the client disconnected before the request body was complete; send it again.") from None

    async def _json(request: Request, model: Any, deadline: float) -> Any:
        body = await _receive(request.body, deadline)
        try:  # parsing megabytes of JSON would hold the event loop: off to a thread
            return await asyncio.to_thread(model.model_validate_json, body)
        except ValidationError as exc:
            errors = exc.errors()
            # a query parameter sent as a field of the body (lead, embedding, ...): say where it goes
            queried = sorted({e["loc"][-1] for e in errors if e.get("type") == "extra_forbidden"
                              and e.get("loc") and e["loc"][-1] in query_names})
            fix = (f"{', '.join(queried)} {'is a query parameter' if len(queried) == 1 else 'are query parameters'}, "
                   f"for an inline signal as for a file: send {request.url.path}?{queried[0]}=... with the JSON body"
                   if queried else "see the schema at /docs")
            raise InputError(validation_line(errors, fix=fix)) from None

    @asynccontextmanager
    async def _uploaded(request: Request, deadline: float, errors: list[tuple[str, str]] | None = None):
        """Uploaded files saved in a fresh temporary directory, removed when the answer is done.
        ``errors``: a batch's list, where files that cannot be analysed are reported instead of raised."""
        ctype = request.headers.get("content-type", "")
        if not _is_type(request, "multipart/form-data"):
            raise UnsupportedMediaType(f"unsupported content type {ctype or '(none)'!r}; send multipart/form-data "
                                       "(field 'file') or application/json ({signal, fs, leads}).")
        too_many = f"more than {cfg.max_files} files in one request (max_files); split the batch."
        try:
            form = await _receive(lambda: request.form(max_files=cfg.max_files + 1, max_fields=16), deadline)
        except HTTPException as exc:  # Starlette's multipart errors: one line with the fix, not a bare 400
            if "too many files" in str(exc.detail).lower():
                raise UploadError(too_many) from None
            raise UploadError(f"the multipart body could not be parsed ({exc.detail}); send each recording as a "
                              "multipart/form-data field 'file' with a file name of at most a few hundred "
                              "characters, and at most 16 other fields.") from None
        try:
            uploads = [v for _, v in form.multi_items() if hasattr(v, "filename") and hasattr(v, "read")]
            if len(uploads) > cfg.max_files:
                raise UploadError(too_many)
            with tempfile.TemporaryDirectory(prefix="ecgfounder-serve-", dir=cfg.tmp_dir) as tmp:
                saved = await save_uploads(uploads, Path(tmp), errors)
                yield group_records(saved, errors)
        finally:
            await form.close()

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/viewer/")

    @app.get("/healthz", summary="the process is alive")
    @app.head("/healthz", include_in_schema=False)  # (load balancers' probes may send HEAD)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="the model is loaded and has run once",
             responses={200: {"content": {"application/json": {"schema": _READY_SCHEMA}}},
                        503: {"model": ErrorResponse, "description": "still loading"}})
    @app.head("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        if service.ready and service.batcher.running:
            return JSONResponse({"status": "ready", "model": analyzer.model_id})
        return JSONResponse({"detail": "model not ready yet"}, status_code=503)

    @app.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(authorize)], response_class=PlainTextResponse,
             responses={200: {"description": "the Prometheus text exposition format"},
                        401: {"description": _ERRORS[401]["description"], "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/model", response_model=ModelInfo, dependencies=[Depends(authorize)], responses=_GET_ERRORS,
             summary="the weights served: id, revision, SHA-256, preprocessing contract")
    async def model_info() -> ModelInfo:
        return service.model_info()

    @app.get("/v1/labels", response_model=LabelsResponse, dependencies=[Depends(authorize)], responses=_GET_ERRORS,
             summary="the model's labels in output order, with their operating thresholds")
    async def labels() -> LabelsResponse:
        return service.labels_response()

    @app.post("/v1/predict", response_model=Prediction, dependencies=[Depends(authorize), Depends(known_query)],
              responses=_ERRORS,
              openapi_extra=_body_doc(SignalRequest.model_json_schema()),
              summary="analyse one recording: a file (multipart field 'file') or an inline signal (JSON)")
    async def predict(request: Request, opts: Options = Depends(options), rkw: dict = Depends(read_options),
                      member: int | None = Depends(member_option)) -> Prediction:
        async with service.admit():
            deadline = service.deadline()  # the whole request: its body, reading, preparing, the model
            if _is_type(request, "application/json"):
                if member is not None:
                    raise InputError("the query parameter member picks a recording of an uploaded file; an inline "
                                     "signal is one recording: leave member out.")
                return await service.analyze_signal(await _json(request, SignalRequest, deadline), opts, deadline)
            async with _uploaded(request, deadline) as records:
                if len(records) != 1:
                    raise UploadError(f"{len(records)} recordings in one request; /v1/predict takes one "
                                      "(a WFDB record as .hea + .dat); use /v1/predict/batch for several.")
                path, name = records[0]
                if member is not None:
                    return await service.analyze_member(path, member, filename=name, read_kwargs=rkw, options=opts,
                                                        deadline=deadline)
                return await service.analyze_file(path, filename=name, read_kwargs=rkw, options=opts, deadline=deadline,
                                                  several="send the file to /v1/predict/batch, which answers for "
                                                          "each, or pick one with the query parameter member (0 for the first)")

    @app.post("/v1/predict/batch", response_model=BatchResponse,
              dependencies=[Depends(authorize), Depends(known_query)], responses=_ERRORS,
              openapi_extra=_body_doc(BatchSignalRequest.model_json_schema()),
              summary="analyse several recordings; one failing record does not stop the others",
              description="One item per recording (FILE, or FILE#k for recording k of a zip or an HDF5/NumPy "
                          "batch file), then one per file of an uploaded zip not read as an ECG (a README, an "
                          "image, an XML of no ECG dialect): status 'skipped', named ZIP/MEMBER, with why in "
                          "'error'; counted in n_skipped, not n_failed.")
    async def predict_batch(request: Request, opts: Options = Depends(options),
                            rkw: dict = Depends(read_options)) -> BatchResponse:
        if "member" in request.query_params:  # not in this endpoint's schema; a word on what to do instead
            raise InputError("the query parameter member picks one recording for /v1/predict; /v1/predict/batch "
                             "answers for every recording: leave member out.")
        async def one(name: str, coro: Any) -> BatchItem:
            try:
                return BatchItem.of(name, await coro)
            except (InputError, RequestTimeout) as exc:
                return BatchItem.of(name, exc)

        async with service.admit():
            deadline = service.deadline()  # the whole batch, as one request: those answered by then are kept
            if _is_type(request, "application/json"):
                batch = await _json(request, BatchSignalRequest, deadline)
                if len(batch.records) > cfg.max_files:
                    raise UploadError(f"{len(batch.records)} records in one request; at most {cfg.max_files}.")
                named = [(r.id or f"record_{i}", r) for i, r in enumerate(batch.records)]
                items = await asyncio.gather(*(one(n, service.analyze_signal(r, opts, deadline, name=n)) for n, r in named))
            else:
                refused: list[tuple[str, str]] = []  # files refused on arrival: reported, the others analysed
                async with _uploaded(request, deadline, refused) as records:
                    per_file = await asyncio.gather(*(service.analyze_members(p, filename=name, read_kwargs=rkw,
                                                                              options=opts, limit=cfg.max_files,
                                                                              deadline=deadline)
                                                      for p, name in records))
                items = [BatchItem.of(name, got) for found in per_file for name, got in found]
                items += [BatchItem.of(name, reason) for name, reason in refused]
        return BatchResponse.of(list(items))

    viewer = files("ecgfounder.serve") / "viewer"
    app.mount("/viewer", StaticFiles(directory=str(viewer), html=True), name="viewer")
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_upload_bytes,
                       on_reject=lambda: metrics.rejected.labels("too_large").inc())
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app


class _MetricsMiddleware:
    def __init__(self, app: Any, metrics: Metrics) -> None:
        self._wrapped = metrics.middleware(app)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self._wrapped(scope, receive, send)


def _is_type(request: Request, media_type: str) -> bool:
    """Whether the request's Content-Type is ``media_type`` (media types are case-insensitive)."""
    return request.headers.get("content-type", "").strip().lower().startswith(media_type)
