"""The service's store on its own: durable writes, replay, torn logs, snapshots, one owner, consistent reads."""

from __future__ import annotations

import errno
import json
import os
import threading

import numpy as np
import pytest

from dnnh.codes import hamming_distances, pack_bits
from dnnh.locks import LockedError
from dnnh.index import HammingIndex
from dnnh.serve.journal import StoreWriteError, read_records
from dnnh.serve.store import LOG, STATE, Store, StoreError

NBITS = 16


def codes_of(rng, n):
    return pack_bits(rng.integers(0, 2, (n, NBITS), dtype=np.uint8))


def seeded(codes, ids):
    return lambda: (codes, np.asarray(ids, np.int64))


def open_store(path, codes=None, ids=None, **kwargs):
    codes = np.zeros((0, 2), np.uint8) if codes is None else codes
    ids = np.arange(len(codes)) if ids is None else ids
    kwargs.setdefault("background", False)
    return Store.open(path, nbits=NBITS, seed=seeded(codes, ids), first_id=1000, **kwargs)


def crash(store: Store) -> None:
    """What kill -9 leaves: the log as written, no final snapshot, the lock gone."""
    store._journal.close()
    store._lock.release()
    store._lock = None


def brute(codes_by_id: dict[int, np.ndarray], query: np.ndarray, k: int, radius=None):
    ids = np.array(sorted(codes_by_id), np.int64)
    if not len(ids):
        return []
    dist = hamming_distances(query, np.stack([codes_by_id[int(i)] for i in ids]))[0]
    order = np.lexsort((ids, dist))
    out = [(int(ids[i]), int(dist[i])) for i in order if radius is None or dist[i] <= radius]
    return out[:k]


def test_new_store_searches_like_a_flat_scan_ordered_by_distance_then_id(tmp_path):
    rng = np.random.default_rng(0)
    codes = codes_of(rng, 300)
    ids = rng.permutation(300) * 3  # not in insertion order: the store sorts them
    with open_store(tmp_path / "s", codes, ids) as store:
        truth = {int(i): c for i, c in zip(ids, codes)}
        for q in codes_of(rng, 5):
            q = q[None]
            assert [(h.id, h.distance) for h in store.search(q, 17)] == brute(truth, q, 17)
            assert [(h.id, h.distance) for h in store.search(q, 1000, radius=5)] == brute(truth, q, 1000, 5)
        assert store.ntotal == 300 and store.next_id == 1000
        assert store.code(int(ids[4])).tolist() == [codes[4].tolist()]
        assert store.code(1) is None and store.code(-1) is None and store.code(2**70) is None


def test_acknowledged_writes_survive_a_crash_and_replay_once(tmp_path):
    rng = np.random.default_rng(1)
    codes = codes_of(rng, 50)
    store = open_store(tmp_path / "s", codes)
    added = store.add(codes_of(rng, 3), [b"png-a", b"png-b", b"png-c"], label="cats")
    assert added == [1000, 1001, 1002]
    assert store.delete(7) and store.delete(1001)
    assert not store.delete(7) and not store.delete(123456)
    expected = {h.id: h.distance for h in store.search(codes[:1], 100)}
    crash(store)

    store = open_store(tmp_path / "s", codes)
    assert store.replayed == 3
    assert {h.id: h.distance for h in store.search(codes[:1], 100)} == expected
    assert store.ntotal == 50 - 1 + 3 - 1 and store.next_id == 1003
    assert store.label(1000) == "cats" and store.is_added(1002) and not store.is_added(1001)
    assert store.image_path(1000).read_bytes() == b"png-a" and not store.image_path(1001).exists()
    # Replay took a snapshot and emptied the log: a second crash replays nothing, loses nothing.
    assert (tmp_path / "s" / LOG).stat().st_size == 0
    crash(store)
    store = open_store(tmp_path / "s", codes)
    assert store.replayed == 0 and {h.id: h.distance for h in store.search(codes[:1], 100)} == expected
    assert store.add(codes_of(rng, 1), [b"png-d"]) == [1003]  # ids are never reused
    store.close()


