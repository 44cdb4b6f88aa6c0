"""The write side of a cache folder: which folders a job may write, and that clearing and
committing remove only what the cache wrote."""

import json

import pytest

from videotk.formats import open_cache, youtube8m_columns
from videotk.formats.folder import (
    NEW,
    REPLACE,
    RESUME,
    FolderError,
    build_manifest,
    clear_cache,
    commit_cache,
    plan_folder,
    remove_stale_temporaries,
)
from videotk.formats.schema import columns_to_json

from .test_shards import frame_record, write_cache

COLUMNS = youtube8m_columns("frame")
FINGERPRINT = {"kind": "youtube8m-frame", "format": "parquet", "columns": columns_to_json(COLUMNS), "options": {"level": "frame"}}
OTHER = {**FINGERPRINT, "options": {"level": "frame", "segments": True}}


@pytest.fixture
def cache(tmp_path):
    """A finished cache of FINGERPRINT (2 shards) with user files beside it."""
    root = write_cache(tmp_path / "cache", "parquet", "youtube8m-frame", COLUMNS, [[frame_record(1)], [frame_record(2)]])
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "options": FINGERPRINT["options"]}))
    (root / "errors.jsonl").write_text("")
    (root / "notes.txt").write_text("mine")
    (root / "shards" / "mine.txt").write_text("mine")
    (root / "shards" / "part-00007-0123456789ab.parquet").write_text("named like a shard, listed nowhere")
    return root


def user_files(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "mine" in p.read_text(errors="ignore")
            or p.name.startswith("part-00007")}


def test_plans(tmp_path, cache):
    assert plan_folder(tmp_path / "absent", FINGERPRINT, journaled=None, overwrite=False) == NEW
    (tmp_path / "empty" / "shards").mkdir(parents=True)
    assert plan_folder(tmp_path / "empty", FINGERPRINT, journaled=None, overwrite=False) == NEW
    assert plan_folder(cache, FINGERPRINT, journaled=None, overwrite=False) == RESUME
    assert plan_folder(tmp_path / "absent", FINGERPRINT, journaled=FINGERPRINT, overwrite=False) == NEW
    assert plan_folder(cache, OTHER, journaled=None, overwrite=True) == REPLACE
    with pytest.raises(FolderError, match=r"other options \(segments: None -> True\).*--overwrite"):
        plan_folder(cache, OTHER, journaled=None, overwrite=False)
    with pytest.raises(FolderError, match="other options"):
        plan_folder(cache, FINGERPRINT, journaled=OTHER, overwrite=False)  # the journal of another job


def test_folders_that_are_not_caches_are_refused_even_with_overwrite(tmp_path, cache):
    (tmp_path / "data").mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (tmp_path / "data" / name).write_text("mine")
    (tmp_path / "data" / "raw").mkdir()
    with pytest.raises(FolderError, match=r"holds no videotk cache \(found a.txt, b.txt, c.txt and 2 more\)"):
        plan_folder(tmp_path / "data", FINGERPRINT, journaled=None, overwrite=True)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FolderError, match="is not a folder"):
        plan_folder(tmp_path / "file", FINGERPRINT, journaled=None, overwrite=True)

    (cache / "manifest.json").write_text("{damaged")
    with pytest.raises(FolderError, match="cannot be read as JSON.*nothing was changed"):
        plan_folder(cache, OTHER, journaled=None, overwrite=True)
    assert plan_folder(cache, FINGERPRINT, journaled=FINGERPRINT, overwrite=False) == RESUME  # the journal knows


def test_clear_removes_exactly_what_the_cache_wrote(cache):
    before = user_files(cache)
    (cache / "shards" / "part-00002-abcdef012345.parquet").write_bytes(b"a journalled shard")
    (cache / "shards" / "part-00003-abcdef012345.parquet.tmp-123").write_bytes(b"half a shard")
    (cache / ".manifest.json.tmp-99").write_text("{")
    removed = clear_cache(cache, written=["part-00002-abcdef012345.parquet", "../notes.txt"])
    assert len(removed) == 2 + 3 + 2
    assert {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()} == before == user_files(cache)


def test_commit_replaces_the_manifest_and_removes_obsolete_shards_only(cache):
    old = json.loads((cache / "manifest.json").read_text())
    kept, dropped = old["shards"]
    journalled = "part-00004-abcdef012345.parquet"
    (cache / "shards" / journalled).write_bytes(b"shard of a task that no longer exists")
    errors = [{"source": "x", "item": None, "reason": "r", "status": "missing"}]
    manifest = build_manifest(FINGERPRINT, classes=None, shards=[kept], errors=errors, inputs=3)
    assert manifest["summary"] == {"records": 1, "shards": 1, "bytes": kept["bytes"], "inputs": 3,
                                   "failed": 0, "missing": 1, "skipped": 0}
    assert commit_cache(cache, manifest, errors, written=[journalled]) == sorted([dropped["file"], journalled])
    assert len(open_cache(cache)) == 1
    assert {"notes.txt", "shards/mine.txt", "shards/part-00007-0123456789ab.parquet"} <= user_files(cache)


def test_only_temporaries_of_the_cache_are_removed(tmp_path):
    (tmp_path / "shards").mkdir()
    mine = [tmp_path / "shards" / "photo.jpg.tmp-1", tmp_path / ".notes.tmp-2", tmp_path / "shards" / "part-1.parquet.tmp-3"]
    ours = [tmp_path / "shards" / "part-00001-abc.h5.tmp-77", tmp_path / ".errors.jsonl.tmp-5"]
    for path in mine + ours:
        path.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path)) == [".errors.jsonl.tmp-5", "shards/part-00001-abc.h5.tmp-77"]
    assert all(p.exists() for p in mine)
