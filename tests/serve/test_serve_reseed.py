"""Issue 36.13: `dnnh serve` never serves codes of another model than the one that encodes the uploads.

Before: the store was seeded once and a later start never checked which model made its codes; after a
`--resume` the server held the old codes and encoded uploads with the new model (exact matches came back
at distance 2). Now the store records the weights' digest; a start with other weights is refused in one
line, and `--reseed` encodes the store's items again.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="the serve extra is not installed: pip install -e '.[serve]'")

from support.builders import png_bytes
from support.retrain import other_weights
from support.serving import TOKEN, make_client

from dnnh.cli.main import main
from dnnh.codes import CodeSet
from dnnh.data.digits import load_digits
from dnnh.serve import create_app
from dnnh.serve.journal import StoreError

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def resume_writes_new_weights(run_dir) -> None:
    """What `dnnh train --resume` leaves: the same run, another model.safetensors."""
    other_weights(run_dir, 5)


def distance(client, image: np.ndarray, item: int) -> int:
    """The Hamming distance between an upload of ``image`` and the code the store holds for ``item``
    (codes shared by many items make "first result" the wrong question)."""
    response = client.post("/api/search?k=1", files={"image": ("q.png", png_bytes(image), "image/png")})
    assert response.status_code == 200, response.text
    stored = client.get(f"/api/items/{item}/similar?k=1").json()["code"]
    return bin(int(response.json()["code"], 16) ^ int(stored, 16)).count("1")


def test_a_store_of_other_weights_is_refused_and_reseeded_on_request(tiny_run, tmp_path, capsys):
    run_dir, store = tmp_path / "run", tmp_path / "store"
    shutil.copytree(tiny_run, run_dir)
    images = load_digits().images
    item = int(CodeSet.load(run_dir / "codes_database.npz").ids[7])
    app = create_app(run_dir, store=store, token=TOKEN)
    with make_client(app) as client:
        assert distance(client, images[item], item) == 0
        added = client.post("/api/items", files={"image": ("a.png", png_bytes(images[3]), "image/png")},
                            data={"label": "three"}, headers=AUTH).json()["ids"][0]

    resume_writes_new_weights(run_dir)
    with pytest.raises(StoreError) as refused:
        create_app(run_dir, store=store, token=TOKEN)
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and str(store) in message and "--reseed" in message

    capsys.readouterr()
    app = create_app(run_dir, store=store, token=TOKEN, reseed=True)
    assert "encoded again" in capsys.readouterr().err
    with make_client(app) as client:
        assert distance(client, images[item], item) == 0  # the old codes were at distance > 0 from the upload
        body = client.get("/api/health").json()
        assert body["ntotal"] == len(CodeSet.load(run_dir / "codes_database.npz")) + 1
        kept = client.get(f"/api/items/{added}/similar?k=1").json()["query"]
        assert kept["id"] == added and kept["label"] == "three"
    create_app(run_dir, store=store).state.service.close()  # reseeded: the new weights are the store's now


def test_the_run_codes_of_other_weights_are_not_what_a_new_store_is_seeded_with(tiny_run, tmp_path, capsys):
    """A new store seeds from codes_database.npz only when the model served made it; else it encodes
    the database now and says so. Before: seeded from whatever codes file the run held."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    resume_writes_new_weights(run_dir)  # the run's codes are of the old weights now
    stale = CodeSet.load(run_dir / "codes_database.npz")
    images = load_digits().images
    item = int(stale.ids[7])
    capsys.readouterr()
    app = create_app(run_dir, store=tmp_path / "store")
    assert "codes_database.npz" in capsys.readouterr().err
    with make_client(app) as client:
        assert distance(client, images[item], item) == 0



def test_serve_help_says_what_reseed_does(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--reseed" in text and "encode the store's items again with the run's model" in text
