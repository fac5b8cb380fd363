"""The HTTP routes of `rectune serve` (FastAPI): recommend, events, update, health, metrics, versions.

Routes are plain functions run in FastAPI's thread pool, so a slow scoring call never blocks the
event loop. Every request is timed; an error in our code is a 500 with its message, never a crash.
"""
from __future__ import annotations

import time
from typing import Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from recsys_core.errors import RecTuneError, UnknownIdError
from recsys_core.serving.events import BadEvents, validate_events
from recsys_core.serving.service import Service
from recsys_core.serving.updater import read_versions

MAX_K = 1000
MAX_POSTED_HISTORY = 500


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="RecTune serving", description="Recommendations from a trained RecTune run that keeps "
                  "learning from posted events.", docs_url="/docs", redoc_url=None)

    @app.middleware("http")
    async def timed(request: Request, call_next):
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - the service must answer, whatever went wrong in a route
            response = _error(500, f"{type(exc).__name__}: {exc}")
        service.metrics.record(f"{request.method} {request.url.path}", response.status_code,
                               (time.perf_counter() - start) * 1000)
        return response

    @app.exception_handler(RecTuneError)
    def library_error(request: Request, exc: RecTuneError):
        return _error(400, str(exc))

    _scoring_routes(app, service)
    _stream_routes(app, service)
    return app


def _scoring_routes(app: FastAPI, service: Service) -> None:
    """GET /health, GET /recommend (known users), POST /recommend (a new user's posted history)."""

    @app.get("/health")
    def health() -> dict:
        served = service.current
        return {"status": "ok", "version": served.version, "run": str(served.run_dir), "family": served.family,
                "events": service.log.count}

    @app.get("/recommend")
    def recommend(user: str = Query(..., min_length=1, description="a user id the model knows"),
                  k: int = Query(10, ge=1, le=MAX_K)):
        served = service.current  # one version for the whole request, whatever a swap does meanwhile
        try:
            items = served.recommend_user(user, k)
        except UnknownIdError as exc:
            return _error(404, str(exc), version=served.version)
        return {"user": user, "k": k, "version": served.version, "items": items}

    @app.post("/recommend")
    def recommend_history(body: dict = Body(..., examples=[{"history": ["1", "50"], "k": 10}])):
        history, k = body.get("history"), body.get("k", 10)
        if not isinstance(history, list) or not history or not all(isinstance(i, (str, int)) for i in history):
            return _error(422, "'history' must be a non-empty list of item ids (strings or integers)")
        if len(history) > MAX_POSTED_HISTORY:
            return _error(413, f"'history' holds {len(history)} items; post at most {MAX_POSTED_HISTORY}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            return _error(422, f"'k' must be an integer from 1 to {MAX_K}")
        served = service.current
        try:
            items, method, ignored = served.recommend_history([str(i) for i in history], k)
        except UnknownIdError as exc:
            return _error(404, str(exc), version=served.version)
        return {"k": k, "version": served.version, "method": method, "ignored_unknown_items": ignored, "items": items}


def _stream_routes(app: FastAPI, service: Service) -> None:
    """POST /events, POST /update, GET /metrics, GET /versions."""

    @app.post("/events")
    def events(body: Any = Body(...)):
        try:
            frame = validate_events(body)
        except BadEvents as exc:
            return _error(exc.status, str(exc), problems=exc.problems[:100])
        return service.add_events(frame)

    @app.post("/update")
    def update():
        if service.updater is None:
            return _error(409, "this service was started without updates (--update-every and --update-seconds off)")
        service.updater.request()
        return {"requested": True, **service.updater.status()}

    @app.get("/metrics")
    def metrics() -> dict:
        served = service.current
        out = {**service.metrics.snapshot(), "model": served.describe(), "events": service.log.count}
        if service.updater is not None:
            out["updater"] = service.updater.status()
        return out

    @app.get("/versions")
    def versions() -> dict:
        return {"current": service.current.version, "versions": read_versions(service.state_dir)}