def test_a_torn_last_record_is_cut_off_and_a_damaged_middle_one_refused(tmp_path):
    rng = np.random.default_rng(2)
    store = open_store(tmp_path / "s", codes_of(rng, 10))
    store.add(codes_of(rng, 1), [b"x"])
    crash(store)
    log = tmp_path / "s" / LOG
    good = log.read_bytes()
    log.write_bytes(good + good[: len(good) // 2])  # a second record cut mid-write by the crash
    store = open_store(tmp_path / "s", codes_of(rng, 10))
    assert store.replayed == 1 and store.ntotal == 11
    crash(store)

    store = open_store(tmp_path / "s", codes_of(rng, 10))
    store.add(codes_of(rng, 1), [b"y"])
    store.add(codes_of(rng, 1), [b"z"])
    crash(store)
    lines = log.read_bytes().split(b"\n")
    lines[0] = lines[0][:-3] + b"xyz"  # a flipped byte in the first of two records
    log.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError, match="damaged at record 1"):
        open_store(tmp_path / "s", codes_of(rng, 10))


def test_a_crash_inside_a_snapshot_loses_nothing_and_adds_nothing_twice(tmp_path):
    rng = np.random.default_rng(3)
    codes = codes_of(rng, 20)
    store = open_store(tmp_path / "s", codes)
    store.add(codes_of(rng, 2), [b"a", b"b"])
    store.delete(3)
    log = tmp_path / "s" / LOG
    before = log.read_bytes()
    store.snapshot()
    expected = [(h.id, h.distance) for h in store.search(codes[:1], 50)]
    crash(store)
    # Crash after state.json was replaced but before the log was emptied: replay skips what it holds.
    log.write_bytes(before)
    # And an index file written by a snapshot whose state.json never landed: ignored, removed.
    (tmp_path / "s" / "index-000000000099.dhi").write_bytes(b"half a snapshot")
    store = open_store(tmp_path / "s", codes)
    assert store.replayed == 0
    assert [(h.id, h.distance) for h in store.search(codes[:1], 50)] == expected and store.ntotal == 21
    assert not (tmp_path / "s" / "index-000000000099.dhi").exists()
    store.close()


def test_orphan_images_of_unlogged_adds_are_removed(tmp_path):
    store = open_store(tmp_path / "s")
    store.add(np.zeros((1, 2), np.uint8), [b"kept"])
    crash(store)
    (tmp_path / "s" / "images" / "1001.png").write_bytes(b"written, never logged")
    store = open_store(tmp_path / "s")
    assert sorted(os.listdir(tmp_path / "s" / "images")) == ["1000.png"]
    store.close()


def test_one_owner_per_store_and_the_second_is_told_the_pid(tmp_path):
    store = open_store(tmp_path / "s")
    with pytest.raises(LockedError, match=rf"PID {os.getpid()}"):
        open_store(tmp_path / "s")
    store.close()
    open_store(tmp_path / "s").close()  # the lock goes with its owner


def test_a_store_refuses_other_codes_and_another_seed(tmp_path):
    open_store(tmp_path / "s", seed_name="/a.dhi").close()
    with pytest.raises(StoreError, match="32-bit"):
        Store.open(tmp_path / "s", nbits=32, seed=seeded(np.zeros((0, 4), np.uint8), []), background=False)
    with pytest.raises(StoreError, match="was started from /a.dhi"):
        open_store(tmp_path / "s", seed_name="/b.dhi")
    open_store(tmp_path / "s", seed_name="/a.dhi").close()
    open_store(tmp_path / "s").close()  # no --index: reopen whatever it holds
    state = json.loads((tmp_path / "s" / STATE).read_text())
    assert state["format"] == "dnnh-serve-store/1" and state["nbits"] == NBITS


def test_random_adds_and_deletes_match_a_reference_through_snapshots(tmp_path):
    rng = np.random.default_rng(4)
    base = codes_of(rng, 200)
    truth = {i: c for i, c in enumerate(base)}
    store = open_store(tmp_path / "s", base, snapshot_records=7)
    for step in range(60):
        if rng.random() < 0.6:
            new = codes_of(rng, int(rng.integers(1, 4)))
            for i, c in zip(store.add(new, [b"p"] * len(new)), new):
                truth[i] = c
        else:
            victim = int(rng.choice(sorted(truth)))
            assert store.delete(victim)
            del truth[victim]
        if step % 20 == 19:
            store.snapshot()
        q = codes_of(rng, 1)
        assert [(h.id, h.distance) for h in store.search(q, 25)] == brute(truth, q, 25)
        assert [(h.id, h.distance) for h in store.search(q, 500, radius=4)] == brute(truth, q, 500, 4)
    crash(store)
    store = open_store(tmp_path / "s", base)
    q = codes_of(rng, 1)
    assert [(h.id, h.distance) for h in store.search(q, 300)] == brute(truth, q, 300)
    store.close()


def test_the_background_snapshot_folds_the_log(tmp_path):
    rng = np.random.default_rng(5)
    store = open_store(tmp_path / "s", codes_of(rng, 30), background=True, snapshot_records=4)
    for _ in range(4):
        store.add(codes_of(rng, 1), [b"p"])
    for _ in range(200):
        if (tmp_path / "s" / LOG).stat().st_size == 0:
            break
        threading.Event().wait(0.01)
    assert (tmp_path / "s" / LOG).stat().st_size == 0
    assert json.loads((tmp_path / "s" / STATE).read_text())["log_seq"] == 4
    store.close()


def test_readers_never_see_half_of_a_write(tmp_path):
    """Each add writes two items with one code; a search must always find an even number of them
    (snapshots swap the index in between)."""
    rng = np.random.default_rng(6)
    store = open_store(tmp_path / "s", codes_of(rng, 500), background=True, snapshot_records=5)
    marker = np.full((1, 2), 0xAB, np.uint8)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                hits = store.search(marker, 1000, radius=0)
                seen.append(sum(1 for h in hits if h.id >= 1000))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(16):
        store.add(np.repeat(marker, 2, axis=0), [b"a", b"b"])
    stop.set()
    for t in threads:
        t.join()
    store.close()
    assert not errors
    assert seen and all(n % 2 == 0 for n in seen) and max(seen) > 0


# ---------------------------------------------------------------------- issue 25, items 1-5: nothing lost


def test_a_bit_flip_in_the_last_logged_record_stops_the_start_and_cuts_nothing(tmp_path):
    """Before: the damaged last record was taken for a torn append, the add dropped, the log cut to 0 bytes."""
    store = open_store(tmp_path / "s")
    store.add(np.zeros((1, 2), np.uint8), [b"a"])
    store.add(np.ones((1, 2), np.uint8), [b"b"])
    crash(store)
    log = tmp_path / "s" / LOG
    lines = log.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"seq":2', b'"seq":7')
    log.write_bytes(b"\n".join(lines))
    damaged = log.read_bytes()
    with pytest.raises(StoreError, match=r"damaged at record 2 \(of 2, the last\)"):
        open_store(tmp_path / "s")
    assert log.read_bytes() == damaged and sorted(os.listdir(tmp_path / "s" / "images")) == ["1000.png", "1001.png"]


def test_a_store_that_lost_its_state_json_is_refused_and_nothing_is_removed(tmp_path):
    """Before: the server started over, dropping five acknowledged items and deleting their images."""
    store = open_store(tmp_path / "s")
    for i in range(5):
        store.add(np.full((1, 2), i, np.uint8), [b"png"])
    crash(store)
    (tmp_path / "s" / STATE).unlink()
    before = sorted(p.name for p in (tmp_path / "s").rglob("*"))
    with pytest.raises(StoreError, match=r"lost its state\.json but holds a log of .* and added images"):
        open_store(tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").rglob("*")) == before


def test_a_folder_dnnh_did_not_make_is_refused_untouched(tmp_path):
    """Before: --store at a folder holding images/0.png and index-backup.dhi deleted both."""
    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "0.png").write_bytes(b"my photo")
    (folder / "index-backup.dhi").write_bytes(b"my backup")
    with pytest.raises(StoreError, match="is not a dnnh store.*never writes into or removes files it did not make"):
        open_store(folder)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == ["images", "images/0.png",
                                                                              "index-backup.dhi"]


def test_a_store_whose_creation_was_cut_short_is_made_again(tmp_path):
    """Only the marker (and the first snapshot) of an interrupted creation: nothing acknowledged, start over."""
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / ".dnnh-store").write_text("{}")
    (folder / "index-000000000000.dhi").write_bytes(b"half")
    rng = np.random.default_rng(9)
    with open_store(folder, codes_of(rng, 4)) as store:
        assert store.ntotal == 4


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["image", "log"])
def test_a_full_disk_refuses_the_add_whole_and_no_number_is_reused(tmp_path, monkeypatch, where):
    """Before: adds answered 500, sequence numbers were reused in the log, and after a restart
    unacknowledged items appeared under other items' labels."""
    from dnnh.serve import journal as journal_module
    from dnnh.serve import store as store_module

    store = open_store(tmp_path / "s")
    store.add(np.zeros((1, 2), np.uint8), [b"first"], label="kept")
    real_write, real_line = store_module.write_durably, journal_module.write_line
    if where == "image":
        monkeypatch.setattr(store_module, "write_durably", lambda path, data: (real_write(path, data[:1]), _enospc()))
    else:
        monkeypatch.setattr(journal_module, "write_line", lambda fd, data: (os.write(fd, data[:9]), _enospc()))
    for _ in range(3):
        with pytest.raises(StoreWriteError, match=r"was not stored.*disk is full\); free some space") as info:
            store.add(np.full((2, 2), 7, np.uint8), [b"lost", b"lost"], label="lost")
        assert info.value.status == 507
    monkeypatch.setattr(store_module, "write_durably", real_write)
    monkeypatch.setattr(journal_module, "write_line", real_line)
    assert sorted(os.listdir(tmp_path / "s" / "images")) == ["1000.png"]  # the failed adds left no image
    later = store.add(np.ones((1, 2), np.uint8), [b"later"], label="later")
    assert later == [1007]  # the failed adds' ids are never given again
    crash(store)
    seqs = [r["seq"] for r in read_records(tmp_path / "s" / LOG)]
    assert seqs == sorted(set(seqs)) == [1, 5]  # nothing of the failed adds, no number twice
    store = open_store(tmp_path / "s")
    assert store.ntotal == 2 and store.label(1000) == "kept" and store.label(1007) == "later"
    assert store.search(np.full((1, 2), 7, np.uint8), 5, radius=0) == []
    store.close()


