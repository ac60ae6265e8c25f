"""Issue 25, items 4 and 6-8 through the HTTP API: cheap attacks cost little, every failure is one clear answer."""

from __future__ import annotations

import errno
import io
import json
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="the serve extra is not installed: pip install -e '.[serve]'")

from dnnh.cli.main import main
from dnnh.cli.serve import allowed_hosts
from dnnh.data.images import CorruptImageError, check_image, read_image
from dnnh.serve import create_app
from dnnh.serve.limits import decode_bytes
from dnnh.serve.tokens import MAX_TOKEN_CHARS, read_token

TOKEN = "hostile-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client_of(app, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(app, **kwargs)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def dds_unimplemented() -> bytes:
    """A DDS file whose pixel format Pillow's plugin does not implement (it raises NotImplementedError)."""
    pixel_format = struct.pack("<II4sIIIII", 32, 0x4, b"ZZZZ", 0, 0, 0, 0, 0)
    header = struct.pack("<IIIIIII", 124, 0x1007, 8, 8, 0, 0, 0) + b"\0" * 44 + pixel_format + b"\0" * 20
    return b"DDS " + header + b"\0" * 256


@pytest.fixture(scope="module")
def app(tiny_run, tmp_path_factory):
    app = create_app(tiny_run, store=tmp_path_factory.mktemp("store") / "s", token=TOKEN, max_decode_mb=8,
                     max_concurrent_uploads=1, allowed_hosts=["127.0.0.1", "localhost", "testserver"])
    app.state.service.limits = type(app.state.service.limits)(**{**app.state.service.limits.__dict__,
                                                                  "upload_wait_s": 0.0})
    yield app
    app.state.service.close()


@pytest.fixture(scope="module")
def client(app):
    return client_of(app)


def search(client, data: bytes, **kwargs):
    return client.post("/api/search", files={"image": ("q.png", data, "image/png")}, **kwargs)


def test_a_decoder_that_raises_not_implemented_is_a_bad_image_everywhere(client, tmp_path):
    """Before: a DDS upload answered 500, and the same file stopped train --skip-corrupt and search."""
    data = dds_unimplemented()
    for response in (search(client, data),
                     client.post("/api/items", files={"image": ("x.dds", data, "image/png")}, headers=AUTH)):
        assert response.status_code == 415, response.text
        assert "NotImplementedError" in response.json()["error"]["message"]
    path = tmp_path / "x.dds"
    path.write_bytes(data)
    with pytest.raises(CorruptImageError, match="cannot decode image .*x.dds: NotImplementedError"):
        read_image(path)
    assert check_image(path).startswith("cannot decode: NotImplementedError")


def test_decoding_is_bounded_by_its_memory_before_a_pixel_is_decoded(client):
    """Before: a 75 KB 16-bit PNG cost about 1 GB per search; now its decode's estimate is refused."""
    data = png(np.zeros((2000, 2000), np.uint16))  # 4 megapixels, under --max-megapixels
    assert len(data) < 20_000
    response = search(client, data)
    assert response.status_code == 413
    assert "needs about 46 MB to decode, more than this server spends on one image (8 MB" in \
        response.json()["error"]["message"]


def test_a_16_bit_decode_stays_within_its_estimate():
    """Before: 27 bytes a pixel (float64 temporaries, 972 MB for 6000x6000); the estimate says 20."""
    code = (
        "import io, resource, numpy as np\n"
        "from PIL import Image\n"
        "from dnnh.serve.images import decode_upload\n"
        "buf = io.BytesIO(); Image.fromarray(np.zeros((3000, 3000), np.uint16)).save(buf, format='PNG')\n"
        "data = buf.getvalue(); decode_upload(data, channels=3, input_size=8, max_pixels=10**9)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "decode_upload(data, channels=3, input_size=8, max_pixels=10**9)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)\n")
    # The first decode warms imports and the allocator; the second's extra peak is the decode's own.
    grown = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown <= decode_bytes("I;16", 3000, 3000, 3)


def test_a_full_house_of_uploads_answers_503_with_retry_after(app, client):
    """Before: the handler pool admitted 40 decodes at once."""
    with app.state.service.upload_slot():  # the one slot taken
        response = search(client, png(np.zeros((8, 8, 3), np.uint8)))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "decoding 1 uploads already" in response.json()["error"]["message"]
    assert search(client, png(np.zeros((8, 8, 3), np.uint8))).status_code == 200  # the slot is free again


def test_health_and_openapi_name_no_path(client, tiny_run):
    """Before: /api/health gave the run's path (and OpenAPI its name) to anyone."""
    for text in (client.get("/api/health").text, client.get("/openapi.json").text):
        assert str(tiny_run) not in text and tiny_run.name not in json.loads(text).__repr__()


def test_a_host_header_the_server_was_not_bound_to_is_refused(client):
    """Before: no Host check, so a page elsewhere could reach 127.0.0.1 through DNS rebinding."""
    response = client.get("/api/health", headers={"Host": "rebind.attacker.example"})
    assert response.status_code == 400 and "--allow-host" in response.json()["error"]["message"]
    assert client.get("/api/health", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "127.0.0.1"}).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1:8000@evil.example", "localhost@evil.example", "testserver:80@evil.example",
                                  "127.0.0.1/evil.example", "127.0.0.1:80:81", "127.0.0.1:8o", "127.0.0.1:123456",
                                  "127.0.0.1 evil.example", "127.0.0.1,evil.example", "::1", "[::1", ""])
