"""Load test of ``dnnh serve``: concurrent image searches over loopback while one writer adds images.

What it does, all on 127.0.0.1 and bounded in time and requests (it stops by itself):

1. Trains a small digits run (or takes ``--run``), and writes an index of ``--codes`` codes: the
   run's database codes plus random ones (ids from 10,000,000 up), so the service searches a
   million codes (``--codes 1000000``, the default).
2. **In process**: the service's own decode + encode + search path (``Service.search_image``), one
   query at a time for ``--inproc-seconds``: the rate the HTTP service is compared with.
3. Starts ``dnnh serve --index ...`` as a subprocess and measures, over HTTP:
   a single client, one request at a time (``--single-seconds``): the latency of one search;
   then ``--clients`` concurrent clients posting query images for ``--seconds`` while one writer
   adds an image every ``--write-every`` seconds (with the bearer token).
4. Prints the table: requests/s, p50/p95/p99 latency, errors (must be 0), where the time goes
   (decode/encode/search from the server's ``timings_ms``; HTTP = the rest of the client's
   latency: parsing, queueing, the thread hop, JSON), the served rate as a fraction of the
   in-process rate, and the machine: CPU model, cores, thread counts, load averages.

    python benchmarks/serve_load.py                         # 1M codes, 16 clients, 20 s
    python benchmarks/serve_load.py --codes 100000 --seconds 5

Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from dnnh import machine

HOST = "127.0.0.1"  # loopback only
FILLER_ID = 10_000_000
MAX_REQUESTS = 2_000_000  # a hard bound, whatever the flags


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="a trained run (default: train a small digits run in a temporary folder)")
    p.add_argument("--bits", type=int, default=48, help="code length of the run trained when --run is not given")
    p.add_argument("--codes", type=int, default=1_000_000, help="codes in the served index (default 1,000,000)")
    p.add_argument("--clients", type=int, default=16, help="concurrent searching clients (default 16)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the loaded phase (default 20)")
    p.add_argument("--single-seconds", type=float, default=3.0, help="length of the one-client phase (default 3)")
    p.add_argument("--inproc-seconds", type=float, default=3.0, help="length of the in-process phase (default 3)")
    p.add_argument("--write-every", type=float, default=0.1, help="the writer's pause between adds, s (default 0.1)")
    p.add_argument("-k", type=int, default=10, help="results per search (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, in process and in the server (default 1, "
                                                          "as dnnh serve)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.codes < 1 or args.seconds > 600:
        p.error("--clients and --codes must be >= 1 and --seconds within (0, 600]")
    return args


# ---------------------------------------------------------------------------- set-up

def train_run(folder: Path, bits: int) -> Path:
    from dnnh.cli.main import main

    run = folder / "run"
    argv = ["train", "--run", str(run), "--data", "digits", "--queries-per-class", "5", "--train-per-class", "30",
            "--bits", str(bits), "--input-size", "8", "--epochs", "2", "--batch-size", "40", "--threads", "1",
            "--workers", "0", "--quiet"]
    if main(argv) != 0:
        raise SystemExit("training the benchmark's run failed")
    return run


def build_index(run: Path, n: int, out: Path) -> tuple[int, int]:
    """The run's database codes plus random codes up to ``n`` in all; returns (nbits, database size)."""
    from dnnh.codes import CodeSet
    from dnnh.index import HammingIndex

    db = CodeSet.load(run / "codes_database.npz")
    rng = np.random.default_rng(0)
    extra = max(0, n - len(db))
    filler = rng.integers(0, 256, (extra, db.codes.shape[1]), dtype=np.uint8)
    if db.nbits % 8:
        filler[:, -1] &= (1 << (db.nbits % 8)) - 1
    index = HammingIndex(db.nbits)
    index.add(np.concatenate([db.codes, filler])[:n],
              ids=np.concatenate([db.ids, FILLER_ID + np.arange(extra, dtype=np.int64)])[:n])
    index.save(out)
    return db.nbits, len(db)


