"""Small files that describe big or broken inputs, for the programs' input tests (issue 28).

Each maker writes one file (or folder, or link) and returns its path. They stay small on disk: a
PNG whose header claims 100000² pixels, a real PNG bomb (0.4 MB that decodes to 432 MB), a GIF of
65535 frames, a symlink loop, a folder named like an image, a file name that is not UTF-8, a sparse
file of 8 GB (no block written), pickled weights and safetensors files with hostile metadata.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import cv2
import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(path, width: int = 100_000, height: int = 100_000) -> str:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB pixels, with one compressed row of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return str(path)


def png_bomb(path, side: int = 12_000) -> str:
    """A valid PNG of ``side``² black RGB pixels (``side=12000``: 0.4 MB on disk, 432 MB decoded)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * side)
    parts = [comp.compress(row) for _ in range(side)]
    data = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return str(path)


def gif_frames(path, frames: int = 65535, width: int = 1, height: int = 1) -> str:
    """A GIF of ``frames`` 1x1 frames on a ``width`` x ``height`` screen (about 23 bytes per frame)."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", width, height) + bytes([0x80, 0, 0]) + b"\x00" * 3 + b"\xff" * 3)
    frame = b"\x21\xf9\x04\x00\x00\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00"
    frame += b"\x02\x02\x44\x01\x00"  # LZW: clear, pixel 0, end
    out += frame * frames + b"\x3b"
    with open(path, "wb") as f:
        f.write(bytes(out))
    return str(path)


def symlink_loop(folder, name: str = "loop_a.png", other: str = "loop_b.png") -> str:
    """Two links pointing at each other; returns the first."""
    a, b = os.path.join(folder, name), os.path.join(folder, other)
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def folder_named(path) -> str:
    os.makedirs(path)
    return str(path)


def text_file(path, text: str = "not an image") -> str:
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def sparse_file(path, size: int = 8 << 30) -> str:
    """A file of ``size`` bytes (default 8 GB) with no block written (``truncate``)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def not_utf8_name(folder, stem: bytes = b"caf\xe9", ext: str = ".png") -> str:
    """The path (a str holding surrogate escapes) of a file name that is Latin-1, not UTF-8."""
    return os.fsdecode(os.path.join(os.fsencode(str(folder)), stem + ext.encode()))


def write_png(path: str, bgr: np.ndarray) -> str:
    """Encode with OpenCV, write with Python (works for any file name)."""
    ok, buf = cv2.imencode(".png", bgr)
    assert ok
    with open(path, "wb") as f:
        f.write(buf.tobytes())
    return path


class _Evil:
    """Unpickling this would call os.getpid (harmless); weights-only loading must refuse it."""

    def __reduce__(self):
        return (os.getpid, ())


def pickled_weights(path) -> str:
    """A .pth whose pickle holds an object that would run code when unpickled."""
    import torch

    torch.save({"params": {"w": torch.zeros(1)}, "payload": _Evil()}, path)
    return str(path)


def safetensors_with_metadata(path, metadata: dict[str, str], tensors: dict | None = None) -> str:
    """A safetensors file with the given string metadata (and a tiny tensor by default)."""
    import torch
    from safetensors.torch import save_file

    save_file(tensors or {"w": torch.zeros(1)}, str(path), metadata=metadata)
    return str(path)


def deep_metadata_safetensors(path, depth: int = 10_000) -> str:
    """An export-format safetensors file whose ``network_options`` JSON is nested ``depth`` levels."""
    deep = "[" * depth + "]" * depth
    meta = {"format": "sfd-basicsr-generator", "format_version": "1", "architecture": "RRDBNet"}
    return safetensors_with_metadata(path, {**meta, "network_options": deep})


def huge_network_safetensors(path) -> str:
    """0.6 kB: export-format metadata naming an RRDBNet of 1.9 G parameters (7.4 GB in float32), one tiny tensor."""
    options = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 256, "num_block": 500, "num_grow_ch": 32}
    meta = {"format": "sfd-basicsr-generator", "format_version": "1", "architecture": "RRDBNet"}
    return safetensors_with_metadata(path, {**meta, "network_options": json.dumps({**options, "scale": 4})})
