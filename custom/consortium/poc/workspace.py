"""A POC workspace folder: only one that ``consortium poc up`` made is ever deleted, and the
console's earlier downloads are kept before it is remade."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from consortium.poc.state import STATE_FILE, PocError

MARKER_FILE = ".consortium-poc-workspace"  # written by `up`: only such a folder is ever deleted


def keep_console_downloads(workspace: Path, keep: Path, echo=print) -> None:
    """Move every admin kit's ``transfer/`` content (where the console's ``download_job`` writes)
    to ``keep/<admin>/`` before the workspace is remade."""
    if not (workspace / STATE_FILE).is_file() and not (workspace / MARKER_FILE).is_file():
        return  # not ours: clear_workspace refuses it
    for transfer in sorted(workspace.glob("*/prod_*/*/transfer")):
        items = [p for p in transfer.iterdir()] if transfer.is_dir() else []
        if not items:
            continue
        dest = keep.resolve() / transfer.parent.name
        dest.mkdir(parents=True, exist_ok=True)
        for item in items:
            target = dest / item.name
            if target.exists():
                target = dest / f"{item.name}.{time.strftime('%Y%m%d-%H%M%S')}"
            shutil.move(str(item), target)
        echo(f"kept {len(items)} console download(s) of {transfer.parent.name} in {dest}")


def clear_workspace(workspace: Path) -> None:
    """Remove a previous POC workspace; refuse to delete a folder that is not one."""
    if not workspace.exists():
        return
    if (workspace / STATE_FILE).is_file() or (workspace / MARKER_FILE).is_file():
        shutil.rmtree(workspace)
        return
    if not workspace.is_dir() or any(workspace.iterdir()):
        raise PocError(f"{workspace} exists and is not a POC workspace made by `consortium poc up` "
                       f"(no {MARKER_FILE}); refusing to delete it: choose an empty or new folder")
    workspace.rmdir()
