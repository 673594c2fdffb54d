"""Output files that are never half-written and never replaced by accident (bottom layer: imports only errors).

- `atomic_write_text / _json / _jsonl / _bytes`: the content goes to a temporary file in the same folder, is
  fsynced, then `os.replace`d onto the target, so a crash or a full disk leaves the previous file intact.
- `disk_errors(path)`: a context that turns the OSErrors a user can fix (disk full, no permission, a file where a
  folder is expected, ...) into one-line `UserError`s naming the path.
- `replace_dir(path)`: build a directory in a temporary sibling, fsync it, then swap it in for `path` in one
  rename (the old one, if any, is removed only after the swap), so readers see the old or the new folder, whole.
- `guard_output(path, overwrite, inputs)`: refuse to replace an existing file without --overwrite, refuse to write
  an output onto one of the command's inputs, and check that the folder can be created and written.
"""

from __future__ import annotations

import contextlib
import errno
import io as _io
import json
import math
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

_FIXES = {
    errno.ENOSPC: ("disk full", "free some space or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere"),
    errno.EACCES: ("permission denied", "choose a folder you can write to"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write to"),
    errno.EROFS: ("read-only file system", "choose a writable folder"),
    errno.ENOTDIR: ("a file stands where a folder is needed", "choose another path"),
    errno.EISDIR: ("it is a folder, not a file", "pass a file path"),
    errno.ENAMETOOLONG: ("name too long", "choose a shorter path"),
}


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def user_error_from_os(e: OSError, path: str | Path | None = None) -> UserError | None:
    """A one-line UserError for an OSError the user can fix, or None for other errors."""
    if e.errno not in _FIXES:
        return None
    what, fix = _FIXES[e.errno]
    where = path if path is not None else (e.filename or "an output file")
    return UserError(f"cannot write '{where}': {what} ({e.strerror}): {fix}")


@contextlib.contextmanager
def disk_errors(path: str | Path) -> Iterator[None]:
    """Translate fixable OSErrors raised inside the block into a UserError naming `path`."""
    try:
        yield
    except OSError as e:
        err = user_error_from_os(e, path)
        if err is None:
            raise
        raise err from None


def _atomic(path: str | Path, write, mode: str) -> Path:
    path = Path(path)
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, mode) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _atomic(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic(path, lambda f: f.write(data), "wb")


@contextlib.contextmanager
def replace_dir(path: str | Path) -> Iterator[Path]:
    """`with replace_dir(out) as tmp: <write files into tmp>` -> `out` holds exactly those files afterwards; on an
    error nothing at `out` changes and the temporary folder is removed."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def finite_json(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (JSON has no NaN / Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_dumps(obj: Any, **kw) -> str:
    """Strict JSON (no bare NaN): non-finite floats become null."""
    return json.dumps(finite_json(obj), allow_nan=False, **kw)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1, default=None) -> Path:
    if default is not None:  # convert numpy scalars and the like first
        obj = json.loads(json.dumps(obj, default=default))
    return atomic_write_text(path, json_dumps(obj, indent=indent))


def atomic_write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    def write(f):
        for rec in records:
            f.write(json_dumps(rec) + "\n")
    return _atomic(path, write, "w")


def atomic_savefig(fig, path: str | Path, **kw) -> Path:
    """Save a matplotlib figure atomically (format from the suffix)."""
    buf = _io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **kw)
    return atomic_write_bytes(path, buf.getvalue())


def writable_location(path: str | Path, what: str = "--out") -> None:
    """Raise a UserError unless `path` could be created and written (its nearest existing ancestor is a
    writable folder, and no file sits where a folder is needed)."""
    p = Path(path).absolute()
    parent = p.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{what} '{path}': '{parent}' is a file, not a folder: choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} '{path}': folder '{parent}' is not writable: choose a folder you can write to")


def same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def guard_output(path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path | None] = (),
                 what: str = "--out") -> Path:
    """Check `path` before any work: not one of `inputs`, not an existing file unless `overwrite`, and in a
    writable place. Returns `path` as a Path."""
    p = Path(path)
    for inp in inputs:
        if inp is not None and same_file(p, inp):
            raise UserError(f"{what} '{path}' is also an input of this command: writing it would destroy the input; "
                            "choose another output path")
    if p.is_dir():
        raise UserError(f"{what} '{path}' is a folder: pass a file path")
    if p.exists() and not overwrite:
        raise UserError(f"{what} '{path}' already exists: pass --overwrite to replace it, or choose another path")
    writable_location(p, what)
    return p


def guard_output_dir(path: str | Path, names: Iterable[str], overwrite: bool = False, what: str = "--out") -> Path:
    """Like `guard_output` for a folder that receives the files `names`: refuse if one of them exists."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} '{path}' is a file, not a folder: choose a folder path")
    if not overwrite:
        taken = [n for n in names if (p / n).exists()]
        if taken:
            raise UserError(f"{what} '{path}' already holds {taken[0]}: pass --overwrite to replace it, or choose "
                            "another folder")
    writable_location(p / "x", what)
    return p
