"""MilvusIndex (on Milvus Lite) answers what HammingIndex answers: same distances, right ids.

Ids may differ from HammingIndex's only among equal distances at the end of a k-NN row (Milvus
picks which of several equidistant items fill the last places); every returned id's distance is
checked against a brute-force distance computed from the codes, without any index code.
Milvus Lite starts once for the module (one file, a collection per test); the reopen tests start
their own, because closing the last index on a file stops its server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("pymilvus")
with warnings.catch_warnings():  # milvus-lite 2.5 imports pkg_resources, which warns it is deprecated
    warnings.simplefilter("ignore")
    pytest.importorskip("milvus_lite")

from dnnh.codes import pack_bits  # noqa: E402
from dnnh.index import HammingIndex, MilvusIndex  # noqa: E402
from support.problems import clustered_bits, random_bits  # noqa: E402
from dnnh.testing.reference import hamming_matrix as distances  # noqa: E402

NBITS = [12, 32, 64]


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory: pytest.TempPathFactory):
    """One Milvus Lite server for the module, kept up by an index that stays open."""
    uri = str(tmp_path_factory.mktemp("milvus") / "index.db")
    t0 = time.perf_counter()
    keeper = MilvusIndex(8, uri=uri, collection="keeper")
    print(f"\nMilvus Lite: started and opened in {time.perf_counter() - t0:.2f} s")
    yield uri
    keeper.close()


_names = iter(range(10**6))


@pytest.fixture()
def open_index(lite_uri: str):
    made: list[MilvusIndex] = []

    def make(nbits: int) -> MilvusIndex:
        made.append(MilvusIndex(nbits, uri=lite_uri, collection=f"c{next(_names)}"))
        return made[-1]

    yield make
    for index in made:
        index.close()


class Mirror:
    """A MilvusIndex and a HammingIndex fed the same calls, plus the items (bits, ids) to check against."""

    def __init__(self, milvus: MilvusIndex) -> None:
        self.milvus = milvus
        self.ref = HammingIndex(milvus.nbits, kernel="numpy", num_threads=1)
        self.bits = np.zeros((0, milvus.nbits), np.uint8)
        self.ids = np.zeros(0, np.int64)

    def add(self, bits: np.ndarray, ids: np.ndarray | None = None) -> None:
        before = self.ref.ids
        self.milvus.add(pack_bits(bits), ids=ids)
        self.ref.add(pack_bits(bits), ids=ids)
        new = self.ref.ids[len(before):]
        self.bits = np.concatenate([self.bits, bits])
        self.ids = np.concatenate([self.ids, new])

    def remove(self, ids: np.ndarray) -> None:
        assert self.milvus.remove(ids) == self.ref.remove(ids)
        keep = ~np.isin(self.ids, ids)
        self.bits, self.ids = self.bits[keep], self.ids[keep]

    def check(self, q_bits: np.ndarray, ks: tuple[int, ...], radii: tuple[int, ...]) -> None:
        assert self.milvus.ntotal == self.ref.ntotal == len(self.ids)
        q = pack_bits(q_bits)
        dist = distances(self.bits, q_bits) if len(self.ids) else np.zeros((len(q), 0), np.int64)
        for k in ks:
            got_d, got_i = self.milvus.search(q, k)
            want_d, want_i = self.ref.search(q, k)
            assert got_d.dtype == np.int32 and got_i.dtype == np.int64 and got_d.shape == got_i.shape == (len(q), k)
            np.testing.assert_array_equal(got_d, want_d, err_msg=f"k={k}")
            for row in range(len(q)):
                self._check_row(dist[row], got_d[row], got_i[row], want_i[row], complete=False)
        for radius in radii:
            lims, got_d, got_i = self.milvus.range_search(q, radius)
            want_lims, want_d, want_i = self.ref.range_search(q, radius)
            assert lims.dtype == np.int64 and got_d.dtype == np.int32 and got_i.dtype == np.int64
            np.testing.assert_array_equal(lims, want_lims, err_msg=f"radius={radius}")
            np.testing.assert_array_equal(got_d, want_d, err_msg=f"radius={radius}")
            for row in range(len(q)):
                s = slice(lims[row], lims[row + 1])
                self._check_row(dist[row], got_d[s], got_i[s], want_i[s], complete=True)
                assert (got_d[s] <= radius).all()

    def _check_row(self, dist: np.ndarray, d: np.ndarray, i: np.ndarray, want_i: np.ndarray, complete: bool) -> None:
        n = int((i >= 0).sum())  # found items first, then padding
        assert (i[n:] == -1).all() and (d[n:] == -1).all() and (d[:n] >= 0).all()
        d, i, want_i = d[:n], i[:n], want_i[:n]
        # ordered by distance, then id
        assert all((a, b) <= (c, e) for a, b, c, e in zip(d[:-1], i[:-1], d[1:], i[1:])), (d, i)
        # each returned id is an item at exactly the returned distance (brute force from the codes)
        for dd, ii in zip(d, i):
            assert dd in dist[self.ids == ii], f"id {ii} is not at distance {dd}"
        if complete or not len(d):
            np.testing.assert_array_equal(np.sort(i), np.sort(want_i))
        else:  # items strictly nearer than the row's last distance are all there; the rest tie
            last = d[-1]
            np.testing.assert_array_equal(np.sort(i[d < last]), np.sort(want_i[d < last]))
            assert np.isin(i[d == last], self.ids[dist == last]).all()


def _queries(rng: np.random.Generator, db: np.ndarray, nbits: int) -> np.ndarray:
    return np.concatenate([random_bits(rng, 10, nbits), db[:5], db[:1] ^ 1])  # on, near and far from items


@pytest.mark.parametrize("nbits", NBITS)
def test_knn_and_range_match_hamming_index(open_index, nbits: int) -> None:
    rng = np.random.default_rng(nbits)
    db = np.concatenate([random_bits(rng, 1500, nbits), clustered_bits(rng, 500, nbits)])  # ties aplenty
    mirror = Mirror(open_index(nbits))
    mirror.add(db)
    q = _queries(rng, db, nbits)
    mirror.check(q, ks=(1, 10, 2100), radii=(0, 2, nbits // 4, nbits))  # k > ntotal pads with -1


@pytest.mark.parametrize("nbits", NBITS)
def test_after_adds_and_removes(open_index, nbits: int) -> None:
    rng = np.random.default_rng(100 + nbits)
    mirror = Mirror(open_index(nbits))
    mirror.add(random_bits(rng, 400, nbits))                                 # ids 0..399
    repeated = rng.integers(1000, 1100, 300)
    repeated[0] = 1099
    mirror.add(clustered_bits(rng, 300, nbits), ids=repeated)                # repeated ids
    mirror.remove(np.arange(0, 400, 3))
    mirror.remove(np.array([1099, 1050, 5000]))                             # 5000 was never added
    mirror.remove(np.array([399]))                                          # the largest default id
    mirror.add(random_bits(rng, 50, nbits))                                 # continue after 1099
    assert mirror.ids.max() == 1099 + 50
    q = _queries(rng, mirror.bits, nbits)
    mirror.check(q, ks=(1, 7, 1000), radii=(1, nbits // 3))
    assert mirror.milvus.remove(np.zeros(0, np.int64)) == 0
    mirror.milvus.reset()
    assert mirror.milvus.ntotal == 0
    mirror.milvus.add(pack_bits(random_bits(rng, 3, nbits)))  # default ids start again from 0
    assert sorted(mirror.milvus.range_search(pack_bits(random_bits(rng, 1, nbits)), nbits)[2].tolist()) == [0, 1, 2]


def test_bit_order_and_padding_bits(open_index) -> None:
    """Single-bit codes: each of the 12 bits (and the 4 padding bits Milvus stores) counts exactly once."""
    index = open_index(12)
    assert index.dim == 16
    eye = np.eye(12, dtype=np.uint8)
    index.add(pack_bits(eye))
    d, i = index.search(pack_bits(np.zeros((1, 12), np.uint8)), 12)
    assert d.tolist() == [[1] * 12] and i.tolist() == [list(range(12))]
    d, i = index.search(pack_bits(eye), 2)
    assert d[:, 0].tolist() == [0] * 12 and i[:, 0].tolist() == list(range(12)) and (d[:, 1] == 2).all()
    lims, d, i = index.range_search(pack_bits(eye[[11]] | eye[[0]]), 1)
    assert lims.tolist() == [0, 2] and d.tolist() == [1, 1] and i.tolist() == [0, 11]


def test_range_search_is_complete_beyond_milvus_limit(open_index) -> None:
    """A query whose answer fills Milvus's per-query limit is split until nothing is cut off."""
    rng = np.random.default_rng(7)
    index = open_index(32)
    mirror = Mirror(index)
    mirror.add(clustered_bits(rng, 600, 32, centres=2, flip=0.02))  # hundreds of copies of 2 codes
    index.max_topk = 16                                             # stands in for Milvus's 16384
    mirror.check(_queries(rng, mirror.bits, 32), ks=(16,), radii=(0, 1, 3, 32))
    with pytest.raises(ValueError, match=r"k=17 is above Milvus's top-k limit \(16\)"):
        index.search(pack_bits(mirror.bits[:1]), 17)


