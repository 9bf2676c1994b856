"""Private work directories for plaintext (files before encryption, customers' files before import).

All live under one root that only this user can enter (0700; a root owned by someone else is
refused). Each is named after the process that made it (``<label>.<pid>.<host>.<random>``) and
removed when its work ends; one left behind by a killed process is swept before the next is made,
so plaintext never outlives the next run on that host. In production, put the root on an encrypted
or memory-backed volume (``S3_SHARING_WORK_DIR``).
"""

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WorkDirError(RuntimeError):
    """The work root cannot be made private."""


def private_root(root: Path) -> Path:
    """``root``, created if needed, owned by us and closed to everyone else (0700)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = root.stat()
    if info.st_uid != os.getuid():
        raise WorkDirError(f"work directory {root} belongs to another user (uid {info.st_uid})")
    if stat.S_IMODE(info.st_mode) != 0o700:
        root.chmod(0o700)
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user has this pid
        return True
    return True


def sweep(root: Path) -> list[Path]:
    """Remove the work directories of this host whose process is gone; the ones removed."""
    host, removed = socket.gethostname(), []
    for path in root.iterdir():
        parts = path.name.split(".")
        if len(parts) < 4 or not parts[1].isdigit() or ".".join(parts[2:-1]) != host:
            continue
        if not _alive(int(parts[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def private_workdir(root: Path, label: str) -> Iterator[Path]:
    """A fresh directory under the private ``root`` for one piece of work, removed afterwards."""
    sweep(private_root(root))
    prefix = f"{label}.{os.getpid()}.{socket.gethostname()}."
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def default_root() -> Path:
    return Path(tempfile.gettempdir()) / f"s3-sharing-work-{os.getuid()}"