def query_images(run: Path, count: int = 64) -> list[bytes]:
    """PNG files of the run's query images (what a user would upload)."""
    from PIL import Image

    from dnnh.runs import Run

    r = Run.open(run)
    data = r.load_dataset()
    out = []
    for i in np.asarray(r.split.query)[:count]:
        img = np.asarray(data.load_image(int(i)))
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def multipart(data: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    head = "".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in (fields or {}).items())
    body = (head + f'--{b}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


# ---------------------------------------------------------------------------- measuring

def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency_ms: list[float] = []
        self.server: list[dict] = []
        self.errors: list[str] = []

    def add(self, ms: float, timings: dict | None) -> None:
        with self.lock:
            self.latency_ms.append(ms)
            if timings is not None:
                self.server.append(timings)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def client_loop(port: int, bodies: list[tuple[bytes, str]], path: str, headers: dict, stop: threading.Event,
                tally: Tally, pause: float = 0.0, limit: int = MAX_REQUESTS) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    i = 0
    while not stop.is_set() and i < limit:
        body, ctype = bodies[i % len(bodies)]
        i += 1
        t = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": ctype, **headers})
            resp = conn.getresponse()
            payload = resp.read()
            ms = (time.perf_counter() - t) * 1000.0
            if resp.status >= 300:
                tally.error(f"HTTP {resp.status}: {payload[:200]!r}")
                continue
            tally.add(ms, json.loads(payload).get("timings_ms"))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            tally.error(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
        if pause:
            stop.wait(pause)
    conn.close()


def run_phase(port: int, bodies: list[tuple[bytes, str]], clients: int, seconds: float, k: int,
              writer: tuple[list[tuple[bytes, str]], str, float] | None = None) -> tuple[Tally, Tally | None, float]:
    stop = threading.Event()
    tally, wtally = Tally(), Tally() if writer else None
    threads = [threading.Thread(target=client_loop, args=(port, bodies[i::clients] or bodies, f"/api/search?k={k}", {},
                                                          stop, tally)) for i in range(clients)]
    if writer:
        wbodies, token, pause = writer
        threads.append(threading.Thread(target=client_loop, args=(port, wbodies, "/api/items",
                                                                  {"Authorization": f"Bearer {token}"}, stop, wtally, pause)))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    return tally, wtally, time.perf_counter() - t0


def inprocess(run: Path, index: Path, store: Path, images: list[bytes], seconds: float, k: int, threads: int) -> dict:
    """The library's path without HTTP, one query at a time: decode the upload, encode it (one model
    call), search the store. The store is then reused by the server."""
    import torch

    from dnnh.codes import pack_bits
    from dnnh.serve.service import Service

    torch.set_num_threads(threads)
    t = time.perf_counter()
    service = Service.open(run, index=index, store=store, load_dataset=False, log=lambda m: None)
    opened = time.perf_counter() - t

    def one(data: bytes) -> dict:
        t0 = time.perf_counter()
        small, _ = service.decode(data)
        t1 = time.perf_counter()
        code = pack_bits(service.encoder.encode_images(small[None], role="query"))
        t2 = time.perf_counter()
        service.store.search(code, k)
        t3 = time.perf_counter()
        return {"decode": (t1 - t0) * 1e3, "encode": (t2 - t1) * 1e3, "search": (t3 - t2) * 1e3}

    try:
        for data in images[:16]:
            one(data)  # warm-up: JIT, lazy tables
        lat, parts = [], []
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds and i < MAX_REQUESTS:
            t = time.perf_counter()
            parts.append(one(images[i % len(images)]))
            lat.append((time.perf_counter() - t) * 1000.0)
            i += 1
        wall = time.perf_counter() - t0
    finally:
        service.close()
    return {"requests": len(lat), "rate": len(lat) / wall, "latency_ms": lat, "parts": parts, "open_s": opened}


def start_server(run: Path, index: Path, store: Path, token_file: Path, log: Path,
                 threads: int) -> tuple[subprocess.Popen, int, float]:
    t = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dnnh", "serve", "--run", str(run), "--index", str(index),
                                 "--store", str(store), "--host", HOST, "--port", "0", "--token-file", str(token_file),
                                 "--threads", str(threads)],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text(errors="replace"))
        if match:
            return proc, int(match.group(1)), time.perf_counter() - t
        if proc.poll() is not None:
            raise SystemExit(f"dnnh serve exited:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("dnnh serve did not start in 300 s")


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------- report

def mean_part(parts: list[dict], key: str) -> float:
    values = [p.get(key, 0.0) for p in parts]
    return statistics.fmean(values) if values else float("nan")


def row(name: str, clients: int, n: int, rate: float, lat: list[float], errors: int) -> str:
    return (f"| {name} | {clients} | {n:,} | {rate:,.0f} | {percentile(lat, 50):.2f} | {percentile(lat, 95):.2f} | "
            f"{percentile(lat, 99):.2f} | {errors} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dnnh-serve-load-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        run = args.run or train_run(tmp, args.bits)
        trained = time.perf_counter() - t if args.run is None else 0.0
        t = time.perf_counter()
        nbits, ndb = build_index(run, args.codes, tmp / "bench.dhi")
        built = time.perf_counter() - t
        images = query_images(run)
        bodies = [multipart(d) for d in images]
        token = uuid.uuid4().hex
        (tmp / "token").write_text(token)
        rng = np.random.default_rng(1)
        adds = []
        for _ in range(32):
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(buf, format="PNG")
            adds.append(multipart(buf.getvalue(), {"label": "load-test"}))
        print(f"run {run} ({nbits} bits), index of {args.codes:,} codes ({ndb:,} from the run) built in {built:.1f} s"
              + (f", run trained in {trained:.1f} s" if trained else ""), file=sys.stderr)

        inproc = inprocess(run, tmp / "bench.dhi", tmp / "store", images, args.inproc_seconds, args.k, args.threads)
        proc, port, started = start_server(run, tmp / "bench.dhi", tmp / "store", tmp / "token", tmp / "server.log",
                                           args.threads)
        try:
            health = get_json(port, "/api/health")
            run_phase(port, bodies, 2, 1.0, args.k)  # warm-up
            single, _, single_wall = run_phase(port, bodies, 1, args.single_seconds, args.k)
            loaded, writes, loaded_wall = run_phase(port, bodies, args.clients, args.seconds, args.k,
                                                    writer=(adds, token, args.write_every))
            after = get_json(port, "/api/health")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    load_after = os.getloadavg()

    served_rate = len(loaded.latency_ms) / loaded_wall
    errors = len(single.errors) + len(loaded.errors) + len(writes.errors)
    server_ms = {key: mean_part(loaded.server, key) for key in ("decode", "encode", "search")}
    http_ms = statistics.fmean(loaded.latency_ms) - sum(server_ms.values()) if loaded.latency_ms else float("nan")
    in_ms = {key: mean_part(inproc["parts"], key) for key in ("decode", "encode", "search")}
    lines = [
        f"machine: {machine.cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}; "
        f"server threads: torch {health['threads']['torch']}, index {health['threads']['index']}; "
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}",
        f"index: {args.codes:,} codes of {nbits} bits; server started in {started:.1f} s; k = {args.k}; "
        f"{args.clients} clients for {args.seconds:g} s, one writer adding an image every {args.write_every:g} s",
        "",
        "| phase | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("in process: decode + encode + search", 1, inproc["requests"], inproc["rate"], inproc["latency_ms"], 0),
        row("served, one client", 1, len(single.latency_ms), len(single.latency_ms) / single_wall, single.latency_ms,
            len(single.errors)),
        row(f"served, {args.clients} clients + writer", args.clients, len(loaded.latency_ms), served_rate,
            loaded.latency_ms, len(loaded.errors)),
        row("writer: POST /api/items (fsync'd)", 1, len(writes.latency_ms), len(writes.latency_ms) / loaded_wall,
            writes.latency_ms, len(writes.errors)),
        "",
        "where the time goes, mean ms per search:",
        "",
        "| path | decode | encode | search | HTTP + queueing | total |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| in process | {in_ms['decode']:.2f} | {in_ms['encode']:.2f} | {in_ms['search']:.2f} | - | "
        f"{statistics.fmean(inproc['latency_ms']):.2f} |",
        f"| served, {args.clients} clients | {server_ms['decode']:.2f} | {server_ms['encode']:.2f} | "
        f"{server_ms['search']:.2f} | {http_ms:.2f} | {statistics.fmean(loaded.latency_ms) if loaded.latency_ms else float('nan'):.2f} |",
        "",
        f"served rate / in-process rate: {served_rate / inproc['rate']:.2f} "
        f"({served_rate:,.0f} / {inproc['rate']:,.0f} req/s); p99 of one search (one client): "
        f"{percentile(single.latency_ms, 99):.2f} ms, under load: {percentile(loaded.latency_ms, 99):.2f} ms",
        f"items: {health['ntotal']:,} before, {after['ntotal']:,} after ({len(writes.latency_ms)} adds acknowledged); "
        f"errors: {errors}",
    ]
    print("\n".join(lines))
    for what in (single.errors + loaded.errors + writes.errors)[:5]:
        print(f"error: {what}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({
            "codes": args.codes, "nbits": nbits, "clients": args.clients, "seconds": args.seconds,
            "inprocess_rate": inproc["rate"], "served_rate": served_rate, "ratio": served_rate / inproc["rate"],
            "single_p99_ms": percentile(single.latency_ms, 99), "loaded_p50_ms": percentile(loaded.latency_ms, 50),
            "loaded_p95_ms": percentile(loaded.latency_ms, 95), "loaded_p99_ms": percentile(loaded.latency_ms, 99),
            "server_ms": server_ms, "http_ms": http_ms, "writes": len(writes.latency_ms), "errors": errors,
            "cpu": machine.cpu_model(), "cpus": os.cpu_count(), "threads": health["threads"],
            "loadavg_before": load_before, "loadavg_after": load_after}, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
