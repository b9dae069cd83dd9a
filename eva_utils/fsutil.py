"""Writing files safely, and saying clearly why a path cannot be written.

Every file the package writes (MNIST's IDX files, caches, checkpoints, histories) goes
through :func:`atomic_open`: the bytes go to a temporary file with a **unique** name in
the target's folder (``<name>.<pid>.<random>.tmp``, so two processes building the same file
never write into one temporary file), are flushed and fsync'ed, and only then renamed
over the target with ``os.replace``. A reader sees the old file or the whole new one,
never half of one; a failed write leaves no temporary file behind. Only a killed writer
(SIGKILL, power loss) can leave one: :func:`remove_stale_temps` clears those later.

File-system failures become :class:`WriteError` (an ``OSError``) whose message is one
line naming the path and what to do, instead of a bare ``[Errno 13]`` or torch's
``enforce fail at inline_container.cc``.
"""
from __future__ import annotations

import errno
import io
import os
import re
import stat
import tempfile
import time
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


def no_space(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the user's quota) is full."""
    return getattr(err, "errno", None) in (errno.ENOSPC, getattr(errno, "EDQUOT", -1))


def remedy(err: OSError, folder: Path) -> str:
    """What to do about ``err`` raised while writing into ``folder``."""
    code = getattr(err, "errno", None)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make {folder} writable, or choose a folder you can write to"
    if no_space(err):
        return f"free some space on the disk holding {folder}, or choose a folder on another disk"
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
        folder = path if path.is_dir() else path.parent
        text = (f"no space left on {folder} (writing {path}); {remedy(err, folder)}" if no_space(err)
                else f"{path}: {reason(err)}; {remedy(err, folder)}")
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _write_error(path: Path, err: OSError, what: str = "write") -> WriteError:
    folder = path.parent
    if no_space(err):  # say it plainly: the remedy is room, not permissions
        return WriteError(f"no space left on {folder}: cannot {what} {path}; {remedy(err, folder)}",
                          getattr(err, "errno", None), reason(err))
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
        # the writer's PID in the name lets remove_stale_temps leave a live writer's file alone
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp")
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


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically. The object is serialised in memory first (a
    checkpoint is a few hundred KB, the CIFAR-10 cache 180 MB), so a failed write is our own
    :class:`WriteError` naming ``path`` and its cause ("no space left on ..."), not torch's
    ``enforce fail at inline_container.cc``, which swallows the error of the write that failed."""
    import torch

    buffer = io.BytesIO()
    try:
        torch.save(obj, buffer)
    except RuntimeError as err:  # torch's serialiser failed (in memory: not the disk); say where it was going
        raise WriteError(f"cannot write {path}: {str(err).splitlines()[0] if str(err) else 'torch.save failed'}; "
                         "choose another path, or report it if it happens again") from None
    return atomic_write_bytes(path, buffer.getbuffer())


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
    """Fail now if ``path`` cannot be written later: not a folder, not a special file or a
    link (see :func:`check_regular_or_absent`), and its folder writable.

    ``what`` names the option in the message (``"--save"``). Returns the path with ``~``
    expanded: write to the path returned, the one that was checked.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder: give a file name such as {path / 'final.pt'}")
    check_regular_or_absent(path, what)
    check_writable_dir(path.parent, f"{what} {path}")
    return path


def special_kind(path: str | os.PathLike) -> Optional[str]:
    """What ``path`` is when it is there but not a regular file ("a FIFO (named pipe)",
    "a symbolic link (to /x)", "a folder", ...); None when it is a regular file or absent."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # absent (a file above it is reported by the folder check)
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return f"a symbolic link (to {os.readlink(path)})"
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_regular_or_absent(path: str | os.PathLike, what: str = "file") -> Path:
    """Refuse to write over anything but a regular file: a write renames a new file over the
    path, which would turn a device node or a FIFO into a plain file (``/dev/null`` as root)
    and replace a symbolic link instead of writing where it points."""
    path = Path(path)
    try:
        kind = special_kind(path)
    except OSError as err:
        raise WriteError(f"{what} {path}: {reason(err)}; {remedy(err, path.parent)}",
                         getattr(err, "errno", None), reason(err)) from None
    if kind:
        raise ValueError(f"{what} {path} is {kind}, not a regular file; give the path of a new or regular file")
    return path


#: A temporary file of :func:`atomic_open` (``<name>.<pid>.<random>.tmp``; before the PID was
#: added, ``<name>.<random>.tmp``) or of :func:`check_writable_dir`'s probe.
_TEMP_NAME = re.compile(r"^(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp$")
#: How long a temporary file must have gone unwritten before it counts as abandoned.
STALE_AFTER_S = 600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # someone else's process; or not a PID
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, names=None, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder``; returns those deleted.

    Only our own pattern is touched (``<name>.<pid>.<random>.tmp``, see :func:`atomic_open`,
    and ``.eva_write_test.<random>.tmp``), only regular files (never a link or a folder), and
    with ``names`` only the temporary files of those target names. A file counts as stale when
    **both** hold:

    * it has not been written for ``max_age_s`` (10 minutes): a writer that is alive writes its
      file within seconds (a 180 MB cache, a checkpoint) and renames it at once;
    * the PID in its name is not a live process on this machine (files named before the PID was
      added have only the age rule). A live PID may be a reused one: then the file waits for a
      later run; a writer on another machine sharing the folder has a PID not seen here, which
      is why the age rule alone never deletes a file younger than ``max_age_s``.

    Best effort: a file that cannot be deleted (read-only folder, gone already) is left.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    wanted = None if names is None else {*names, ".eva_write_test"}
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or (wanted is not None and match["target"] not in wanted):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < max_age_s:
                continue
        except OSError:
            continue
        if match["pid"] is not None and _pid_alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
