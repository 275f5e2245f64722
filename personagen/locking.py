"""Advisory locking between processes writing one library, and process-liveness checks for leftovers.

Writers (response appends, manifest history, calibrations) hold an exclusive `fcntl.flock` on LIB/.lock
for their read-modify-write, so concurrent runs on one library never lose or duplicate each other's
work. The lock is re-entrant within a process (a writer may call another writer). Temporary files and
folders carry their creator's pid so that a later run removes only leftovers of processes that are gone,
never another live run's in-flight files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"
_held: dict[str, int] = {}  # lock path -> re-entry depth (this process)
_fds: dict[str, int] = {}
_guard = threading.RLock()
_PID = re.compile(r"\.pid(\d+)\.")


@contextlib.contextmanager
def library_lock(lib_path: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive advisory lock of the library at `lib_path` (blocking; re-entrant per process)."""
    key = str(Path(lib_path).resolve() / LOCK_FILE)
    with _guard:
        if _held.get(key):
            _held[key] += 1
        else:
            fd = _open_lock_file(key)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            _fds[key], _held[key] = fd, 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
                fd = _fds.pop(key)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _open_lock_file(path: str) -> int:
    """Open (creating) a lock file, never through a symbolic link (OSError ELOOP) nor onto anything but a
    regular file: a link planted in a library must not make a writer create or lock a file elsewhere."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "lock file is not a regular file", path)
    return fd


def try_exclusive(path: str | os.PathLike) -> int | None:
    """An exclusive flock on the file at `path` (created if missing), taken without waiting: the open file
    descriptor, or None when another open file (another process, or this one) holds it.

    The lock is checked to be on the file that is still at `path`, so a holder may unlink the file when it
    releases it (`release_exclusive`) without handing a stale, unlinked file to a process that opened it just
    before."""
    path = os.fspath(path)
    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
            same = (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its previous holder unlinked it meanwhile: lock the file now at `path`


def release_exclusive(fd: int, path: str | os.PathLike | None = None) -> None:
    """Release a lock from `try_exclusive`, first unlinking `path` (while still held) when given."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_tag() -> str:
    """The marker embedded in temp names (`.pid1234.`) so leftovers can be attributed to their creator."""
    return f".pid{os.getpid()}."


def owner_pid(name: str) -> int | None:
    """The pid embedded in a temp name by `pid_tag`, if any."""
    m = _PID.search(name)
    return int(m.group(1)) if m else None


def remove_stale(paths: Iterator[Path] | list[Path]) -> int:
    """Remove temp files/folders whose creator process is gone (tagged by `pid_tag`); returns how many."""
    n = 0
    for p in paths:
        pid = owner_pid(p.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        n += 1
    return n


__all__ = ["library_lock", "try_exclusive", "release_exclusive", "pid_alive", "pid_tag", "owner_pid", "remove_stale", "LOCK_FILE"]
