"""`dnnh serve` as a real process on 127.0.0.1: an acknowledged add survives SIGKILL; one server per store."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="the serve extra is not installed: pip install -e '.[serve]'")

from support.builders import png_bytes
from support.serving import TOKEN

from dnnh.cli.main import main

pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")

BANNER = re.compile(r"dnnh serve: http://127\.0\.0\.1:(\d+)/")


class Server:
    """``dnnh serve`` in a subprocess, on a port it picks itself (``--port 0``), output in a file."""

    def __init__(self, run: Path, store: Path, log: Path, *extra: str) -> None:
        self.log = log
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("DNNH_TOKEN", None)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "dnnh", "serve", "--run", str(run), "--store", str(store),
                                          "--host", "127.0.0.1", "--port", "0", *extra],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)
        self.port = self._wait_for_banner()

    def _wait_for_banner(self, timeout: float = 60.0) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            match = BANNER.search(text)
            if match:
                port = int(match.group(1))
                if self._healthy(port):
                    return port
            elif self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"dnnh serve did not start in {timeout} s:\n{self.log.read_text(errors='replace')}")

    @staticmethod
    def _healthy(port: int) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/health")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        return resp.status, (json.loads(data) if resp.getheader("content-type", "").startswith("application/json")
                             else data)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def multipart(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_an_acknowledged_add_survives_kill_9(tiny_run, tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    store = tmp_path / "store"
    image = png_bytes(np.random.default_rng(7).integers(0, 255, (8, 8), dtype=np.uint8))
    body, ctype = multipart([("new.png", image)], {"label": "survivor"})

    server = Server(tiny_run, store, tmp_path / "first.log", "--token-file", str(token_file))
    try:
        status, health = server.request("GET", "/api/health")
        base = health["ntotal"]
        status, added = server.request("POST", "/api/items", body, {"Content-Type": ctype,
                                                                     "Authorization": f"Bearer {TOKEN}"})
        assert status == 201, added
        new_id = added["ids"][0]
        status, deleted = server.request("DELETE", "/api/items/0", None, {"Authorization": f"Bearer {TOKEN}"})
        assert status in (200, 404)

        # One server per store: a second one says who holds it, in one line, and exits.
        capsys.readouterr()
        assert main(["serve", "--run", str(tiny_run), "--store", str(store), "--port", "0"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"PID {server.proc.pid}" in err, err

        # A chunked body over the limit is refused by the real server too, without a Content-Length.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        head, ctype_big = multipart([("big.png", b"")])
        chunks = iter([head[:-len(b"\r\n--")]] + [b"\0" * (1 << 20)] * 20)
        try:
            conn.request("POST", "/api/search", body=chunks, headers={"Content-Type": ctype_big}, encode_chunked=True)
            assert conn.getresponse().status == 413
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered 413 and closed while we were still sending: also refused
        finally:
            conn.close()
    finally:
        assert server.kill(signal.SIGKILL) == -signal.SIGKILL

    server = Server(tiny_run, store, tmp_path / "second.log", "--token-file", str(token_file))
    try:
        assert "logged writes replayed" in (tmp_path / "second.log").read_text()
        status, health = server.request("GET", "/api/health")
        assert health["ntotal"] == base + 1 - (1 if status == 200 and deleted.get("deleted") else 0)
        status, png = server.request("GET", f"/api/items/{new_id}/image")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
        body, ctype = multipart([("query.png", image)])
        status, found = server.request("POST", "/api/search?k=1000&radius=0", body, {"Content-Type": ctype})
        assert status == 200 and new_id in [r["id"] for r in found["results"]]
        status, similar = server.request("GET", f"/api/items/{new_id}/similar?k=1")
        assert status == 200 and similar["query"]["label"] == "survivor" and similar["code"] == found["code"]
        if deleted.get("deleted"):
            assert server.request("GET", "/api/items/0/image")[0] == 404
    finally:
        # A clean stop (uvicorn re-raises the signal once it has shut down): a final snapshot, the log emptied.
        assert server.kill(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert (store / "wal.log").stat().st_size == 0


def test_a_busy_port_is_one_line(tiny_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--run", str(tiny_run), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "choose another --port" in err, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_clean_stop_by_ctrl_c_or_sigterm_exits_0_with_the_store_saved(tiny_run, tmp_path, sig):
    """Issue 36.17. Before: Ctrl-C (SIGINT) exited 130 and printed "interrupted", as if aborted, and
    SIGTERM died by the signal (-15), though each had shut the server down and saved the store."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    store = tmp_path / "store"
    server = Server(tiny_run, store, tmp_path / "serve.log", "--token-file", str(token_file))
    body, ctype = multipart([("new.png", png_bytes(np.zeros((8, 8), np.uint8)))])
    status, _ = server.request("POST", "/api/items", body, {"Content-Type": ctype, "Authorization": f"Bearer {TOKEN}"})
    assert status == 201 and (store / "wal.log").stat().st_size > 0
    assert server.kill(sig) == 0, server.log.read_text()
    log = server.log.read_text()
    assert "interrupted" not in log and "dnnh serve: stopped" in log, log
    assert (store / "wal.log").stat().st_size == 0  # the final snapshot holds the add
