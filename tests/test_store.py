"""``RowStore.read``: the rows written, in any order, by ``preadv`` straight into the batch or,
where the OS lacks it, by ``pread`` and one more copy; a truncated file is an error, not garbage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marslib.data import store as store_mod
from marslib.data.store import LABELS, build_store


def _store(path, rows: np.ndarray, chunk: int = 3):
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
    store, labels = _store(tmp_path / "s", rows)
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