def test_a_final_snapshot_that_cannot_be_written_is_one_line_and_loses_nothing(tmp_path, monkeypatch):
    """Before: shutdown with a full disk ended in a traceback."""
    store = open_store(tmp_path / "s")
    ids = store.add(np.full((3, 2), 5, np.uint8), [b"a", b"b", b"c"], label="x")
    monkeypatch.setattr(HammingIndex, "save", _enospc)
    store.close()  # does not raise
    assert store.close_error is not None and "\n" not in store.close_error
    assert "not written" in store.close_error and "nothing is lost" in store.close_error
    monkeypatch.undo()
    store = open_store(tmp_path / "s")
    assert store.replayed == 1 and [store.label(i) for i in ids] == ["x"] * 3
    store.close()


@pytest.mark.parametrize("field, value, message", [
    ("labels", ["a", "b"], "'labels' must map item ids"),
    ("next_id", "12", "'next_id' must be an integer"),
    ("log_seq", -1, "'log_seq' must be an integer"),
    ("index", "../../etc/passwd", "names an index outside the store"),
    ("seed", 5, "'seed' must be a path"),
])
def test_an_edited_state_json_is_a_one_line_refusal(tmp_path, field, value, message):
    """Before: labels as a list gave an internal error (AttributeError)."""
    open_store(tmp_path / "s").close()
    path = tmp_path / "s" / STATE
    state = json.loads(path.read_text())
    state[field] = value
    path.write_text(json.dumps(state))
    with pytest.raises(StoreError, match=message):
        open_store(tmp_path / "s")


