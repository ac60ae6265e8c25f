"""The JSON API through FastAPI's TestClient: every endpoint, every error, one error shape, never a 500."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="the serve extra is not installed: pip install -e '.[serve]'")

from support.builders import png_bytes, png_header_only
from support.serving import TOKEN, make_client

from dnnh.codes import CodeSet, hamming_distances, pack_bits
from dnnh.data.digits import load_digits
from dnnh.encoder import Encoder
from dnnh.serve import create_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def digits_images():
    return load_digits().images


@pytest.fixture(scope="module")
def app(tiny_run, tmp_path_factory):
    app = create_app(tiny_run, store=tmp_path_factory.mktemp("store") / "s", token=TOKEN, max_upload_mb=0.25,
                     max_megapixels=1.0, k_max=200)
    yield app
    app.state.service.close()


@pytest.fixture(scope="module")
def client(app):
    return make_client(app)


@pytest.fixture(scope="module")
def database(tiny_run):
    return CodeSet.load(tiny_run / "codes_database.npz")


def upload(data: bytes, name: str = "q.png", ctype: str = "image/png") -> dict:
    return {"image": (name, data, ctype)}


def expected_results(database: CodeSet, code: np.ndarray, k: int, radius: int | None = None):
    dist = hamming_distances(code.reshape(1, -1), database.codes)[0]
    order = np.lexsort((database.ids, dist))
    rows = [(int(database.ids[i]), int(dist[i])) for i in order if radius is None or dist[i] <= radius]
    return rows[:k]


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message"}
    assert body["error"]["status"] == status and body["error"]["message"]
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]
    return body["error"]


def test_health(client, database):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["ntotal"] == len(database) and body["nbits"] == 12
    assert body["writable"] is True and body["k_max"] == 200 and body["dataset"] == "digits"


def test_search_answers_what_the_encoder_and_a_flat_scan_answer(client, tiny_run, database, digits_images, tmp_path):
    item = int(database.ids[11])
    data = png_bytes(digits_images[item])
    (tmp_path / "q.png").write_bytes(data)
    code = pack_bits(Encoder.from_run(tiny_run).encode_files([tmp_path / "q.png"]))[0]  # as `dnnh search` encodes
    body = client.post("/api/search?k=25", files=upload(data)).json()
    assert body["code"] == code.tobytes().hex() and len(body["bits"]) == 12
    assert [(r["id"], r["distance"]) for r in body["results"]] == expected_results(database, code, 25)
    assert set(body["timings_ms"]) == {"decode", "encode", "search"}
    first = body["results"][0]
    assert first["image_url"] == f"/api/items/{first['id']}/image" and first["label"] == str(load_digits().labels[first["id"]])
    assert item in [r["id"] for r in client.post("/api/search?k=200&radius=0", files=upload(data)).json()["results"]]

    within = client.post("/api/search?k=200&radius=2", files=upload(data)).json()
    assert within["radius"] == 2
    assert [(r["id"], r["distance"]) for r in within["results"]] == expected_results(database, code, 200, 2)
    assert client.post("/api/search", files=upload(data)).json()["k"] == 10  # the default


def test_search_takes_any_image_mode_and_size(client):
    rgb = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    assert client.post("/api/search?k=3", files=upload(buf.getvalue(), "q.jpg", "image/jpeg")).status_code == 200
    rgba = Image.new("RGBA", (40, 30), (10, 20, 30, 128))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    assert client.post("/api/search?k=3", files=upload(buf.getvalue())).status_code == 200


@pytest.mark.parametrize("query, words", [
    ("k=0", ["k", "greater than or equal to 1"]),
    ("k=201", ["k", "less than or equal to 200"]),
    ("k=ten", ["k"]),
    ("radius=-1", ["radius", "greater than or equal to 0"]),
])
def test_bad_k_or_radius_is_422(client, digits_images, query, words):
    assert_error(client.post(f"/api/search?{query}", files=upload(png_bytes(digits_images[0]))), 422, *words)
    assert_error(client.get(f"/api/items/5/similar?{query}"), 422, *words)


def test_what_is_not_an_image_is_415(client, digits_images):
    assert_error(client.post("/api/search", files=upload(b"GIF89a but not really", "x.gif")), 415, "not an image")
    assert_error(client.post("/api/search", files=upload(b"", "empty.png")), 415, "empty")
    truncated = png_bytes(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8))[:200]
    assert_error(client.post("/api/search", files=upload(truncated)), 415)
    assert_error(client.post("/api/search", json={"image": "base64..."}), 415, "multipart/form-data")
    error = assert_error(client.post("/api/search", files=upload(b"%PDF-1.4", "a.pdf", "application/pdf")), 415)
    assert "BytesIO" not in error["message"]


def test_missing_field_is_422(client):
    assert_error(client.post("/api/search", files={"file": ("q.png", b"x", "image/png")}), 422, "image", "required")


def test_a_body_over_the_limit_is_413_by_its_length(client):
    big = os.urandom(300 * 1024)  # the app takes 0.25 MB
    assert_error(client.post("/api/search", files=upload(big)), 413, "at most")
    assert_error(client.post("/api/items", files=upload(big), headers=AUTH), 413)


def test_a_streamed_body_over_the_limit_is_413_before_it_is_read_whole(app):
    """No Content-Length: the guard counts while the body streams in and stops early."""
    head = (b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")
    chunk = b"\0" * (64 * 1024)
    sent = {"chunks": 0}

    async def receive():
        sent["chunks"] += 1
        body = head + chunk if sent["chunks"] == 1 else chunk
        return {"type": "http.request", "body": body, "more_body": sent["chunks"] < 1000}

    answers = []

    async def send(message):
        answers.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/search", "raw_path": b"/api/search", "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"multipart/form-data; boundary=xyz"), (b"transfer-encoding", b"chunked")]}
    asyncio.run(app(scope, receive, send))
    assert answers[0]["status"] == 413
    assert json.loads(b"".join(m.get("body", b"") for m in answers[1:]))["error"]["status"] == 413
    assert sent["chunks"] <= 6  # 0.25 MB is four chunks: it stopped reading right after


def test_too_many_pixels_is_413_before_decoding(client):
    wide = np.zeros((1100, 1000), np.uint8)  # 1.1 MP against a 1 MP limit; compresses to a few KB
    assert_error(client.post("/api/search", files=upload(png_bytes(wide))), 413, "pixels")
    assert_error(client.post("/api/search", files=upload(png_header_only(30000, 30000))), 413, "pixels")


def test_similar_by_item(client, database):
    # an item whose code a smaller id shares (12-bit codes: many do)
    row = next(i for i in range(len(database.ids)) if any(
        (database.codes[j] == database.codes[i]).all() and database.ids[j] < database.ids[i] for j in range(i)))
    item = int(database.ids[row])
    body = client.get(f"/api/items/{item}/similar?k=30").json()
    assert body["query"]["id"] == item and body["query"]["image_url"] == f"/api/items/{item}/image"
    code = database.codes[row]
    assert body["code"] == code.tobytes().hex()
    # Issue 25.18: the item itself first (before, another item at distance 0 with a smaller id led),
    # then the others as a flat scan orders them.
    others = [row for row in expected_results(database, code, 31) if row[0] != item][:29]
    assert [(r["id"], r["distance"]) for r in body["results"]] == [(item, 0)] + others
    tied = [row for row in expected_results(database, code, 1000) if row[1] == 0]
    assert tied[0][0] != item  # the case the issue saw: a smaller id shares the code


@pytest.mark.parametrize("item", ["999999999", "-1", str(2**70)])
def test_unknown_ids_are_404(client, item):
    assert_error(client.get(f"/api/items/{item}/similar"), 404, "no item")
    assert_error(client.get(f"/api/items/{item}/image"), 404)
    assert_error(client.delete(f"/api/items/{item}", headers=AUTH), 404)


def test_ids_that_are_not_integers_are_422(client):
    assert_error(client.get("/api/items/abc/similar"), 422, "item_id")
    assert_error(client.get("/api/items/1.5/image"), 422)
    assert_error(client.get("/api/items/..%2F..%2Fetc%2Fpasswd/image"), 404)  # never a path: no such route


def test_item_image_is_a_png_scaled_up(client, database):
    item = int(database.ids[0])
    r = client.get(f"/api/items/{item}/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)  # 8x8 digits, nearest x12


def test_writes_need_the_token(client):
    data = png_bytes(np.full((8, 8), 200, np.uint8))
    error = assert_error(client.post("/api/items", files=upload(data)), 401, "Bearer")
    assert client.post("/api/items", files=upload(data)).headers["www-authenticate"] == "Bearer"
    assert_error(client.post("/api/items", files=upload(data), headers={"Authorization": "Bearer nope"}), 401, "wrong")
    assert_error(client.post("/api/items", files=upload(data), headers={"Authorization": TOKEN}), 401)
    assert_error(client.delete("/api/items/5"), 401)
    assert_error(client.delete("/api/items/5", headers={"Authorization": "Bearer " + TOKEN + "x"}), 401)
    assert error["code"] == "unauthorized"


def test_the_token_is_checked_before_the_body_is_read(app):
    called = {"receive": 0}

    async def receive():
        called["receive"] += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": True}

    answers = []

    async def send(message):
        answers.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/items", "raw_path": b"/api/items", "query_string": b"", "root_path": "",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"multipart/form-data; boundary=xyz"), (b"content-length", b"999")]}
    asyncio.run(app(scope, receive, send))
    assert answers[0]["status"] == 401 and called["receive"] == 0


def test_a_server_without_a_token_is_read_only(tiny_run, tmp_path):
    app = create_app(tiny_run, store=tmp_path / "ro")
    try:
        client = make_client(app)
        data = png_bytes(np.full((8, 8), 200, np.uint8))
        assert_error(client.post("/api/items", files=upload(data), headers=AUTH), 403, "read-only")
        assert_error(client.delete("/api/items/5", headers=AUTH), 403)
        assert client.get("/api/health").json()["writable"] is False
        assert client.post("/api/search", files=upload(data)).status_code == 200
    finally:
        app.state.service.close()


def test_add_search_and_delete(client, app):
    service = app.state.service
    before = client.get("/api/health").json()["ntotal"]
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (8, 8), dtype=np.uint8) for _ in range(2)]
    r = client.post("/api/items", headers=AUTH, data={"label": "mine"},
                    files=[("image", ("../../etc/passwd", png_bytes(images[0]), "image/png")),
                           ("image", ("b.png", png_bytes(images[1]), "image/png"))])
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    assert len(ids) == 2 and min(ids) >= 1797 and ids[1] == ids[0] + 1
    assert r.json()["items"][0] == {"id": ids[0], "label": "mine", "image_url": f"/api/items/{ids[0]}/image"}
    assert client.get("/api/health").json()["ntotal"] == before + 2
    # No request value becomes a path: the images are named by their ids and nothing else.
    assert all(re.fullmatch(r"\d+\.png", name) for name in os.listdir(service.store.images_dir))
    assert not (service.store.path / "etc").exists()

    # 12-bit codes: hundreds of items share a code and ties go by id, so the new (largest) ids come
    # last in a ball; look in the whole ball through the store, and check the code the API reports.
    answer = client.post("/api/search?k=5&radius=0", files=upload(png_bytes(images[0]))).json()
    code = np.frombuffer(bytes.fromhex(answer["code"]), np.uint8)[None]
    assert ids[0] in [h.id for h in service.store.search(code, 5000, radius=0)]
    similar = client.get(f"/api/items/{ids[0]}/similar?k=200&radius=0").json()
    assert similar["query"]["label"] == "mine" and similar["code"] == answer["code"]  # same code, query or database
    shown = Image.open(io.BytesIO(client.get(f"/api/items/{ids[0]}/image").content))
    assert np.array_equal(np.asarray(shown)[::12, ::12], images[0])  # stored, scaled up x12, nearest

    assert client.delete(f"/api/items/{ids[0]}", headers=AUTH).json() == {"id": ids[0], "deleted": True}
    assert_error(client.get(f"/api/items/{ids[0]}/image"), 404)
    assert_error(client.delete(f"/api/items/{ids[0]}", headers=AUTH), 404)
    assert ids[0] not in [h.id for h in service.store.search(code, 5000, radius=0)]
    assert_error(client.get(f"/api/items/{ids[0]}/similar"), 404)
    # Dataset items can be deleted too.
    assert client.delete("/api/items/0", headers=AUTH).status_code in (200, 404)
    assert client.get("/api/health").json()["ntotal"] <= before + 1


def test_a_bad_file_among_several_adds_nothing(client):
    before = client.get("/api/health").json()["ntotal"]
    good = png_bytes(np.full((8, 8), 9, np.uint8))
    r = client.post("/api/items", headers=AUTH, files=[("image", ("a.png", good, "image/png")),
                                                      ("image", ("b.txt", b"text", "text/plain"))])
    assert_error(r, 415, "image 2 (b.txt)")
    assert_error(client.post("/api/items", headers=AUTH, data={"label": "x" * 201}, files=upload(good)), 422, "label")
    assert_error(client.post("/api/items", headers=AUTH, data={"label": "x"}), 415)
    assert client.get("/api/health").json()["ntotal"] == before


def test_docs_page_and_unknown_routes(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI comes from this server (fastapi-offline), not a CDN: /docs works without internet.
    assert "swagger-ui-bundle.js" in docs.text and "cdn." not in docs.text and "https://" not in docs.text
    script = re.search(r'<script src="([^"]+swagger-ui-bundle\.js)"', docs.text).group(1)
    assert client.get(script).status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/health", "/api/search", "/api/items", "/api/items/{item_id}", "/api/items/{item_id}/similar",
            "/api/items/{item_id}/image"} <= set(schema["paths"])
    ok = schema["paths"]["/api/search"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/SearchResult") and "ErrorBody" in schema["components"]["schemas"]
    assert schema["paths"]["/api/items"]["post"]["security"] == [{"HTTPBearer": []}]
    page = client.get("/")
    assert page.status_code == 200 and "<title>" in page.text and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    assert_error(client.get("/api/nothing"), 404)
    assert_error(client.put("/api/search"), 405)
    assert_error(client.get("/static/../../etc/passwd"), 404)


def test_odd_requests_never_reach_a_500(client, digits_images):
    data = png_bytes(digits_images[1])
    odd = [
        client.post("/api/search?k=1&radius=99999", files=upload(data)),
        client.post("/api/search?k=1&radius=1e9", files=upload(data)),
        client.post("/api/search", content=b"--xyz\r\nnot multipart", headers={"content-type": "multipart/form-data; boundary=xyz"}),
        client.post("/api/search", content=b"", headers={"content-type": "multipart/form-data"}),
        client.post("/api/search", files=upload(png_header_only(0, 0))),
        client.post("/api/search", files=upload(png_header_only(8, 8))),
        client.post("/api/search", files={"image": ("q.png", "text field", "text/plain")}),
        client.post("/api/search", data={"image": "not a file"}, files={"other": ("a", b"a", "text/plain")}),
        client.get("/api/items/99999999999999999999999999/image"),
        client.post("/api/search", content=b"x", headers={"content-type": "multipart/form-data", "content-length": "abc"}),
    ]
    for r in odd:
        assert 200 <= r.status_code < 500, (r.status_code, r.text)
        if r.status_code >= 400:
            assert set(r.json()) == {"error"}


def test_a_new_store_encodes_the_database_when_the_run_has_no_codes(tiny_run, database, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("codes_*.npz", "serve"))
    app = create_app(run, store=tmp_path / "s")
    try:
        store = app.state.service.store
        assert store.ntotal == len(database)
        for i in (0, 100, len(database) - 1):
            assert store.code(int(database.ids[i])).tolist() == [database.codes[i].tolist()]
    finally:
        app.state.service.close()


def test_index_seeds_a_new_store_and_another_index_is_refused(tiny_run, database, tmp_path):
    from dnnh.index import HammingIndex

    index = HammingIndex(12)
    index.add(database.codes[:100], ids=database.ids[:100])
    index.save(tmp_path / "part.dhi")
    app = create_app(tiny_run, store=tmp_path / "s", index=tmp_path / "part.dhi")
    try:
        assert make_client(app).get("/api/health").json()["ntotal"] == 100
    finally:
        app.state.service.close()
    index.save(tmp_path / "other.dhi")
    with pytest.raises(ValueError, match="was started from"):
        create_app(tiny_run, store=tmp_path / "s", index=tmp_path / "other.dhi")
    create_app(tiny_run, store=tmp_path / "s").state.service.close()  # without --index: reopens it


def test_engine_is_passed_to_the_encoder(tiny_run, tmp_path):
    app = create_app(tiny_run, store=tmp_path / "s", engine="torch")
    try:
        assert app.state.service.health()["engine"] == "torch"
    finally:
        app.state.service.close()
    with pytest.raises(ValueError, match="engine"):
        create_app(tiny_run, store=tmp_path / "s", engine="no-such-engine")
    create_app(tiny_run, store=tmp_path / "s").state.service.close()  # the failed start released the store
