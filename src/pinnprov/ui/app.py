"""The `pinnprov ui` web app: three pages, a JSON API over the named queries, one steering POST, static assets.

Starlette (small, typed, ASGI, maintained; served by uvicorn) was the team's choice for every new HTTP server.
Handlers are plain functions: Starlette runs them on its thread pool, where the per-thread store connections live.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pinnprov.ui import reads
from pinnprov.ui.security import Guard, GuardMiddleware, HeadersMiddleware
from pinnprov.ui.steer import steer
from pinnprov.ui.stores import ReadStores

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
WORKER_THREADS = 8
PROV_FORMATS = {"json": ("application/json", "json"), "provn": ("text/provenance-notation; charset=utf-8", "provn")}


@dataclass(frozen=True)
class UiConfig:
    store_url: str | None
    guard: Guard
    agent: str  # the PROV agent of commands sent from this UI: user:<login> of whoever started it


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def json_response(data: Any, status: int = 200) -> Response:
    try:
        body = json.dumps(data, allow_nan=False, separators=(",", ":"), default=str)
    except ValueError:  # a NaN/inf somewhere: JSON has none, the page draws None as a gap
        body = json.dumps(_clean(data), allow_nan=False, separators=(",", ":"), default=str)
    return Response(body, status, media_type="application/json", headers={"cache-control": "no-store"})


def _status(error: BaseException) -> int:
    """503: no store (yet); 404: no such run or experiment; 409: the run has ended; 400: a bad request."""
    if isinstance(error, FileNotFoundError):
        return 503
    if isinstance(error, LookupError) or str(error).startswith(("unknown run", "ambiguous run", "no runs")):
        return 404
    return 409 if "already ended" in str(error) else 400


def _error(error: BaseException, status: int | None = None) -> Response:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return json_response({"error": message}, status or _status(error))


USER_ERRORS = (FileNotFoundError, LookupError, ValueError)


def _int_param(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


# page -> (title, scripts after common.js, whether it draws charts); the pages share templates/layout.html
_PAGES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "runs": ("runs", ("runs.js",), False),
    "run": ("run", ("charts.js", "run.js", "models.js", "system.js"), True),
    "compare": ("compare", ("charts.js", "compare.js", "models.js"), True),
}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_CHART_HEAD = ('<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">\n',
               '<script src="/static/vendor/uplot/uPlot.iife.min.js" defer></script>\n')


def _template(name: str) -> str:
    return resources.files("pinnprov.ui").joinpath("templates", f"{name}.html").read_text(encoding="utf-8")


def _page(name: str, config: UiConfig, stores: ReadStores, subject: str = "") -> HTMLResponse:
    title, scripts, charts = _PAGES[name]
    head = _CHART_HEAD[0] if charts else ""
    head += '<link rel="stylesheet" href="/static/style.css">\n'
    head += _CHART_HEAD[1] if charts else ""
    head += "".join(f'<script src="/static/{script}" defer></script>\n' for script in ("common.js", *scripts))
    current = ' aria-current="page"'
    values = {
        "title": f"{title} {html.escape(subject)}".rstrip(), "head": head.rstrip("\n"), "page": name,
        "runs_current": current if name == "runs" else "", "compare_current": current if name == "compare" else "",
        "token": html.escape(config.guard.token), "store": html.escape(stores.label), "subject": html.escape(subject),
    }
    # The page's body goes into the layout first (both are our files); then one pass fills every placeholder, so
    # a value (a run name, say) is never scanned for placeholders itself.
    template = _template("layout").replace("{{main}}", _template(name).rstrip("\n"))
    text = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    return HTMLResponse(text, headers={"content-security-policy": CSP, "cache-control": "no-store"})


def create_app(config: UiConfig) -> Starlette:
    stores = ReadStores(config.store_url)

    def api(handler: Callable[..., Any]) -> Callable[[Request], Response]:
        """Run a read against this thread's store; map the user's problems to 4xx with one line, the store's to 503."""

        def endpoint(request: Request) -> Response:
            try:
                with stores.read() as store:
                    return json_response(handler(request, store))
            except USER_ERRORS as error:
                return _error(error)

        return endpoint

    def run_id(request: Request, store: Any) -> str:
        from pinnprov.store.run_select import resolve_run

        return resolve_run(store, request.path_params["run"])

    def info(request: Request, store: Any) -> Any:
        from pinnprov.core.steering import KINDS, WEIGHT_PARAMETERS

        return {"store": stores.label, "agent": config.agent, "kinds": list(KINDS),
                "weight_parameters": list(WEIGHT_PARAMETERS)}

    def runs(request: Request, store: Any) -> Any:
        experiment = request.query_params.get("experiment") or None
        status = request.query_params.get("status") or None
        return {"runs": reads.runs_overview(store, experiment=experiment, status=status),
                "experiments": reads.experiments(store)}

    def run(request: Request, store: Any) -> Any:
        return reads.run_detail(store, run_id(request, store))

    def series(request: Request, store: Any) -> Any:
        return reads.series(store, run_id(request, store), from_epoch=_int_param(request, "from"),
                            to_epoch=_int_param(request, "to"), after=_int_param(request, "after"),
                            points=_int_param(request, "points"))

    def system(request: Request, store: Any) -> Any:
        return reads.system_series(store, run_id(request, store))

    def table1(request: Request, store: Any) -> Any:
        return reads.table1(store, run_id(request, store), every=_int_param(request, "every"),
                            last=_int_param(request, "last"))

    def compare(request: Request, store: Any) -> Any:
        return reads.compare(store, request.path_params["experiment"], points=_int_param(request, "points"))

    def models(request: Request, store: Any) -> Any:
        from pinnprov.store.snapshots import run_models

        return run_models(store, run_id(request, store), _int_param(request, "epoch"))

    def compare_models(request: Request, store: Any) -> Any:
        from pinnprov.store.snapshots import experiment_models

        return experiment_models(store, request.path_params["experiment"])

    def prov(request: Request) -> Response:
        from pinnprov.store.prov_export import export_run

        fmt = request.query_params.get("format", "json")
        if fmt not in PROV_FORMATS:
            return _error(ValueError(f"format must be one of {', '.join(PROV_FORMATS)}"))
        try:
            with stores.read() as store:
                rid = run_id(request, store)
                text = export_run(store, rid, fmt, every=_int_param(request, "every"))
        except USER_ERRORS as error:
            return _error(error)
        media, suffix = PROV_FORMATS[fmt]
        return Response(text, media_type=media, headers={
            "content-disposition": f'attachment; filename="pinnprov-{rid}.{suffix}"', "cache-control": "no-store"})

    async def steer_endpoint(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(ValueError("send the command as application/json"), 415)
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(ValueError("the body is not JSON"))

        def queue() -> Response:
            try:
                with stores.read() as store:
                    rid = run_id(request, store)
                return json_response(steer(stores.url, rid, payload, config.agent), 202)
            except USER_ERRORS as error:
                return _error(error)

        return await run_in_threadpool(queue)

    routes = [
        Route("/", lambda request: _page("runs", config, stores)),
        Route("/runs/{run}", lambda request: _page("run", config, stores, request.path_params["run"])),
        Route("/compare", lambda request: _page("compare", config, stores)),
        Route("/compare/{experiment}",
              lambda request: _page("compare", config, stores, request.path_params["experiment"])),
        Route("/api/info", api(info)),
        Route("/api/runs", api(runs)),
        Route("/api/runs/{run}", api(run)),
        Route("/api/runs/{run}/series", api(series)),
        Route("/api/runs/{run}/system", api(system)),
        Route("/api/runs/{run}/table1", api(table1)),
        Route("/api/runs/{run}/prov", prov),
        Route("/api/runs/{run}/steer", steer_endpoint, methods=["POST"]),
        Route("/api/compare/{experiment}", api(compare)),
        Route("/api/runs/{run}/models", api(models)),
        Route("/api/compare/{experiment}/models", api(compare_models)),
        Mount("/static", StaticFiles(packages=[("pinnprov.ui", "static")]), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Few worker threads, so few store connections (one each): MonetDB counts its clients.
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        yield
        stores.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(GuardMiddleware, guard=config.guard)
    app.add_middleware(HeadersMiddleware)  # outermost: refusals get the headers too
    app.state.stores = stores
    return app
