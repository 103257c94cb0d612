"""release.json: the format the cellxgene_census client reads, the alias and retraction rules, and updates
that are atomic and lose nothing when threads and processes write at once (local DEST; S3 is in test_publish)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cellxgene_census import _release_directory as client_directory

from census_builder.errors import ReleaseDirectoryError, ReleaseExistsError
from census_builder.release.destination import Destination
from census_builder.release.directory import (
    LocalDirectoryStore,
    ReleaseDirectory,
    entry_for,
)
from census_builder.release.documents import LOCK_NAME, locked

DEST = Destination.parse("s3://bucket/census", endpoint_url=None)


def _directory(*versions: str, **aliases: str) -> ReleaseDirectory:
    d = ReleaseDirectory()
    for v in versions:
        d = d.with_release(v, entry_for(DEST, v, release_date="2026-11-22", s3_region="us-west-2"))
    for a, target in aliases.items():
        d = d.with_alias(a, target)
    return d


# -- format ------------------------------------------------------------------------------------------------


def test_entries_use_exactly_the_clients_key_names() -> None:
    d = _directory("2026-11-01", "2026-11-22", latest="2026-11-22")
    d = d.with_retraction("2026-11-01", reason="bad cells", replaced_by="latest", info_url="https://x/errata")
    data = json.loads(d.dumps())
    assert data["latest"] == "2026-11-22"
    for name in ("2026-11-01", "2026-11-22"):
        entry = data[name]
        assert set(entry) <= set(client_directory.CensusVersionDescription.__annotations__)
        assert {"release_date", "release_build", "soma", "h5ads", "flags"} <= set(entry)
        for loc in ("soma", "h5ads"):
            assert set(entry[loc]) == set(client_directory.CensusLocator.__annotations__)
        assert set(entry["flags"]) == {"lts", "retracted"}
    assert set(data["2026-11-01"]["retraction"]) == set(client_directory.CensusVersionRetraction.__annotations__)
    assert data["2026-11-22"]["soma"] == {
        "uri": "s3://bucket/census/2026-11-22/soma/",
        "relative_uri": "2026-11-22/soma/",
        "s3_region": "us-west-2",
    }
    assert data["2026-11-01"]["flags"] == {"lts": False, "retracted": True}
    assert data["2026-11-01"]["retraction"] == {
        "date": data["2026-11-01"]["retraction"]["date"],
        "reason": "bad cells",
        "info_url": "https://x/errata",
        "replaced_by": "latest",
    }
    assert next(iter(data)) == "latest"  # aliases first, then builds newest first
    assert ReleaseDirectory.from_json(data) == d


def test_local_locators_are_file_uris_relative_to_dest(tmp_path: Path) -> None:
    dest = Destination.parse(tmp_path / "dest")
    e = entry_for(dest, "v1")
    assert e.soma.uri == (tmp_path / "dest").resolve().as_uri() + "/v1/soma/"
    assert e.soma.relative_uri == "v1/soma/" and e.soma.s3_region is None
    assert dest.base_uri + e.h5ads.relative_uri == e.h5ads.uri


def test_unknown_keys_survive_a_round_trip() -> None:
    data: dict[str, Any] = json.loads(_directory("v1").dumps())
    data["v1"]["embeddings"] = {"note": "written by another tool"}
    d = ReleaseDirectory.from_json(data).with_alias("latest", "v1")
    assert json.loads(d.dumps())["v1"]["embeddings"] == {"note": "written by another tool"}


@pytest.mark.parametrize("content", ["[]", '{"v1": 3}', '{"v1": {"release_build": "v1"}}'])
def test_malformed_release_json_is_reported(tmp_path: Path, content: str) -> None:
    (tmp_path / "release.json").write_text(content)
    with pytest.raises(ReleaseDirectoryError):
        LocalDirectoryStore(tmp_path).read()


# -- rules -------------------------------------------------------------------------------------------------


def test_a_published_release_is_never_replaced() -> None:
    d = _directory("v1")
    with pytest.raises(ReleaseExistsError, match="already published"):
        d.with_release("v1", entry_for(DEST, "v1"))


@pytest.mark.parametrize("name", ["", "a b", "../x", "x/y", "-x"])
def test_names_must_be_plain(name: str) -> None:
    with pytest.raises(ReleaseDirectoryError, match="not a valid name"):
        ReleaseDirectory().with_release(name, entry_for(DEST, "x"))
    with pytest.raises(ReleaseDirectoryError, match="not a valid name"):
        _directory("v1").with_alias(name, "v1")


def test_alias_rules() -> None:
    d = _directory("v1", "v2")
    with pytest.raises(ReleaseDirectoryError, match="not a published release"):
        d.with_alias("latest", "v3")
    with pytest.raises(ReleaseDirectoryError, match="is a published build"):
        d.with_alias("v1", "v2")
    d = d.with_alias("latest", "v2").with_alias("stable", "latest")  # an alias target is resolved to its build
    assert d.aliases == {"latest": "v2", "stable": "v2"}
    d = d.with_alias("latest", "v1")
    assert d.aliases == {"latest": "v1", "stable": "v2"}
    with pytest.raises(ReleaseDirectoryError, match="is an alias"):
        d.with_release("latest", entry_for(DEST, "latest"))
    assert d.with_alias("latest", "v1") == d  # no change: stores write nothing
    retracted = _directory("v1", "v2").with_retraction("v1", reason="wrong")
    with pytest.raises(ReleaseDirectoryError, match="retracted"):
        retracted.with_alias("latest", "v1")


def test_retraction_rules() -> None:
    d = _directory("v1", "v2", latest="v1", stable="v1", other="v2")
    with pytest.raises(ReleaseDirectoryError, match=r"aliases \['latest', 'stable'\] point at 'v1'"):
        d.with_retraction("v1", reason="wrong counts")
    with pytest.raises(ReleaseDirectoryError, match="is an alias"):
        d.with_retraction("latest", reason="x", replaced_by="v2")
    with pytest.raises(ReleaseDirectoryError, match="must name another release"):
        d.with_retraction("v1", reason="x", replaced_by="latest")  # latest is v1 itself
    with pytest.raises(ReleaseDirectoryError, match="needs a reason"):
        d.with_retraction("v1", reason=" ", replaced_by="v2")
    with pytest.raises(ReleaseDirectoryError, match="not a published release"):
        d.with_retraction("v9", reason="x")
    r = d.with_retraction("v1", reason="wrong counts", replaced_by="other", date="2026-12-01")
    assert r.aliases == {"latest": "v2", "stable": "v2", "other": "v2"}  # moved to the replacement's build
    assert r.releases["v1"].retracted and r.releases["v1"].retraction is not None
    assert r.releases["v1"].retraction.replaced_by == "other"
    assert r.problems() == []
    with pytest.raises(ReleaseDirectoryError, match="already retracted"):
        r.with_retraction("v1", reason="again")
    with pytest.raises(ReleaseDirectoryError, match="must name another release"):
        _directory("v1", "v2").with_retraction("v2", reason="x").with_retraction("v1", reason="x", replaced_by="v2")


def test_unalias_rules() -> None:
    d = _directory("v1", "v2", latest="v2", stable="v1")
    r = d.without_alias("latest")
    assert r.aliases == {"stable": "v1"} and r.releases == d.releases
    with pytest.raises(ReleaseDirectoryError, match=r"'latest' is not an alias in release.json; aliases: stable"):
        r.without_alias("latest")
    with pytest.raises(ReleaseDirectoryError, match=r"'v1' is a published build, not an alias.*release retract v1"):
        d.without_alias("v1")


def test_unretract_rules() -> None:
    d = _directory("v1", "v2", latest="v1").with_retraction("v1", reason="wrong", replaced_by="v2", date="2026-12-01")
    r = d.without_retraction("v1")
    assert not r.releases["v1"].retracted and r.releases["v1"].retraction is None
    assert r.releases["v1"] == _directory("v1").releases["v1"]  # exactly as published again
    assert r.aliases == {"latest": "v2"}  # the alias moved to the replacement stays there
    assert json.loads(r.dumps())["v1"]["flags"] == {"lts": False, "retracted": False}
    assert "retraction" not in json.loads(r.dumps())["v1"]
    with pytest.raises(ReleaseDirectoryError, match="release 'v1' is not retracted"):
        r.without_retraction("v1")
    with pytest.raises(ReleaseDirectoryError, match="'latest' is an alias"):
        d.without_retraction("latest")
    with pytest.raises(ReleaseDirectoryError, match="'v9' is not a published release"):
        d.without_retraction("v9")
    assert r.with_alias("latest", "v1").aliases == {"latest": "v1"}  # usable again


def test_lts_rules() -> None:
    d = _directory("v1", "v2", stable="v1")
    r = d.with_lts("v1")
    assert r.releases["v1"].lts and not r.releases["v2"].lts
    assert json.loads(r.dumps())["v1"]["flags"] == {"lts": True, "retracted": False}
    assert r.with_lts("v1") is r  # already set: no change, stores write nothing
    assert r.with_lts("v1", False) == d
    with pytest.raises(ReleaseDirectoryError, match=r"'stable' is an alias \(-> 'v1'\).*release lts v1"):
        d.with_lts("stable")
    retracted = d.with_retraction("v2", reason="x")
    with pytest.raises(ReleaseDirectoryError, match=r"'v2' is retracted.*release unretract v2"):
        retracted.with_lts("v2")
    both = _directory("v1", "v2").with_lts("v2").with_retraction("v2", reason="x")
    assert not both.with_lts("v2", False).releases["v2"].lts  # clearing is allowed on a retracted release


def test_hand_edited_problems_are_listed() -> None:
    d = ReleaseDirectory.from_json({**json.loads(_directory("v1").dumps()), "latest": "v0"})
    assert d.problems() == ["alias 'latest' points at 'v0', which is not a published build"]


# -- atomic, concurrent updates (local) --------------------------------------------------------------------

_WRITER = """
import sys, time
from pathlib import Path
from census_builder.release.destination import Destination
from census_builder.release.directory import LocalDirectoryStore, entry_for
root, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = LocalDirectoryStore(root)
dest = Destination.parse(root)
def add(d, name):
    time.sleep(0.002)  # widen the read-modify-write window
    return d.with_release(name, entry_for(dest, name))
for i in range(n):
    store.update(lambda d, i=i: add(d, f"{tag}-{i:03d}"))
"""


def test_concurrent_local_updates_lose_nothing_and_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    store.update(lambda d: d.with_release("base", entry_for(Destination.parse(tmp_path), "base")))
    stop = threading.Event()
    bad_reads: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                json.loads((tmp_path / "release.json").read_bytes())
                reads += 1
            except ValueError as e:
                bad_reads.append(str(e))

    def thread_writer(tag: str) -> None:
        for i in range(15):
            alias = f"{tag}-alias-{i:03d}"

            def add(d: ReleaseDirectory, alias: str = alias) -> ReleaseDirectory:
                return d.with_alias(alias, "base")

            store.update(add)

    r = threading.Thread(target=reader)
    r.start()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"p{k}", "15"]) for k in range(3)]
    threads = [threading.Thread(target=thread_writer, args=(f"t{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [p.wait(timeout=120) for p in procs]
    stop.set()
    r.join()
    assert codes == [0, 0, 0]
    assert bad_reads == [] and reads > 0
    final = store.read()
    assert set(final.releases) == {"base"} | {f"p{k}-{i:03d}" for k in range(3) for i in range(15)}
    assert set(final.aliases) == {f"t{k}-alias-{i:03d}" for k in range(4) for i in range(15)}
    assert not list(tmp_path.glob(".release.json.*.tmp"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.json"]  # no lock file left behind


def test_the_lock_is_exclusive_and_leaves_no_file(tmp_path: Path) -> None:
    """While one holder is inside, another waits (even after the first deleted the lock file); afterwards the
    destination holds no lock file."""
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with locked(tmp_path):
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        inside.wait(10)
        with locked(tmp_path):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    inside.wait(10)
    assert (tmp_path / LOCK_NAME).exists()
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["first in", "first out", "second in"]
    assert list(tmp_path.iterdir()) == []
    # A lock file left by a process killed while holding it is used, then removed, by the next update.
    (tmp_path / LOCK_NAME).write_text("")
    LocalDirectoryStore(tmp_path).update(lambda d: d.with_release("v1", entry_for(Destination.parse(tmp_path), "v1")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.json"]