def test_validation_mirrors_hamming_index(open_index) -> None:
    index = open_index(12)
    ref = HammingIndex(12)
    for ix in (index, ref):
        ix.add(pack_bits(np.eye(12, dtype=np.uint8)))
    zero = pack_bits(np.zeros((1, 12), np.uint8))
    bad_calls = [
        lambda ix: ix.add(np.zeros((3, 2), dtype=np.int64)),
        lambda ix: ix.add([[0, 0]]),
        lambda ix: ix.add(np.zeros((4, 3), dtype=np.uint8)),
        lambda ix: ix.add(np.array([[0, 0b0001_0000]], dtype=np.uint8)),   # bit 12 of a 12-bit code
        lambda ix: ix.search(np.zeros((1, 2), dtype=np.float32), 1),
        lambda ix: ix.search(np.array([[0, 0b0001_0000]], dtype=np.uint8), 1),
        lambda ix: ix.range_search(np.zeros(2, dtype=np.uint8), 1),
        lambda ix: ix.search(zero, 0),
        lambda ix: ix.search(zero, True),
        lambda ix: ix.range_search(zero, -1),
        lambda ix: ix.range_search(zero, 2.0),
        lambda ix: ix.add(pack_bits(np.zeros((2, 12), np.uint8)), ids=np.arange(3)),
        lambda ix: ix.add(pack_bits(np.zeros((2, 12), np.uint8)), ids=np.array([1.0, 2.0])),
        lambda ix: ix.add(pack_bits(np.zeros((2, 12), np.uint8)), ids=np.array([-1, 3])),
        lambda ix: ix.remove(np.array([0.5])),
    ]
    for call in bad_calls:
        with pytest.raises((TypeError, ValueError)) as want:
            call(ref)
        with pytest.raises(want.type) as got:
            call(index)
        assert str(got.value) == str(want.value)
    assert index.ntotal == 12
    with pytest.raises(ValueError, match=r"k=16385 is above Milvus's top-k limit \(16384\)"):
        index.search(zero, 16385)
    lims, d, i = index.range_search(zero, 1000)  # radius beyond nbits: everything
    assert lims.tolist() == [0, 12] and (d == 1).all() and i.tolist() == list(range(12))
    # no queries, and an empty index
    d, i = index.search(np.zeros((0, 2), np.uint8), 3)
    assert d.shape == i.shape == (0, 3) and d.dtype == np.int32 and i.dtype == np.int64
    lims, d, i = index.range_search(np.zeros((0, 2), np.uint8), 3)
    assert lims.tolist() == [0] and d.dtype == np.int32 and i.dtype == np.int64
    empty = open_index(12)
    d, i = empty.search(zero, 2)
    assert d.tolist() == [[-1, -1]] and i.tolist() == [[-1, -1]]
    lims, d, i = empty.range_search(zero, 12)
    assert lims.tolist() == [0, 0] and len(d) == len(i) == 0


