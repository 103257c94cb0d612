"""The build's write timestamps: how each unit's timestamp is derived, the wait, and the invariant's checks."""

from __future__ import annotations

import pytest

from census_builder.build.timestamps import Timestamps
from census_builder.errors import BuildStateError


def test_chunk_and_obs_timestamps_are_disjoint_and_after_the_base() -> None:
    ts = Timestamps(base=1_000, n_chunks=3)
    assert [ts.chunk(k) for k in range(3)] == [1_001, 1_002, 1_003]
    assert [ts.obs(k) for k in range(3)] == [1_004, 1_005, 1_006]
    assert ts.last == 1_006


def test_a_chunk_outside_the_build_raises_instead_of_naming_a_wrong_fragment() -> None:
    ts = Timestamps(base=1_000, n_chunks=3)
    with pytest.raises(BuildStateError, match=r"^matrix chunk 3 is not one of this build's 3 chunks; this is a bug"):
        ts.chunk(3)
    with pytest.raises(BuildStateError, match=r"^obs chunk -1 is not one of this build's 3 chunks"):
        ts.obs(-1)


@pytest.mark.parametrize("timestamp", [999, 1_000, 1_007])
def test_check_refuses_a_timestamp_outside_the_range(timestamp: int) -> None:
    ts = Timestamps(base=1_000, n_chunks=3)
    with pytest.raises(BuildStateError) as e:
        ts.check(timestamp, "X chunk a#0")
    assert str(e.value) == (
        f"X chunk a#0: write timestamp {timestamp} lies outside this build's range (1000, 1006] (base 1000, "
        "3 chunks); nothing was written; this is a bug in census_builder: please report it with the build "
        "directory's .build/stages"
    )
    assert ts.check(1_006, "X chunk a#0") == 1_006


def test_timestamps_in_the_future_fail_the_read_check() -> None:
    ts = Timestamps(base=1_000, n_chunks=3)
    with pytest.raises(BuildStateError, match=r"write timestamps reach 1006 ms, 2 ms after now \(1005\)"):
        ts.check_in_past(clock=lambda: 1_005)
    ts.check_in_past(clock=lambda: 1_007)


def test_wait_until_past_sleeps_until_the_last_timestamp_is_in_the_past() -> None:
    ts = Timestamps(base=Timestamps.new_base(), n_chunks=20)  # last: 40 ms from now
    ts.wait_until_past()
    Timestamps(ts.base, ts.n_chunks).check_in_past()


def test_wait_until_past_raises_when_the_clock_does_not_get_there() -> None:
    ts = Timestamps(base=1_000, n_chunks=3)
    with pytest.raises(BuildStateError, match="the system clock may have gone back"):
        ts.wait_until_past(clock=lambda: 900, max_wait=0.01)


def test_new_base_lies_after_the_structure_was_created() -> None:
    from census_builder.build.timestamps import now_ms

    before = now_ms()
    assert Timestamps.new_base() > before
