"""`dnnh serve`: a run's retrieval as a web service — JSON API, OpenAPI at /docs, a web page at /.

Searches the run's database (or ``--index``) by uploaded image or by stored item, serves the
dataset's images as thumbnails, and with a token (``--token-file`` or ``$DNNH_TOKEN``) adds and
deletes items durably in ``--store`` (default RUN/serve/; one server per store). Listens on
127.0.0.1 unless told otherwise; ``--port 0`` picks a free port and prints it.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import signal
import socket
import sys
import threading
from pathlib import Path

from dnnh.cli.common import add_device_arg, encoder_device, positive_int
from dnnh.cli.encode import add_engine_arg

MISSING_EXTRA = ("dnnh serve needs the 'serve' extra (FastAPI, uvicorn, python-multipart): "
                 "pip install 'dnnh[serve]'")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from dnnh.serve.limits import (DEFAULT_K_MAX, DEFAULT_MAX_CONCURRENT_UPLOADS, DEFAULT_MAX_DECODE_MB,
                                   DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_UPLOAD_MB)

    p = sub.add_parser("serve", help="serve a run's retrieval over HTTP (API + web page)", description=__doc__)
    p.add_argument("--run", type=Path, required=True, help="the trained run to serve")
    p.add_argument("--index", type=Path, help="start a new store from this index (dnnh index build) "
                                             "instead of the run's database codes")
    p.add_argument("--store", type=Path, help="folder of the durable store (default: RUN/serve)")
    p.add_argument("--reseed", action="store_true",
                   help="encode the store's items again with the run's model as it is now (a store whose codes "
                        "other weights made, after a retrain or --resume, is refused without it); items added "
                        "through the server are encoded from their stored images, ids, labels and deletes kept")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header names NAME (repeatable). By default only the "
                        "names of --host are answered (127.0.0.1 also as localhost and ::1), which keeps a web "
                        "page elsewhere from reaching the server through DNS rebinding; with --host 0.0.0.0 "
                        "or :: and no --allow-host, any Host is answered")
    p.add_argument("--token-file", type=Path, help="file holding the bearer token for writes "
                                                   "(default: $DNNH_TOKEN; neither: read-only)")
    p.add_argument("--max-upload-mb", type=_positive_float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest request body in MB (default {DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("--max-megapixels", type=_positive_float, default=DEFAULT_MAX_MEGAPIXELS,
                   help=f"largest image decoded, in megapixels (default {DEFAULT_MAX_MEGAPIXELS:g})")
    p.add_argument("--max-decode-mb", type=_positive_float, default=DEFAULT_MAX_DECODE_MB,
                   help="most memory one image's decode may need, estimated from its header before decoding "
                        f"(default {DEFAULT_MAX_DECODE_MB:g})")
    p.add_argument("--max-concurrent-uploads", type=positive_int, default=DEFAULT_MAX_CONCURRENT_UPLOADS,
                   help="uploads decoded at once; more wait briefly, then answer 503 "
                        f"(default {DEFAULT_MAX_CONCURRENT_UPLOADS})")
    p.add_argument("--max-k", type=positive_int, default=DEFAULT_K_MAX,
                   help=f"most results one request may ask for (default {DEFAULT_K_MAX})")
    add_engine_arg(p)
    add_device_arg(p, "run the model")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="threads one model call may use (default 1: concurrent requests are batched "
                        "and the index and decoding use the other cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        importlib.import_module("fastapi")
        import uvicorn
    except ImportError:
        raise ImportError(MISSING_EXTRA) from None
    if importlib.util.find_spec("python_multipart") is None and importlib.util.find_spec("multipart") is None:
        raise ImportError(MISSING_EXTRA)
    from dnnh.serve.tokens import read_token

    token = read_token(args.token_file)
    device = encoder_device(args)  # a GPU that is not here: one line, before the port is taken
    sock = _listen(args.host, args.port)  # before the model loads: a busy port is said at once
    try:
        import torch

        from dnnh.serve.app import create_app

        torch.set_num_threads(args.threads)
        on_gpu = {}  # the CPU keeps the service's own lazily built encoder
        if device is not None and device.type != "cpu":
            from dnnh.encoder import Encoder

            on_gpu["encoder"] = Encoder.from_run(args.run, engine=args.engine, device=device, num_workers=0)
        app = create_app(args.run, index=args.index, store=args.store, token=token, engine=args.engine,
                         max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels, k_max=args.max_k,
                         max_decode_mb=args.max_decode_mb, max_concurrent_uploads=args.max_concurrent_uploads,
                         allowed_hosts=allowed_hosts(args.host, args.allow_host), reseed=args.reseed, **on_gpu)
        service = app.state.service
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"dnnh serve: http://{shown}:{port}/  ({service.store.ntotal} items, {service.nbits} bits, "
              f"store {service.store.path}, writes {'need the token' if service.writable else 'off (read-only)'}"
              f"{f', {service.store.replayed} logged writes replayed' if service.store.replayed else ''})",
              file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=5)
        _serve_until_stopped(uvicorn.Server(config), sock)
    finally:
        sock.close()
    print("dnnh serve: stopped" + ("" if service.store.close_error else "; the store is saved"), file=sys.stderr)
    return 1 if service.store.close_error else 0  # the shutdown printed it in one line


class _Stopped(Exception):
    """SIGTERM, raised where uvicorn raises the signal again after its shutdown."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped


def _serve_until_stopped(server, sock: socket.socket) -> None:
    """Run uvicorn until Ctrl-C or SIGTERM. uvicorn closes the connections and the app (the store's
    final snapshot) and then raises the signal again; a shutdown that finished is a clean stop (exit
    0), not an abort (130, or death by SIGTERM). A second Ctrl-C cuts the shutdown short: that one is
    an interrupt (the log keeps every acknowledged write)."""
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set a handler
    previous = signal.signal(signal.SIGTERM, _raise_stopped) if main_thread else None
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        if server.force_exit or not server.started:
            raise KeyboardInterrupt from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})


def allowed_hosts(host: str, extra: list[str]) -> list[str] | None:
    """The Host header names the server answers: ``host`` (with its loopback aliases) and ``extra``;
    None (any) for a wildcard ``host`` without ``extra``."""
    host = host.strip().lower().strip("[]")
    if host in WILDCARD:
        return list(extra) or None
    names = {host, *extra}
    if host in LOOPBACK or host.startswith("127."):
        names |= LOOPBACK
    return sorted(names)


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket, or one line saying why not (before the model loads)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = "; is another server on it? choose another --port" if exc.errno == errno.EADDRINUSE else ""
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock
