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


# --- every write under its intended folder, secrets for their owner only -------------------------

def test_path_under_resolves_a_name_inside_its_folder(tmp_path):
    from consortium.fileio import path_under

    assert path_under(tmp_path, "jobs-rollback", "heart_v3") == (tmp_path / "jobs-rollback" / "heart_v3").resolve()
    assert path_under(tmp_path, "a/../b") == (tmp_path / "b").resolve()


@pytest.mark.parametrize("part", ["../../../../tmp/x", "/etc/passwd", "..", "a/../../b"])
def test_path_under_refuses_a_path_that_leaves_its_folder(tmp_path, part):
    from consortium.fileio import path_under
    from consortium.names import ConfigurationError

    root = tmp_path / "root"
    naive = root / part  # what a plain join gives: outside the folder
    assert not naive.resolve().is_relative_to(root.resolve())
    with pytest.raises(ConfigurationError, match=rf"outside {root}: refused"):
        path_under(root, part)


def test_path_under_follows_a_link_that_points_out(tmp_path):
    from consortium.fileio import path_under
    from consortium.names import ConfigurationError

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path)
    with pytest.raises(ConfigurationError, match="outside"):
        path_under(tmp_path / "root", "out", "x")


def test_restrict_secrets_makes_keys_contexts_and_flares_state_owner_only(tmp_path):
    from consortium.fileio import restrict_secrets

    for name in ("state/cert.json", "kit/startup/client.key", "kit/startup/client_context.tenseal", "kit/startup/client.crt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
        (tmp_path / name).chmod(0o644)

    changed = restrict_secrets(tmp_path)

    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {"state/cert.json": 0o600, "kit/startup/client.key": 0o600,
                     "kit/startup/client_context.tenseal": 0o600, "kit/startup/client.crt": 0o644}
    assert len(changed) == 3 and restrict_secrets(tmp_path) == []


def test_owner_only_makes_what_is_created_unreadable_by_others(tmp_path):
    from consortium.fileio import owner_only

    (tmp_path / "before").write_text("x")
    with owner_only():
        (tmp_path / "during").write_text("x")
    (tmp_path / "after").write_text("x")
    assert (tmp_path / "during").stat().st_mode & 0o077 == 0
    assert (tmp_path / "before").stat().st_mode & 0o077 == (tmp_path / "after").stat().st_mode & 0o077