def test_default_ids_stop_at_the_largest_int64_id(open_index) -> None:
    top = 2**63 - 1
    index = open_index(16)
    codes = pack_bits(np.eye(16, dtype=np.uint8)[:3])
    index.add(codes[:1], ids=[top])
    with pytest.raises(ValueError, match=r"default ids.*\(9223372036854775807\) past 2\*\*63-1.*pass ids="):
        index.add(codes[1:])
    index.add(codes[1:], ids=[5, 6])  # explicit ids still work
    d, i = index.search(codes[:1], 3)
    assert d.tolist() == [[0, 2, 2]] and i.tolist() == [[top, 5, 6]]
    assert index.remove(np.array([top], dtype=np.uint64)) == 1
    with pytest.raises(ValueError, match="default ids"):  # a removed id still counts as held
        index.add(codes[1:])
    index.reset()
    index.add(codes)
    assert sorted(index.range_search(codes[:1], 16)[2].tolist()) == [0, 1, 2]


def test_bad_collection_name(lite_uri: str) -> None:
    with pytest.raises(ValueError, match="collection must be a Milvus collection name"):
        MilvusIndex(8, uri=lite_uri, collection="no-dashes")


def test_reopen_sees_the_data_and_checks_nbits(tmp_path) -> None:
    """Close (this stops Milvus Lite: the file is this index's alone) and open again from disk."""
    uri = str(tmp_path / "reopen.db")
    rng = np.random.default_rng(3)
    mirror = Mirror(MilvusIndex(12, uri=uri, collection="codes"))
    mirror.add(random_bits(rng, 300, 12))
    mirror.add(clustered_bits(rng, 200, 12), ids=rng.integers(500, 700, 200))
    mirror.remove(np.arange(0, 300, 4))
    mirror.remove(np.array([mirror.ids.max()]))
    mirror.milvus.close()
    assert "closed" in repr(mirror.milvus)

    t0 = time.perf_counter()
    mirror.milvus = MilvusIndex(12, uri=uri, collection="codes")
    print(f"\nMilvus Lite: restarted and reopened in {time.perf_counter() - t0:.2f} s")
    q = _queries(rng, mirror.bits, 12)
    mirror.check(q, ks=(1, 10), radii=(0, 2, 5))
    mirror.add(random_bits(rng, 20, 12))  # default ids continue after the largest ever held
    mirror.check(q, ks=(5,), radii=(3,))
    mirror.milvus.close()

    with pytest.raises(ValueError, match=r"holds 12-bit codes; open it with nbits=12, not 16"):
        MilvusIndex(16, uri=uri, collection="codes")  # the same Milvus dim (16), still refused
    with pytest.raises(ValueError, match=r"holds 12-bit codes; open it with nbits=12, not 64"):
        MilvusIndex(64, uri=uri, collection="codes")
    with MilvusIndex(12, uri=uri, collection="codes") as again:  # a refused open leaves nothing behind
        assert again.ntotal == len(mirror.ids)


