"""Files the programs are given and the files they write: bounded, inside their output root.

Every program reads what a user names through :func:`read_bounded` (a regular file, at most a limit
of bytes, read by Python: a symlink loop, a folder, a device such as ``/dev/zero`` or a sparse
8 GB file is one line naming it, never a read that does not end) and writes only through
:func:`output_dir` / :func:`output_file`: file names built from options (``--name``, ``--suffix``)
are one plain name, never a path; a target that is a folder or a link is refused, so nothing is
written outside the output root. Standard library only.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile

TEXT_LIMIT = 64 << 20  # result JSONs, score tables: far above any real one
JSON_DEPTH = 64  # nesting our JSON files never approach; deeper text is refused before parsing
NAME_BYTES = 255  # the longest file name common file systems accept


class InputFileError(ValueError):
    """A file or name the user gave cannot be used; the message names it and why (one line)."""


def human_bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def display(path: str) -> str:
    """``path`` printable in any terminal and in UTF-8 files: bytes that are not UTF-8 (a Latin-1 file
    name) appear as ``\\xe9`` instead of failing the print."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_problem(path: str, max_bytes: int | None = None) -> str | None:
    """Why ``path`` cannot be read as a file of at most ``max_bytes``, in a few words; None if it can.
    Follows links (a link loop or a dangling link is a problem) without opening anything."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "dangling link" if os.path.islink(path) else "no such file"
    except OSError as err:  # ELOOP (link loop), EACCES, ENAMETOOLONG ...
        return "symbolic link loop" if err.errno == errno.ELOOP else (err.strerror or type(err).__name__).lower()
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket)"
    if max_bytes is not None and st.st_size > max_bytes:
        return f"{human_bytes(st.st_size)}, over the {human_bytes(max_bytes)} limit"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def read_bounded(path: str, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path``; InputFileError naming ``what`` and the file when it is not a regular
    readable file of at most ``max_bytes`` (checked before reading, and again while reading)."""
    problem = file_problem(path, max_bytes)
    if problem is None:
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as err:
            problem = (err.strerror or type(err).__name__).lower()
        else:
            if len(data) <= max_bytes:
                return data
            problem = f"grew past the {human_bytes(max_bytes)} limit while being read"
    raise InputFileError(f"{what} {display(path)}: {problem}")


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads_json(text: str | bytes, what: str, max_depth: int = JSON_DEPTH):
    """``json.loads`` that refuses, in one line, text nested deeper than ``max_depth`` (Python's parser
    would overflow its recursion limit) or that is not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputFileError(f"{what}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    depth = json_depth(text)
    if depth > max_depth:
        raise InputFileError(f"{what}: JSON nested {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(text)
    except ValueError as err:
        raise InputFileError(f"{what}: not valid JSON ({err})") from None


def plain_name(value: str, option: str) -> str:
    """``value`` when it is one plain file name (no folder part, not ``.``/``..``, no NUL, at most 255
    bytes); InputFileError naming ``option`` otherwise. For names built from options (``--name``)."""
    seps = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    why = None
    if not value:
        why = "is empty"
    elif any(s in value for s in seps):
        why = "holds a folder separator"
    elif value in (".", ".."):
        why = "is not a name"
    elif "\0" in value:
        why = "holds a NUL byte"
    elif len(os.fsencode(value)) > NAME_BYTES:
        why = f"is longer than {NAME_BYTES} bytes"
    if why:
        raise InputFileError(f"{option} {display(value)!r} {why}: give a plain file name (letters, digits, - _ .)")
    return value


def output_dir(path: str, option: str) -> str:
    """Create the output folder ``path`` (given as ``option``) if needed and check that files can be
    written into it; InputFileError in one line when it is a file, cannot be created or is not writable."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise InputFileError(f"{option} {display(path)}: {file_problem(path) or 'a file'}, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:  # a parent is a file, permission denied, read-only file system
        raise InputFileError(f"{option} {display(path)}: cannot create the folder ({err.strerror or err})") from None
    try:  # a real write: access() says yes to root on read-only or special file systems
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise InputFileError(f"{option} {display(path)}: the folder is not writable ({err.strerror or err})") from None
    return path


def output_file(root: str, name: str, option: str) -> str:
    """``root/name`` for a file to write: ``name`` one plain name (see :func:`plain_name`), the target
    neither a folder nor a link (a link would write outside ``root``); InputFileError naming ``option``."""
    target = os.path.join(root, plain_name(name, option))
    if os.path.islink(target):
        raise InputFileError(f"{option}: {display(target)} is a link; writing would follow it out of {display(root)}")
    if os.path.isdir(target):
        raise InputFileError(f"{option}: {display(target)} is a folder, not a file to write")
    return target


def output_path(path: str, option: str) -> str:
    """A file path given whole (``--csv report.csv``): its folder is created and checked as by
    :func:`output_dir`, the file itself checked as by :func:`output_file`."""
    folder, name = os.path.split(path)
    return output_file(output_dir(folder or ".", option), name, option)


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` with Python (any file name the OS accepts, whatever its encoding)."""
    with open(path, "wb") as f:
        f.write(data)
