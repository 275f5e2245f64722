"""The ground floor: atomic writes, checked parquet reads, staged directories and timestamps (knows no stage).

Every write goes to a temporary file in the same directory and is moved into place with os.replace, so a
killed command never leaves a half-written artifact.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from personagen.errors import BadInput, PersonagenError
from personagen.locking import LOCK_FILE, pid_tag, release_exclusive, remove_stale, try_exclusive


def _umask() -> int:
    """The process umask (read once; os.umask can only be read by setting it)."""
    m = os.umask(0o022)
    os.umask(m)
    return m


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file: temp files get it before os.replace


def now_iso() -> str:
    """UTC time to the second, ISO 8601 (manifest and report timestamps)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # runtime: the disk (or a quota) is full
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)  # the user's choice of location: bad input


def write_failure(path: str | os.PathLike, e: BaseException) -> PersonagenError | None:
    """A one-line error for a write that failed because the disk is full or read-only (also when polars
    reports it as 'os error N'), naming the file and what to do; None for any other failure."""
    code = e.errno if isinstance(e, OSError) else None
    if code is None and isinstance(e, pl.exceptions.PolarsError):
        m = re.search(r"os error (\d+)", str(e))
        code = int(m.group(1)) if m else None
    if code in _FULL:
        return PersonagenError(f"{path}: cannot write ({os.strerror(code)}); free some space and rerun")
    if code in _READ_ONLY:
        return BadInput(f"{path}: cannot write ({os.strerror(code)}); choose a writable location")
    return None


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[str]:
    """A temp file name in `path`'s folder; moved onto `path` when the block ends, removed if it raises."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{pid_tag()}", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise (write_failure(path, e) or e) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)  # mkstemp's 0600 would ignore the user's umask
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        err = write_failure(path, e)
        if err is not None:
            raise err from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` atomically (temp file in the same folder, then os.replace)."""
    with _temp_beside(Path(path)) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_write_parquet(path: str | os.PathLike, df: pl.DataFrame, metadata: dict[str, str] | None = None) -> None:
    """Write a polars frame to parquet atomically (zstd, statistics off for bit-identical reruns); `metadata`:
    key-value pairs stored in the file's footer."""
    with _temp_beside(Path(path)) as tmp:
        df.write_parquet(tmp, compression="zstd", compression_level=1, statistics=False, metadata=metadata)


def atomic_write_parquet_batches(path: str | os.PathLike, frames: Iterable[pl.DataFrame]) -> int:
    """Write frames as consecutive row groups of one parquet file, atomically; returns the rows written.

    Why: a frame too large to hold (millions of rendered personas) is produced and written a batch at a time,
    so memory stays flat in the number of rows. Same codec as `atomic_write_parquet` (zstd 1, no statistics:
    bit-identical reruns); every batch is cast to the first one's schema (all-null columns as String)."""
    import pyarrow.parquet as pq

    rows = 0
    with _temp_beside(Path(path)) as tmp:
        writer = None
        try:
            schema: dict | None = None
            for df in frames:
                if schema is None:
                    schema = {c: (pl.String if t == pl.Null else t) for c, t in df.schema.items()}
                table = df.select([pl.col(c).cast(t) for c, t in schema.items()]).to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", compression_level=1,
                                              write_statistics=False)
                writer.write_table(table, row_group_size=max(table.num_rows, 1))
                rows += table.num_rows
            if writer is None:
                raise ValueError("no frames to write")
        finally:
            if writer is not None:
                writer.close()
    return rows


def read_parquet(path: str | os.PathLike, what: str = "file") -> pl.DataFrame:
    """Read a parquet file; one polars cannot decode is bad input ("PATH: not a readable parquet WHAT")."""
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise BadInput(f"{path}: not a readable parquet {what} ({type(e).__name__})") from None


_claims: set[str] = set()  # claim files this process holds
_made: dict[str, int] = {}  # folders this process made with staged_dir -> their inode


