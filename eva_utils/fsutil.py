"""Writing files safely, and saying clearly why a path cannot be written.

Every file the package writes (MNIST's IDX files, caches, checkpoints, histories) goes
through :func:`atomic_open`: the bytes go to a temporary file with a **unique** name in
the target's folder (``<name>.<random>.tmp``, so two processes building the same file
never write into one temporary file), are flushed and fsync'ed, and only then renamed
over the target with ``os.replace``. A reader sees the old file or the whole new one,
never half of one; a failed write leaves no temporary file behind.

File-system failures become :class:`WriteError` (an ``OSError``) whose message is one
line naming the path and what to do, instead of a bare ``[Errno 13]`` or torch's
``enforce fail at inline_container.cc``.
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional

# mkstemp creates files readable by their owner only; give them the usual umask mode instead
_UMASK = os.umask(0)
os.umask(_UMASK)


class WriteError(OSError):
    """A path could not be written; ``str()`` is one line naming the path and the remedy."""

    def __init__(self, message: str, errno_: Optional[int] = None, cause: Optional[str] = None):
        super().__init__(message)
        self.errno = errno_  # set after __init__, so str() stays the message alone
        self.cause = cause or message  #: the short cause ("Permission denied")


def remedy(err: OSError, folder: Path) -> str:
    """What to do about ``err`` raised while writing into ``folder``."""
    code = getattr(err, "errno", None)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make {folder} writable, or choose a folder you can write to"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"free some space on the disk holding {folder}, or choose another folder"
    if code == errno.ENOTDIR:
        return f"a part of {folder} is a file, not a folder: choose another path"
    if code == errno.EISDIR:
        return "that path is a folder: give a file name instead"
    return f"check {folder}, or choose another folder"


def reason(err: BaseException) -> str:
    """The short cause of an OSError ("Permission denied"), without errno and path."""
    text = getattr(err, "cause", None) or getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def describe(err: BaseException) -> str:
    """One line for the command line: our own messages as they are, raw OSErrors with path and remedy."""
    if isinstance(err, OSError) and not isinstance(err, WriteError) and err.filename is not None:
        path = Path(os.fsdecode(err.filename))
        text = f"{path}: {reason(err)}; {remedy(err, path if path.is_dir() else path.parent)}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _write_error(path: Path, err: OSError, what: str = "write") -> WriteError:
    folder = path.parent
    return WriteError(f"cannot {what} {path}: {reason(err)}; {remedy(err, folder)}", getattr(err, "errno", None),
                      reason(err))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is done either way
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """``with atomic_open(path) as fh: fh.write(...)``: ``path`` appears whole, or not at all.

    The folder is created if needed. The file object is that of a unique temporary file
    in the same folder; on success it is flushed, fsync'ed and renamed over ``path``;
    on any exception it is removed and the exception propagates (file-system errors as
    :class:`WriteError`).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes a new file: mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a folder; remove it or give another file name",
                         errno.EISDIR, "it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise _write_error(path, err) from None
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    return atomic_write_bytes(path, text.encode(encoding))


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def check_writable_dir(folder: str | os.PathLike, what: str = "folder") -> Path:
    """Fail now, not after an hour of training, if files cannot be written into ``folder``.

    ``folder`` need not exist yet: then its nearest existing parent must be a writable
    folder. Nothing is created; an existing folder gets a probe file, removed at once.
    ``what`` names it in the message (``"--checkpoint-dir runs/ckpt"``). Raises ValueError
    for a path that cannot be a folder, :class:`WriteError` for one that cannot be written.
    """
    folder = Path(folder).expanduser()
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        if existing == folder:
            raise ValueError(f"{what}: {folder} is a file, not a folder; give a folder, or remove the file")
        raise ValueError(f"{what}: {folder} cannot be created because {existing} is a file, not a folder; "
                         "choose another path")
    if existing != folder:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise WriteError(f"{what}: {folder} cannot be created because {existing} is not writable; "
                             f"make {existing} writable, or choose another path", errno.EACCES, "not writable")
        return folder
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".eva_write_test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise WriteError(f"{what}: {folder} is not writable ({reason(err)}); {remedy(err, folder)}",
                         getattr(err, "errno", None), reason(err)) from None
    return folder


def check_writable_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Fail now if ``path`` cannot be written later: not a folder, and its folder writable.

    ``what`` names the option in the message (``"--save"``).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder: give a file name such as {path / 'final.pt'}")
    check_writable_dir(path.parent, f"{what} {path}")
    return path
