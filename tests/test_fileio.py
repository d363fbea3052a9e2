"""The shared file disciplines: an atomic replace leaves the old content or the new, and no debris."""

from __future__ import annotations

import pytest

from consortium.fileio import atomic_write, exclusive_lock


def test_atomic_write_replaces_and_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "ledger.json"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text() == "new"
    with pytest.raises(TypeError):
        atomic_write(path, 123)  # not bytes or text: nothing replaced
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]


def test_the_lock_makes_its_folder_and_a_lock_file_beside_the_path(tmp_path):
    path = tmp_path / "audit" / "trail.jsonl"
    with exclusive_lock(path):
        assert (tmp_path / "audit" / "trail.jsonl.lock").is_file()