@contextlib.contextmanager
def claim_target(final: str | os.PathLike) -> Iterator[None]:
    """Hold the claim on creating `final` (an exclusive lock on PARENT/.NAME.claim, taken without waiting,
    removed when released); BadInput when another process holds it. Two commands creating one folder: the
    second is refused at once instead of both working and one silently replacing the other's result."""
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    lock = parent / f".{final.name}.claim"
    key = str(lock.absolute())
    if key in _claims:  # this process claimed it already (a command that claims before its staged_dir)
        yield
        return
    try:
        fd = try_exclusive(lock)
    except OSError as e:
        raise (write_failure(final, e) or BadInput(f"{lock}: cannot take the claim on {final} "
                                                   f"({e.strerror or e}); remove it if it is a link")) from None
    if fd is None:
        raise BadInput(f"{final}: another command is creating it right now; wait for it or choose another path")
    _claims.add(key)
    try:
        yield
    finally:
        _claims.discard(key)
        release_exclusive(fd, lock)


def _move_in(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename the finished `tmp` onto `final`: never onto something that appeared meanwhile (rename refuses a
    non-empty folder), and with `overwrite` never over a library whose writer lock is held."""
    if overwrite and (final.exists() or final.is_symlink()):
        held = final.is_dir() and not final.is_symlink() and (final / LOCK_FILE).is_file()
        fd = try_exclusive(final / LOCK_FILE) if held else None
        if held and fd is None:
            raise BadInput(f"{final}: a command is writing to it; not replaced (rerun when it has finished)")
        try:
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}{pid_tag()}", suffix=".old", dir=final.parent))
            os.replace(final, old / "x")
            try:
                os.rename(tmp, final)
            except OSError:  # something appeared at `final` in between: put the old folder back if it can be
                with contextlib.suppress(OSError):
                    os.rename(old / "x", final)
                raise
        finally:
            if fd is not None:
                release_exclusive(fd)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)  # atomic; an empty folder is replaced, anything else refused
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise BadInput(f"{final}: appeared while this command ran; left as it is and nothing written "
                           f"(choose another path or remove it)") from None
        raise


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp directory next to `final`; on success it is renamed to `final`, on failure removed.

    Used by commands that create a whole directory (build, pull, publish --out) so no partial result is left.
    The target is claimed (`claim_target`) before the work starts and until the rename, and what another
    process put at `final` meanwhile is never replaced; with `overwrite`, a folder that was there is replaced,
    unless a writer holds its library lock.
    """
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"{final}: parent {parent} is not an existing directory")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"{final}: output directory {parent} is not writable")
    with claim_target(final):
        if (final.exists() or final.is_symlink()) and not overwrite and \
                (not final.is_dir() or final.is_symlink() or any(final.iterdir())):
            raise BadInput(f"{final}: already exists and is not empty (choose another path or remove it)")
        remove_stale(parent.glob(f".{final.name}.pid*.partial"))  # left by a killed run
        remove_stale(parent.glob(f".{final.name}.pid*.old"))
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{pid_tag()}", suffix=".partial", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
            made = tmp.stat().st_ino  # a rename keeps the inode: what `undo_on_bad_input` may remove
            _move_in(tmp, final, overwrite)
            _made[str(final.absolute())] = made
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            err = write_failure(final, e)
            if err is None and isinstance(e, PersonagenError) and str(tmp) in str(e):
                err = type(e)(str(e).replace(str(tmp), str(final)))  # name the folder the user asked for
            if err is not None:
                raise err from None
            raise


@contextlib.contextmanager
def undo_on_bad_input(*paths: str | os.PathLike) -> Iterator[None]:
    """Remove again those of `paths` that this block creates, if it ends in bad input (exit 2 writes nothing).

    Used around stages that create a folder before a check only the model server can answer (an unknown
    model or a rejected key). A library (a folder with a manifest) is removed only if this process made it
    (staged_dir), never one another process created there meanwhile."""
    fresh = [Path(p) for p in paths if not Path(p).exists()]
    try:
        yield
    except BadInput:
        for p in fresh:
            if p.is_dir() and not p.is_symlink():
                if (p / "manifest.json").exists() and _made.get(str(p.absolute())) != p.stat().st_ino:
                    continue
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never created
                    p.unlink()
        raise