def test_server_uri(tmp_path) -> None:
    """An http:// URI goes to a Milvus server: here Milvus Lite serving TCP on a free local port."""
    from milvus_lite.server import Server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(str(tmp_path / "served.db"), f"127.0.0.1:{port}")
    assert server.init() and server.start()
    try:
        rng = np.random.default_rng(5)
        with MilvusIndex(32, uri=f"http://127.0.0.1:{port}", collection="served") as index:
            mirror = Mirror(index)
            mirror.add(random_bits(rng, 200, 32))
            mirror.check(_queries(rng, mirror.bits, 32), ks=(3,), radii=(8,))
    finally:
        server.stop()


def test_lazy_import_and_missing_extra_message() -> None:
    code = """
import sys
import dnnh.index
assert 'pymilvus' not in sys.modules
from dnnh.index import MilvusIndex
assert 'pymilvus' not in sys.modules
sys.modules['pymilvus'] = None  # as if it were not installed
try:
    MilvusIndex(8, uri='x.db')
except ImportError as exc:
    assert str(exc) == "MilvusIndex needs pymilvus and milvus-lite: pip install 'dnnh[milvus]'", exc
else:
    raise AssertionError('no ImportError')
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------- issue 25.12: builds once, one line each


def test_a_build_into_a_full_collection_is_refused_or_replaced(tmp_path) -> None:
    """Before: building the same codes twice left every item twice (and a build cut short, a part extra)."""
    uri = str(tmp_path / "build.db")
    codes = pack_bits(random_bits(np.random.default_rng(7), 50, 16))
    with MilvusIndex.for_build(16, uri=uri, collection="built") as index:
        index.add(codes)
        with pytest.raises(ValueError, match="already holds 50 items .* pass --replace"):
            MilvusIndex.for_build(16, uri=uri, collection="built")
        with MilvusIndex.for_build(16, uri=uri, collection="built", replace=True) as again:
            again.add(codes)
            assert again.ntotal == 50


def test_a_second_process_on_a_lite_file_is_one_line(tmp_path) -> None:
    """Before: the second process got 'internal error' (a RuntimeError from Milvus Lite)."""
    uri = str(tmp_path / "held.db")
    with MilvusIndex(8, uri=uri, collection="held"):
        code = f"from dnnh.index import MilvusIndex\nMilvusIndex(8, uri={uri!r}, collection='held')\n"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "LockedError" in done.stderr
    assert "Milvus Lite file" in done.stderr and "another dnnh process" in done.stderr


@pytest.mark.parametrize("uri, error, message", [
    ("http://127.0.0.1:1", ConnectionError, "nothing answers on 127.0.0.1:1"),
    ("http://no-such-host.invalid:19530", ConnectionError, "does not resolve"),
    ("bogus://x:1", ValueError, "neither a Milvus Lite file"),
    ("DIR", ValueError, "is a folder; give a file path ending in .db"),
])
def test_bad_addresses_are_one_line_each(tmp_path, uri, error, message) -> None:
    """Before: a closed port, a bad host, a folder as the file and an unknown scheme were internal errors."""
    if uri == "DIR":
        uri = str(tmp_path / "folder.db")
        (tmp_path / "folder.db").mkdir()
    with pytest.raises(error, match=message):
        MilvusIndex(8, uri=uri, collection="x", timeout=3)


def test_index_build_twice_is_refused_and_replace_rebuilds(tmp_path, capsys) -> None:
    """Before: `dnnh index build --backend milvus` run twice left every item twice."""
    from dnnh.cli.main import main
    from dnnh.codes import CodeSet

    bits = random_bits(np.random.default_rng(8), 40, 16)
    CodeSet.from_bits(bits).save(tmp_path / "c.npz")
    build = ["index", "build", "--codes", str(tmp_path / "c.npz"), "--backend", "milvus",
             "--uri", str(tmp_path / "cli.db"), "--collection", "twice"]
    assert main(build) == 0
    assert main(build) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds 40 items" in err and "--replace" in err
    assert main([*build, "--replace"]) == 0
    with MilvusIndex(16, uri=str(tmp_path / "cli.db"), collection="twice") as index:
        assert index.ntotal == 40
