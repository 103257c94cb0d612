"""X reads of the content tasks: read buffers sized to the rows' values (bounded heap), and a read whose values do
not fit its buffers still returns every value (in several batches)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import BuiltRelease
from validation.inputs import release
from validation.inputs.release import MIN_READ_BUFFER_BYTES, READ_BUFFER_BYTES, read_buffer_bytes, read_x


def test_read_buffer_bytes_fit_the_values_in_powers_of_two() -> None:
    assert read_buffer_bytes(None) == READ_BUFFER_BYTES
    assert read_buffer_bytes(0) == MIN_READ_BUFFER_BYTES
    assert read_buffer_bytes(1000) == MIN_READ_BUFFER_BYTES
    assert read_buffer_bytes(4_000_000) == 32 * 2**20  # a 4 M-entry chunk (the builder's default): 32,000,000 bytes
    assert read_buffer_bytes(4_194_304) == 32 * 2**20
    assert read_buffer_bytes(4_194_305) == 64 * 2**20
    assert read_buffer_bytes(10**9) == READ_BUFFER_BYTES


def test_a_read_larger_than_its_buffers_returns_every_value(
    example_release: BuiltRelease, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(example_release.paths.soma / "census_data" / "homo_sapiens" / "ms" / "RNA" / "X" / "raw")
    whole = read_x(uri, slice(0, 10**6), None)
    assert whole[0].size > 3 * 2048  # several batches of 16 KiB buffers
    monkeypatch.setattr(release, "MIN_READ_BUFFER_BYTES", 16 * 2**10)
    small = read_x(uri, slice(0, 10**6), 1)  # 16 KiB buffers: 2,048 values a batch
    order_w = np.lexsort((whole[1], whole[0]))
    order_s = np.lexsort((small[1], small[0]))
    for w, s in zip(whole, small, strict=True):
        assert np.array_equal(w[order_w], s[order_s])