def test_the_store_records_the_weights_that_made_its_codes_and_refuses_other_weights(tmp_path):
    """Issue 36.13. Before: a store was seeded once and never asked which model made its codes; after a
    --resume the server searched the old codes with uploads encoded by the new model."""
    codes = codes_of(np.random.default_rng(2), 20)
    with open_store(tmp_path / "s", codes, weights="aaaa") as store:
        store.add(codes_of(np.random.default_rng(3), 1), [b"png"])
    assert json.loads((tmp_path / "s" / STATE).read_text())["weights"] == "aaaa"
    open_store(tmp_path / "s", codes, weights="aaaa").close()  # the same weights: reopened
    with pytest.raises(StoreError) as refused:
        open_store(tmp_path / "s", codes, weights="bbbb")
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and "weights aaaa" in message and "bbbb" in message and "--reseed" in message
    open_store(tmp_path / "s", codes, weights="aaaa").close()  # the refusal released the lock, changed nothing


def test_a_store_that_does_not_record_its_weights_is_refused_when_they_are_known(tmp_path):
    """A store made before it recorded its weights cannot say they are the model's: refused, --reseed named."""
    codes = codes_of(np.random.default_rng(4), 5)
    open_store(tmp_path / "s", codes).close()  # no weights given: none recorded, none checked
    open_store(tmp_path / "s", codes).close()
    with pytest.raises(StoreError, match="does not record which weights made its codes.*--reseed"):
        open_store(tmp_path / "s", codes, weights="aaaa")


