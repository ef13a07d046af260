"""Image files for every program: sized from their header before decoding, never opened by OpenCV.

:func:`read_image` is the one way our programs read an image:

1. the file is checked and read by Python (:func:`sfd_utils.files.read_bounded`): a folder named
   ``x.png``, a link loop, a device or a file over the size limit is refused before a byte is read;
2. its header gives the format, width, height and frame count (PNG, JPEG, WebP, BMP, TIFF, GIF,
   PNM): more pixels than ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`, 67 Mpx: 8K UHD is
   33 Mpx) or more than :data:`MAX_FRAMES` frames is refused before the decoder allocates anything;
3. the bytes are decoded by ``cv2.imdecode`` (Pillow for what OpenCV cannot decode).

Any refusal is :class:`UnreadableImage` with the reason: programs name the file and skip it. File
names reach only Python's ``open``, never OpenCV's path functions, so a name that is not UTF-8
(Latin-1 from an old archive) is read and written like any other (:func:`write_image`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from sfd_utils.files import InputFileError, display, read_bounded, write_bytes

DEFAULT_MAX_PIXELS = 64 << 20  # 67.1 Mpx: 8K UHD (33.2 Mpx) and 45-61 Mpx camera photos pass
BYTES_PER_PIXEL = 8  # the largest uncompressed layout read (16-bit RGBA): bounds the file size
MAX_FRAMES = 1024  # frames / pages a file may declare; only the first is used
FORMATS = "PNG, JPEG, WebP, BMP, TIFF, GIF, PNM"


class UnreadableImage(ValueError):
    """A file that is not read as an image; the message says why (a program names the file and skips it)."""


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header declares: format, width and height of the first frame, frames."""

    format: str
    width: int
    height: int
    frames: int = 1


def max_file_bytes(max_pixels: int) -> int:
    """The size limit of an image file: the largest uncompressed image of ``max_pixels``, plus 16 MB
    of metadata (EXIF, ICC profiles, thumbnails)."""
    return max_pixels * BYTES_PER_PIXEL + (16 << 20)


# -- headers ------------------------------------------------------------------------------------------------
def _png(data: bytes) -> ImageHeader:
    width, height = struct.unpack(">II", data[16:24])
    frames, pos = 1, 8
    while pos + 8 <= len(data):  # an APNG's acTL chunk declares the frame count
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"acTL" and pos + 12 <= len(data):
            frames = struct.unpack(">I", data[pos + 8 : pos + 12])[0]
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return ImageHeader("PNG", width, height, frames)


