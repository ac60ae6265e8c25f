"""The HTTP face of a :class:`~dnnh.serve.service.Service`: a JSON API, OpenAPI at /docs, a web page at /.

Every error, whoever raises it (a handler, FastAPI's validation, the router, the size and token
guard), answers with one JSON shape::

    {"error": {"status": 415, "code": "unsupported_media_type", "message": "..."}}

The guard is plain ASGI in front of everything: it refuses a write without the right bearer token
and a body over the limit (by its Content-Length, or by counting while the body streams in)
before the body is read, so an unauthenticated or oversized upload costs no decoding and no
memory.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import traceback
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from dnnh.serve.images import ImageRejected
from dnnh.serve.journal import StoreWriteError
from dnnh.serve.limits import Limits
from dnnh.serve.service import Busy, NotFound, Service

STATIC = Path(__file__).parent / "static"
_PAGE_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                 b"script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class ApiError(StarletteHTTPException):
    """An error answered with the service's JSON error shape."""


class BodyTooLarge(ApiError):
    """Raised while the body streams in: an HTTPException, so FastAPI's body parsing passes it on."""


# ---------------------------------------------------------------------- response models (OpenAPI)

class Item(BaseModel):
    id: int
    label: Optional[str] = None
    image_url: Optional[str] = None


class Result(BaseModel):
    id: int
    distance: int
    label: Optional[str] = None
    image_url: Optional[str] = None


class SearchResult(BaseModel):
    results: list[Result]
    code: str
    bits: str
    nbits: int
    k: int
    radius: Optional[int] = None
    timings_ms: dict[str, float]
    query: Optional[Item] = None


