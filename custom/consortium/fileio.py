"""The two file disciplines the consortium's records share (privacy ledger, audit trail, model
registry, incident controls): an exclusive lock between the processes of a site or server (each
FLARE job runs in its own process), and an atomic replace that a crash leaves either old or new.
No nvflare import."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` (its folder is made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8): written to a temporary file beside it,
    flushed to disk, then renamed over it; the temporary file is removed if anything fails."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"cannot write here: its folder {path.parent} does not exist", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def path_under(root: Path | str, *parts: str | Path) -> Path:
    """``root/parts...`` resolved (links and ``..`` followed), after checking that it lies under
    ``root`` resolved; ConfigurationError naming both otherwise. Use it for every path made from
    a name or a path that a user, a job or a peer gave, before anything is written there."""
    from consortium.names import ConfigurationError

    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and not target.is_relative_to(base):
        shown = os.path.join(*map(os.fspath, parts)) if parts else ""
        raise ConfigurationError(f"{shown!r} leads to {target}, outside {base}: refused")
    return target


SECRET_SUFFIXES = (".key", ".tenseal", ".pfx", ".p12")  # private keys, CKKS contexts, key stores
SECRET_NAMES = ("cert.json",)  # FLARE's provisioning state: the root CA's and every kit's private key
SECRET_MODE = 0o600


def is_secret(path: Path) -> bool:
    """A file only its owner may read: a private key, a CKKS context, FLARE's provisioning state."""
    path = Path(path)
    return path.suffix in SECRET_SUFFIXES or path.name in SECRET_NAMES


def restrict_secrets(root: Path) -> list[Path]:
    """Make every secret file under ``root`` (:func:`is_secret`; links not followed) mode 0600;
    returns the files whose mode was changed. For files written by another tool (FLARE's
    provisioner) with the default umask."""
    changed = []
    for path in sorted(Path(root).rglob("*")):
        if path.is_symlink() or not path.is_file() or not is_secret(path):
            continue
        if path.stat().st_mode & 0o777 != SECRET_MODE:
            path.chmod(SECRET_MODE)
            changed.append(path)
    return changed


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Run the block with umask 077: whatever it creates (FLARE's provisioner: keys, cert.json)
    is readable by its owner only from the moment it exists. The umask is the process's: use it
    around single-threaded work."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