def _jpeg(data: bytes) -> ImageHeader:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise UnreadableImage("corrupt JPEG (no marker where one belongs)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if height == 0:
                raise UnreadableImage("JPEG without a height in its header (DNL marker): not supported")
            return ImageHeader("JPEG", width, height)
        pos += 2 + length
    raise UnreadableImage("truncated JPEG (no frame header)")


def _gif(data: bytes) -> ImageHeader:
    width, height = struct.unpack("<HH", data[6:10])
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames, first = 0, None
    while pos < len(data) and data[pos] != 0x3B and frames <= MAX_FRAMES:
        if data[pos] == 0x21:  # extension: label, then data sub-blocks
            pos += 2
        elif data[pos] == 0x2C:  # image descriptor, optional local colour table, LZW code size
            if first is None and pos + 9 <= len(data):
                first = struct.unpack("<HH", data[pos + 5 : pos + 9])
            flags = data[pos + 9] if pos + 9 < len(data) else 0
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            frames += 1
        else:
            break  # damaged: the decoder names it
        while pos < len(data) and data[pos]:  # data sub-blocks up to the zero-length terminator
            pos += data[pos] + 1
        pos += 1
    if first is not None:  # a frame larger than the screen makes decoders grow the canvas
        width, height = max(width, first[0]), max(height, first[1])
    return ImageHeader("GIF", width, height, max(frames, 1))


def _webp(data: bytes) -> ImageHeader:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        frames, pos = 0, 12
        while pos + 8 <= len(data) and frames <= MAX_FRAMES:
            chunk, length = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            frames += chunk == b"ANMF"
            pos += 8 + length + (length & 1)
        return ImageHeader("WebP", width, height, max(frames, 1))
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    raise UnreadableImage("truncated or unknown WebP")


def _bmp(data: bytes) -> ImageHeader:
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("BMP", abs(width), abs(height))


def _tiff(data: bytes) -> ImageHeader:
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43  # BigTIFF: 8-byte offsets and counts
    head, entry, count_fmt, off_fmt = (16, 20, "Q", "Q") if big else (8, 12, "H", "I")
    offset = struct.unpack(order + off_fmt, data[head - (8 if big else 4) : head])[0]
    size, pages, seen = {}, 0, set()
    while offset and offset not in seen and pages <= MAX_FRAMES and offset + 8 <= len(data):
        seen.add(offset)
        n_size = struct.calcsize(count_fmt)
        n = struct.unpack(order + count_fmt, data[offset : offset + n_size])[0]
        start = offset + n_size
        for i in range(n if not size else 0):
            e = data[start + i * entry : start + (i + 1) * entry]
            if len(e) < entry:
                break
            tag, kind = struct.unpack(order + "HH", e[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
                value = e[(12 if big else 8) :]
                fmt = {3: "H", 4: "I", 16: "Q"}.get(kind, "I")
                size[tag] = struct.unpack(order + fmt, value[: struct.calcsize(fmt)])[0]
        pages += 1
        end = start + n * entry
        offset = struct.unpack(order + off_fmt, data[end : end + struct.calcsize(off_fmt)] or b"\0" * 8)[0]
    if 256 not in size or 257 not in size:
        raise UnreadableImage("TIFF without width and height in its first directory")
    return ImageHeader("TIFF", size[256], size[257], max(pages, 1))


def _pnm(data: bytes) -> ImageHeader:
    tokens = []
    for line in data[2:4096].split(b"\n"):
        tokens += line.split(b"#")[0].split()
        if len(tokens) >= 2:
            break
    try:
        return ImageHeader("PNM", int(tokens[0]), int(tokens[1]))
    except (IndexError, ValueError):
        raise UnreadableImage("PNM without width and height in its header") from None


def read_header(data: bytes) -> ImageHeader:
    """The format, size and frame count an image file's bytes declare (UnreadableImage when they are
    no image of the formats read here, or too short to say)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            if data[12:16] != b"IHDR":
                raise UnreadableImage("corrupt PNG (no IHDR header)")
            return _png(data)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return _gif(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"BM":
            return _bmp(data)
        if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
            return _tiff(data)
        if data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
            return _pnm(data)
    except struct.error:
        raise UnreadableImage("corrupt or truncated image header") from None
    raise UnreadableImage(f"not an image ({'an empty file' if not data else f'no {FORMATS} header'})")


def check_header(header: ImageHeader, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """UnreadableImage when ``header`` declares an empty image, more than ``max_pixels`` or more
    than :data:`MAX_FRAMES` frames."""
    w, h = header.width, header.height
    if w <= 0 or h <= 0:
        raise UnreadableImage(f"{header.format} header declares an empty {w}x{h} image")
    if w * h > max_pixels:
        raise UnreadableImage(
            f"{header.format} header declares {w}x{h} = {w * h / 1e6:.1f} Mpx, over the "
            f"{max_pixels / 1e6:.1f} Mpx limit (--max-pixels raises it)"
        )
    if header.frames > MAX_FRAMES:
        raise UnreadableImage(f"{header.format} declares over {MAX_FRAMES} frames (an animation bomb); not read")


# -- decoding -----------------------------------------------------------------------------------------------
def _pil_decode(data: bytes, flags: int) -> np.ndarray:
    """What OpenCV cannot decode, by Pillow (first frame), in OpenCV's layout for ``flags``."""
    import io

    import cv2
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)
            if not flags & cv2.IMREAD_IGNORE_ORIENTATION:  # as OpenCV: EXIF orientation unless UNCHANGED
                im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I;16") and flags & cv2.IMREAD_ANYDEPTH:
                return np.asarray(im).astype(np.uint16)
            if im.mode == "I" and flags & cv2.IMREAD_ANYDEPTH:
                arr = np.asarray(im)
                if arr.min() < 0 or arr.max() > 65535:
                    raise UnreadableImage("32-bit integer samples outside the 16-bit range")
                return arr.astype(np.uint16)
            if im.mode == "F" and flags & cv2.IMREAD_ANYDEPTH:
                return np.asarray(im, dtype=np.float32)
            keep_alpha = flags == cv2.IMREAD_UNCHANGED and "A" in im.mode
            rgb = np.asarray(im.convert("RGBA" if keep_alpha else "RGB"))
    except UnreadableImage:
        raise
    except Exception as err:  # Pillow's decoders raise many kinds; all mean "cannot decode"
        raise UnreadableImage(f"corrupt or truncated image ({type(err).__name__}: {err})") from None
    return np.ascontiguousarray(rgb[..., [2, 1, 0, 3]] if keep_alpha else rgb[..., ::-1])


def decode_image(data: bytes, flags: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> the array ``cv2.imdecode(data, flags)`` gives (default ``IMREAD_UNCHANGED``),
    after :func:`check_header`; UnreadableImage with the reason when it cannot be."""
    import cv2

    flags = cv2.IMREAD_UNCHANGED if flags is None else flags
    check_header(read_header(data), max_pixels)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        img = None
    if img is None:
        img = _pil_decode(data, flags)
    if img.size == 0:
        raise UnreadableImage("decodes to an empty image")
    return img


def read_image(path: str, flags: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """``cv2.imread(path, flags)`` done safely (see the module docstring): default ``IMREAD_UNCHANGED``
    (gray, BGR or BGRA; 8 or 16 bits). UnreadableImage naming the reason, for the caller to skip."""
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    try:
        data = read_bounded(path, max_file_bytes(max_pixels), "image")
    except InputFileError as err:
        raise UnreadableImage(str(err).split(": ", 1)[-1]) from None
    return decode_image(data, flags, max_pixels)


def encode_image(img: np.ndarray, ext: str, params: tuple[int, ...] = ()) -> bytes:
    """``cv2.imencode`` of ``img`` as ``ext`` (``.png``, ``jpg`` ...); ValueError when OpenCV cannot."""
    import cv2

    ext = "." + ext.lstrip(".")
    try:
        ok, buf = cv2.imencode(ext, img, list(params))
    except cv2.error as err:
        raise ValueError(f"OpenCV cannot encode a {img.dtype} {img.shape} image as {ext}: {err.err}") from None
    if not ok:
        raise ValueError(f"OpenCV cannot encode a {img.dtype} {img.shape} image as {ext}")
    return buf.tobytes()


def write_image(path: str, img: np.ndarray, params: tuple[int, ...] = ()) -> None:
    """Encode ``img`` in the format of ``path``'s extension and write it with Python (any file name)."""
    import os

    ext = os.path.splitext(path)[1]
    if not ext:
        raise ValueError(f"{display(path)}: no extension to choose the image format by")
    write_bytes(path, encode_image(img, ext, params))