class Health(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
    ntotal: int
    nbits: int


class Added(BaseModel):
    ids: list[int]
    items: list[Item]


class Deleted(BaseModel):
    id: int
    deleted: bool


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def _errors(*statuses: int) -> dict:
    return {s: {"model": ErrorBody, "description": HTTPStatus(s).phrase} for s in statuses}


def error_body(status: int, message: str) -> dict:
    code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_") if status in HTTPStatus._value2member_map_ \
        else "error"
    return {"error": {"status": status, "code": code, "message": message}}


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


# ---------------------------------------------------------------------- the guard (plain ASGI)

def _is_write(method: str, path: str) -> bool:
    return method not in ("GET", "HEAD", "OPTIONS") and (path == "/api/items" or path.startswith("/api/items/"))


def _takes_upload(method: str, path: str) -> bool:
    return method == "POST" and path in ("/api/search", "/api/items")


async def _send_error(send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(error_body(status, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


#: A registered name (RFC 3986's reg-name as DNS uses it: dot-separated labels of ASCII letters, digits,
#: hyphens and underscores, an optional final dot) or a dotted IPv4 address.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_PORT = re.compile(r"(?::[0-9]{0,5})?")


def host_name(header: str) -> str | None:
    """The host a Host header names, or None if it is not RFC 9110's ``uri-host [":" port]``.

    Lower-cased, without the port and a final dot; an IPv6 address in brackets, written as
    :mod:`ipaddress` compresses it ("[::1]:8000" -> "::1", "Example.org." -> "example.org"). None for
    anything else (userinfo as in "127.0.0.1:80@evil.example", a path, a bare IPv6 address, a port
    that is not digits): taking the text before the last colon let such headers pass as their prefix.
    """
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        try:
            address = ipaddress.ip_address(header[1:end]) if end > 0 else None
        except ValueError:
            return None
        if not isinstance(address, ipaddress.IPv6Address):
            return None
        name, port = address.compressed, header[end + 1:]
    else:
        name, colon, port = header.partition(":")
        if not _HOST_NAME.fullmatch(name):
            return None
        name, port = name.rstrip("."), colon + port
    return name if _PORT.fullmatch(port) else None


def allowed_name(name: str) -> str:
    """A name given to answer to (``--allow-host``, the bound address) as :func:`host_name` gives it;
    a bare IPv6 address is taken too. One line for anything that could never match a Host header."""
    try:
        return ipaddress.ip_address(name.strip().strip("[]")).compressed
    except ValueError:
        parsed = host_name(name)
    if parsed is None:
        raise ValueError(f"{name!r} is not a host name or address that a Host header can carry")
    return parsed


class Guard:
    """Host check, token check for writes, body size limit, page security headers; all before
    anything reads the body.

    ``allowed_hosts`` (None: any): the names a request's Host header may carry. A page on another
    site can reach a server on 127.0.0.1 by pointing its own name at 127.0.0.1 (DNS rebinding);
    its requests then carry that name, so answering only the bound names (as Jupyter and datasette
    do) shuts it out."""

    def __init__(self, app: Any, service: Service, allowed_hosts: frozenset[str] | None = None) -> None:
        self.app, self.service, self.allowed_hosts = app, service, allowed_hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = dict(scope.get("headers") or [])
        if self.allowed_hosts is not None:
            given = headers.get(b"host", b"").decode("latin-1")
            if host_name(given) not in self.allowed_hosts:  # None (not a host and port) never is
                shown = "".join(ch for ch in given if ch.isprintable())[:80] or "(none)"
                await _send_error(send, 400, f"this server does not answer to the Host {shown!r}; "
                                             "start it with --allow-host NAME to add a name")
                return
        if _is_write(method, path):
            problem = self.service.auth_problem(headers.get(b"authorization", b"").decode("latin-1") or None)
            if problem is not None:
                extra = [(b"www-authenticate", b"Bearer")] if problem[0] == 401 else []
                await _send_error(send, *problem, extra)
                return
        limit = self.service.limits.max_upload_bytes
        if _takes_upload(method, path):
            ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
            if not ctype.startswith("multipart/form-data"):
                await _send_error(send, 415, "send the image as a multipart/form-data file in the field 'image'")
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _send_error(send, 400, "Content-Length is not a number")
                return
            if n > limit:
                await _send_error(send, 413, f"the request body is {n:,} bytes; this server takes at most "
                                             f"{limit:,} (--max-upload-mb)")
                return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(413, f"the request body is over {limit:,} bytes, the most this server "
                                            "takes (--max-upload-mb)")
            return message

        started = False
        page = method in ("GET", "HEAD") and (path == "/" or path.startswith("/static/"))

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if page:
                    message = {**message, "headers": [*message.get("headers", []), *_PAGE_HEADERS]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send_error(send, 413, str(exc.detail))


# ---------------------------------------------------------------------- the app

def create_app(run: Any = None, *, service: Service | None = None, index: Any = None, store: Any = None,
               token: str | None = None, max_upload_mb: float | None = None, max_megapixels: float | None = None,
               k_max: int | None = None, engine: str | None = None, max_decode_mb: float | None = None,
               max_concurrent_uploads: int | None = None, allowed_hosts: Any = None,
               **service_options: Any) -> FastAPI:
    """The FastAPI app serving ``run`` (a run directory or :class:`~dnnh.runs.Run`), or ``service``.

    Opens (and locks) the store at once, so a second server on the same store fails here, not at
    the first request; the app's shutdown closes it (a final snapshot, the lock released).
    ``allowed_hosts``: the Host header names answered (None: any; ``dnnh serve`` passes the names
    it is bound to, see :class:`Guard`).
    """
    answered = None if allowed_hosts is None else frozenset(allowed_name(h) for h in allowed_hosts)  # before opening
    if service is None:
        if run is None:
            raise TypeError("create_app needs a run (or a service)")
        limits = Limits(**{k: v for k, v in {
            "max_upload_bytes": int(max_upload_mb * 1024 * 1024) if max_upload_mb is not None else None,
            "max_pixels": int(max_megapixels * 1_000_000) if max_megapixels is not None else None,
            "max_decode_bytes": int(max_decode_mb * 1024 * 1024) if max_decode_mb is not None else None,
            "max_concurrent_uploads": max_concurrent_uploads,
            "k_max": k_max}.items() if v is not None})
        service = Service.open(run, index=index, store=store, token=token, engine=engine, limits=limits,
                               **service_options)
    svc = service

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        svc.close()
        if svc.store.close_error:
            print(f"dnnh serve: {svc.store.close_error}", file=sys.stderr, flush=True)

    app = _fastapi_class()(title="dnnh retrieval service", version="1",
                  description=f"Search a trained model's database ({svc.nbits}-bit codes) by image "
                              "or by item; add and delete items (writes need `Authorization: Bearer <token>`). "
                              "Every error answers `{\"error\": {\"status\", \"code\", \"message\"}}`.",
                  lifespan=lifespan)
    app.state.service = svc
    _add_error_handlers(app)
    app.include_router(_search_routes(svc))
    app.include_router(_item_routes(svc))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, service=svc, allowed_hosts=answered)
    return app


def _fastapi_class() -> Any:
    """FastAPI, or fastapi-offline's factory where installed (the serve extra): it serves /docs and
    /redoc with Swagger UI and ReDoc from this machine. FastAPI's own pages load them from a CDN,
    which leaves a blank page on a machine without internet access."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        return FastAPI
    return FastAPIOffline


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in the one JSON shape: HTTP errors, validation errors, and anything unforeseen."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
            parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
        return error_response(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _fast_json(payload: dict) -> JSONResponse:
    """The answer as JSON made here, in the worker thread: FastAPI would validate it against the
    response model (which documents it) in one more thread hop, for nothing: the service built it."""
    return JSONResponse(payload)


def _read_upload(upload: UploadFile) -> bytes:
    upload.file.seek(0)
    return upload.file.read()


def _k_query(svc: Service) -> Any:
    return Query(10, ge=1, le=svc.limits.k_max, description=f"results wanted (1..{svc.limits.k_max})")


_RADIUS_QUERY = Query(None, ge=0, description="only items within this Hamming distance (inclusive)")
_ITEM_ID = PathParam(..., description="a stored item's id")


def _search_routes(svc: Service) -> APIRouter:
    """Reading: health, search by image, search by item, an item's image."""
    router = APIRouter()
    k_query = _k_query(svc)

    @router.get("/api/health", response_model=Health, tags=["service"])
    def health() -> dict:
        """Liveness and what is served: items, bits, limits, whether writes are enabled."""
        return svc.health()

    @router.post("/api/search", response_model=SearchResult, tags=["search"], responses=_errors(413, 415, 422, 503))
    def search(image: UploadFile = File(..., description="the query image (PNG, JPEG, ...)"),
               k: int = k_query, radius: Optional[int] = _RADIUS_QUERY) -> JSONResponse:
        """The k items nearest the image's code, ordered by Hamming distance then id."""
        try:
            return _fast_json(svc.search_image(_read_upload(image), k, radius))
        except ImageRejected as exc:
            raise ApiError(exc.status, str(exc)) from None
        except Busy as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": "1"}) from None

    @router.get("/api/items/{item_id}/similar", response_model=SearchResult, tags=["search"],
                responses=_errors(404, 422))
    def similar(item_id: int = _ITEM_ID, k: int = k_query, radius: Optional[int] = _RADIUS_QUERY) -> JSONResponse:
        """The item itself first (distance 0), then the k - 1 items nearest its code by distance and id."""
        try:
            return _fast_json(svc.similar(item_id, k, radius))
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None

    @router.get("/api/items/{item_id}/image", tags=["items"], response_class=Response,
                responses={200: {"content": {"image/png": {}}}, **_errors(404, 422)})
    def item_image(item_id: int = _ITEM_ID) -> Response:
        """The item's image as PNG (small dataset images scaled up to at least 96 px)."""
        try:
            png = svc.image_png(item_id)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    return router


def _item_routes(svc: Service) -> APIRouter:
    """Writing: add and delete items, behind the bearer token."""
    bearer = HTTPBearer(auto_error=False, description="the token from --token-file or DNNH_TOKEN")

    def require_token(request: Request, _: Any = Depends(bearer)) -> None:
        problem = svc.auth_problem(request.headers.get("authorization"))
        if problem is not None:
            raise ApiError(problem[0], problem[1], headers={"WWW-Authenticate": "Bearer"} if problem[0] == 401 else None)

    router = APIRouter(dependencies=[Depends(require_token)])

    @router.post("/api/items", response_model=Added, status_code=201, tags=["items"],
                 responses=_errors(401, 403, 413, 415, 422, 503, 507))
    def add_items(image: list[UploadFile] = File(..., description="one or more image files"),
                  label: Optional[str] = Form(None, description="a label for every image sent")) -> dict:
        """Add images: each is encoded and stored durably (logged and fsynced before this answers)."""
        try:
            ids = svc.add_images([(f.filename or "", _read_upload(f)) for f in image], label)
        except (ImageRejected, StoreWriteError) as exc:
            raise ApiError(exc.status, str(exc)) from None
        except Busy as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": "1"}) from None
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        return {"ids": ids, "items": [svc.item(i) for i in ids]}

    @router.delete("/api/items/{item_id}", response_model=Deleted, tags=["items"],
                   responses=_errors(401, 403, 404, 422, 503, 507))
    def delete_item(item_id: int = _ITEM_ID) -> dict:
        """Delete an item durably."""
        try:
            svc.delete(item_id)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except StoreWriteError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return {"id": item_id, "deleted": True}

    return router