def test_a_host_header_that_is_not_host_and_port_is_refused(client, host):
    """Issue 36.7. Before: the guard took the text before the last colon, so
    "127.0.0.1:8000@evil.example" passed as 127.0.0.1 (userinfo, paths and junk ports all did)."""
    response = client.get("/api/health", headers={"Host": host})
    assert response.status_code == 400, host
    assert "does not answer to the Host" in response.json()["error"]["message"]


@pytest.mark.parametrize("header, name", [("[::1]:8000", "::1"), ("[::1]", "::1"), ("[0:0:0:0:0:0:0:1]:80", "::1"),
                                          ("LocalHost.:8000", "localhost"), ("127.0.0.1:", "127.0.0.1"),
                                          ("box-1.lan", "box-1.lan"), ("[::1]@evil.example", None),
                                          ("[::1]:80@evil.example", None), ("[127.0.0.1]", None),
                                          ("[::1]x", None), ("a..b", None), ("ı.example", None)])
def test_host_headers_parse_as_host_and_port(header, name):
    """RFC 9110's uri-host [":" port]: a name, an IPv4 address or a bracketed IPv6 address, then digits."""
    from dnnh.serve.app import host_name

    assert host_name(header) == name


def test_names_to_answer_to_are_parsed_the_same_way(tmp_path):
    from dnnh.serve.app import allowed_name

    assert [allowed_name(n) for n in ("::1", "[::1]", "0:0::1", "Box.LAN.", "box.lan:8000")] == [
        "::1", "::1", "::1", "box.lan", "box.lan"]
    with pytest.raises(ValueError, match="is not a host name or address"):
        allowed_name("127.0.0.1:80@evil.example")
    with pytest.raises(ValueError, match="is not a host name or address"):  # refused before the store opens
        create_app(tmp_path / "no-run", store=tmp_path / "s", allowed_hosts=["a b"])
    assert not (tmp_path / "s").exists()


def test_the_bound_names_answer_with_their_ports(client):
    for host in ("localhost:8000", "127.0.0.1", "testserver", "LOCALHOST."):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host


def test_dnnh_serve_answers_the_names_it_is_bound_to():
    assert allowed_hosts("127.0.0.1", []) == ["127.0.0.1", "::1", "localhost"]
    assert allowed_hosts("localhost", ["box.lan"]) == ["127.0.0.1", "::1", "box.lan", "localhost"]
    assert allowed_hosts("10.0.0.5", []) == ["10.0.0.5"]
    assert allowed_hosts("0.0.0.0", []) is None and allowed_hosts("::", ["a.example"]) == ["a.example"]


@pytest.mark.parametrize("token, shown", [("pässword-0123", "'ä'"), ("two words", "a space")])
def test_a_token_no_client_can_send_is_refused_at_start(tmp_path, token, shown):
    """Before: a non-ASCII token started the server, and no client could ever write."""
    with pytest.raises(ValueError, match=f"holds {shown}; a token must be printable ASCII"):
        read_token(environ={"DNNH_TOKEN": token})
    path = tmp_path / "token"
    path.write_text(token + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="printable ASCII"):
        read_token(path)


@pytest.mark.parametrize("size", [MAX_TOKEN_CHARS + 1, 1_000_000])
def test_a_token_too_long_for_an_http_header_is_refused_at_start(tmp_path, capsys, size):
    """Issue 36.7. Before: a 1 MB token file started a writable server that no client could write
    to (the HTTP layer reset every connection that sent the header)."""
    token = "a" * size
    with pytest.raises(ValueError, match=f"{size:,} characters; a token may have at most {MAX_TOKEN_CHARS:,}"):
        read_token(environ={"DNNH_TOKEN": token})
    path = tmp_path / "token"
    path.write_text(token + "\n")
    assert main(["serve", "--run", str(tmp_path / "no-run"), "--token-file", str(path), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a token may have at most" in err and str(path) in err, err
    assert len(read_token(environ={"DNNH_TOKEN": "a" * MAX_TOKEN_CHARS})) == MAX_TOKEN_CHARS


def test_a_token_file_that_is_long_after_its_first_line_still_gives_its_first_line(tmp_path):
    path = tmp_path / "token"
    path.write_text("\n\n  good-token-0123  \n" + "b" * 1_000_000)
    assert read_token(path) == "good-token-0123"


def test_a_full_disk_answers_507_and_the_item_is_not_stored(app, client, monkeypatch):
    """Before: three adds answered 500 and reused sequence numbers."""
    from dnnh.serve import journal

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    before = client.get("/api/health").json()
    monkeypatch.setattr(journal, "write_line", full)
    response = client.post("/api/items", files={"image": ("a.png", png(np.zeros((8, 8, 3), np.uint8)), "image/png")},
                           headers=AUTH)
    assert response.status_code == 507, response.text
    assert "the disk is full" in response.json()["error"]["message"]
    monkeypatch.undo()
    after = client.get("/api/health").json()
    assert after["ntotal"] == before["ntotal"]
    added = client.post("/api/items", files={"image": ("a.png", png(np.zeros((8, 8, 3), np.uint8)), "image/png")},
                        headers=AUTH).json()["ids"]
    assert added == [before["next_id"] + 1]  # the failed add's id is never given again
