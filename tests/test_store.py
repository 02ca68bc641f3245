"""The on-disk row store: exact round trip (``preadv`` or ``pread``), resumable builds, one builder at a time,
worker reads; a truncated file is an error, not garbage."""

import threading

import numpy as np
import pytest
import torch

from marslib.data import store as store_mod
from marslib.data.store import LABELS, RowStore, TensorRows, as_rows, build_store

SHAPE = (2, 3, 4)


def _chunks(n, size=4, fail_after=None, calls=None):
    """A chunk producer over ``n`` items of known content; raises after ``fail_after`` chunks."""
    def produce(start):
        if calls is not None:
            calls.append(start)
        for k, begin in enumerate(range(start, n, size)):
            if fail_after is not None and k == fail_after:
                raise KeyboardInterrupt  # the build is killed here
            items = np.arange(begin, min(n, begin + size))
            x = np.stack([np.full(SHAPE, i) + np.arange(24).reshape(SHAPE) for i in items]).astype(np.float32)
            y = np.stack([items, items % 11, items + 100], axis=1)
            yield begin + len(items), (x, y, [f"note{i}" for i in items], [])
    return produce


def test_rows_come_back_exactly_in_any_order(tmp_path):
    store = build_store(tmp_path / "s", 10, SHAPE, "float32", _chunks(10))
    assert len(store) == 10 and store.note_strs == [f"note{i}" for i in range(10)]
    x, labels = store.read([7, 0, 7])
    assert x.shape == (3, *SHAPE) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.full(SHAPE, 7.0) + torch.arange(24.0).reshape(SHAPE)) and torch.equal(x[0], x[2])
    assert labels["pitch"].tolist() == [7, 0, 7] and labels["velocity"].tolist() == [107, 100, 107]
    assert set(labels) == set(LABELS)
    with pytest.raises(IndexError, match="row 10 out of range"):
        store.read([10])
    again = RowStore(tmp_path / "s")                        # reopened: the same
    assert torch.equal(again.read_all()[0], store.read_all()[0])


def test_an_interrupted_build_resumes_where_it_stopped(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        build_store(tmp_path / "s", 10, SHAPE, "float32", _chunks(10, fail_after=2, calls=calls))
    partial = tmp_path / "s.partial"
    assert partial.is_dir() and not (tmp_path / "s").exists()
    with open(partial / "rows.bin", "ab") as f:             # a kill between an append and its record
        f.write(b"torn")
    store = build_store(tmp_path / "s", 10, SHAPE, "float32", _chunks(10, calls=calls))
    assert calls == [0, 8]                                  # two chunks of 4 were kept
    reference = build_store(tmp_path / "r", 10, SHAPE, "float32", _chunks(10))
    assert torch.equal(store.read_all()[0], reference.read_all()[0])
    assert all(torch.equal(store.labels[k], reference.labels[k]) for k in LABELS)
    assert not partial.exists()


def test_concurrent_builders_build_once(tmp_path):
    calls, stores = [], []
    threads = [threading.Thread(target=lambda: stores.append(
        build_store(tmp_path / "s", 40, SHAPE, "float32", _chunks(40, calls=calls)))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [0] and len(stores) == 3 and all(len(s) == 40 for s in stores)


def test_dataloader_workers_read_what_the_main_process_reads(tmp_path):
    store = build_store(tmp_path / "s", 12, SHAPE, "float32", _chunks(12))
    loader = torch.utils.data.DataLoader(store, batch_size=5, num_workers=2)
    x = torch.cat([batch[0] for batch in loader])
    assert torch.equal(x, store.read_all()[0])


def test_tensor_rows_have_the_same_interface():
    x, labels = torch.arange(6.0).reshape(3, 2), {"pitch": torch.tensor([1, 2, 3])}
    rows = as_rows((x, labels))
    assert isinstance(rows, TensorRows) and len(rows) == 3
    got, lab = rows.read(torch.tensor([2, 0]))
    assert torch.equal(got, x[[2, 0]]) and lab["pitch"].tolist() == [3, 1]


def _random_store(path, rows: np.ndarray, chunk: int = 3):
    labels = np.arange(len(rows) * len(LABELS)).reshape(len(rows), len(LABELS))

    def chunks(start):
        for begin in range(start, len(rows), chunk):
            end = min(len(rows), begin + chunk)
            yield end, (rows[begin:end], labels[begin:end], [f"n{i}" for i in range(begin, end)], [])

    return build_store(path, len(rows), rows.shape[1:], str(rows.dtype), chunks), labels


@pytest.mark.parametrize("preadv", [True, False], ids=["preadv", "pread"])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_read_returns_the_rows_written(tmp_path, monkeypatch, preadv, dtype):
    if preadv and not store_mod._PREADV:
        pytest.skip("no os.preadv here")
    monkeypatch.setattr(store_mod, "_PREADV", preadv)
    rows = (np.random.default_rng(0).standard_normal((10, 2, 3, 5)) * 100).astype(dtype)
    store, labels = _random_store(tmp_path / "s", rows)
    idx = [7, 0, 7, 9, 3]  # any order, repeats
    x, y = store.read(torch.tensor(idx))
    assert x.dtype == getattr(torch, dtype) and np.array_equal(x.numpy(), rows[idx])
    assert [y[name].tolist() for name in LABELS] == [labels[idx, k].tolist() for k in range(len(LABELS))]
    assert store.read([])[0].shape == (0, 2, 3, 5)
    assert np.array_equal(store.read_all()[0].numpy(), rows)
    with pytest.raises(IndexError, match="row 10 out of range"):
        store.read([10])
    with open(store.path / "rows.bin", "r+b") as f:  # damaged after opening: never a half-filled row
        f.truncate(9 * store.row_bytes + 4)
    with pytest.raises(OSError, match="shorter than its meta.json says"):
        store.read([9])