def test_reseed_encodes_every_alive_item_again_keeping_ids_labels_and_deletes(tmp_path):
    """Issue 36.13: --reseed. The run's database items come from the new seed, added items are encoded
    again from their stored images; deleted items stay deleted, ids and labels are kept."""
    rng = np.random.default_rng(5)
    old, new = codes_of(rng, 30), codes_of(rng, 30)
    store = open_store(tmp_path / "s", old, weights="aaaa")
    added = store.add(codes_of(rng, 2), [b"first", b"second"], label="mine")
    assert store.delete(4) and store.delete(added[1])
    crash(store)  # the log still holds those writes: the reseed must apply them first
    again = {b"first": codes_of(np.random.default_rng(6), 1)[0]}
    calls = []

    def reencode(paths):
        calls.append([p.name for p in paths])
        return np.stack([again[p.read_bytes()] for p in paths])

    with pytest.raises(StoreError):
        open_store(tmp_path / "s", new, weights="bbbb", reencode=reencode)
    store = open_store(tmp_path / "s", new, weights="bbbb", reseed=True, reencode=reencode)
    assert calls == [[f"{added[0]}.png"]] and store.reseeded == (29, 1)
    assert store.ntotal == 30
    for i in range(30):
        expected = None if i == 4 else new[i:i + 1]
        got = store.code(i)
        assert (got is None) if expected is None else np.array_equal(got, expected)
    np.testing.assert_array_equal(store.code(added[0])[0], again[b"first"])
    assert store.code(added[1]) is None and store.label(added[0]) == "mine" and store.next_id == added[1] + 1
    store.close()
    assert json.loads((tmp_path / "s" / STATE).read_text())["weights"] == "bbbb"
    with open_store(tmp_path / "s", new, weights="bbbb") as store:  # reopened as it was left
        assert store.ntotal == 30 and store.replayed == 0 and store.code(4) is None


def test_reseed_refuses_a_store_started_from_an_index(tmp_path):
    """Codes seeded from a user's index cannot be encoded again by dnnh: one line, nothing changed."""
    codes = codes_of(np.random.default_rng(7), 5)
    open_store(tmp_path / "s", codes, weights="aaaa", seed_name="/somewhere/db.dhi").close()
    with pytest.raises(StoreError, match="started from /somewhere/db.dhi"):
        open_store(tmp_path / "s", codes, weights="bbbb", reseed=True)
    open_store(tmp_path / "s", codes, weights="aaaa").close()
