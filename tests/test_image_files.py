"""The shared file helpers of the programs (issue 28): image headers read before decoding, the pixel
and frame limits, decoding identical to OpenCV's, file names that are not UTF-8, bounded reads,
plain output names, outputs that stay under their root, and networks counted before they are built."""

from __future__ import annotations

import io
import os
import resource
import struct
import time

import cv2
import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from sfd_lab.checks import odd_files as odd
from sfd_utils.checkpoint import CheckpointError, build_bounded, safetensors_metadata, stored_values
from sfd_utils.files import (
    InputFileError,
    file_problem,
    json_depth,
    loads_json,
    output_dir,
    output_file,
    plain_name,
    read_bounded,
)
from sfd_utils.images import (
    DEFAULT_MAX_PIXELS,
    MAX_FRAMES,
    UnreadableImage,
    check_header,
    read_header,
    read_image,
    write_image,
)

BGR = np.ascontiguousarray(photo("chelsea")[50:87, 90:143, ::-1])  # 37 x 53, colour


def encoded(ext: str, img: np.ndarray = BGR, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def pil_bytes(fmt: str, frames: int = 1, **kwargs) -> bytes:
    ims = [Image.fromarray(np.full((37, 53, 3), 40 * i, np.uint8)) for i in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, fmt, save_all=frames > 1, append_images=ims[1:], **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, fmt",
    [
        (encoded(".png"), "PNG"),
        (encoded(".png", (BGR.astype(np.uint16) * 257)), "PNG"),
        (encoded(".jpg"), "JPEG"),
        (pil_bytes("JPEG", progressive=True, exif=Image.Exif().tobytes()), "JPEG"),
        (encoded(".webp"), "WebP"),
        (encoded(".webp", params=(cv2.IMWRITE_WEBP_QUALITY, 101)), "WebP"),  # lossless (VP8L)
        (encoded(".bmp"), "BMP"),
        (encoded(".tif"), "TIFF"),
        (pil_bytes("TIFF", big_tiff=True), "TIFF"),
        (encoded(".ppm"), "PNM"),
        (encoded(".pgm", BGR[..., 0]), "PNM"),
        (pil_bytes("GIF"), "GIF"),
    ],
)
def test_header_gives_the_size_opencv_decodes(data, fmt):
    header = read_header(data)
    assert (header.format, header.width, header.height, header.frames) == (fmt, 53, 37, 1)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "TIFF"])
def test_header_counts_frames(fmt):
    assert read_header(pil_bytes(fmt, frames=4)).frames == 4


def _patched(data: bytes, offset: int, packed: bytes) -> bytes:
    return data[:offset] + packed + data[offset + len(packed) :]


def claims() -> dict[str, bytes]:
    """Small files whose headers claim huge images, one per format."""
    jpg = encoded(".jpg")
    sof = next(i for i in range(2, len(jpg)) if jpg[i] == 0xFF and jpg[i + 1] == 0xC0)
    return {
        "PNG": _patched(encoded(".png"), 16, struct.pack(">II", 100_000, 100_000)),
        "JPEG": _patched(jpg, sof + 5, struct.pack(">HH", 65_000, 65_000)),
        "WebP": _patched(pil_bytes("WEBP", frames=2), 24, (16383).to_bytes(3, "little") * 2),
        "BMP": _patched(encoded(".bmp"), 18, struct.pack("<ii", 100_000, -100_000)),
        "GIF": _patched(pil_bytes("GIF"), 6, struct.pack("<HH", 65535, 65535)),
        # a directory of two LONG entries: ImageWidth, ImageLength = 100000
        "TIFF": b"II*\0"
        + struct.pack("<IH", 8, 2)
        + struct.pack("<HHII", 256, 4, 1, 100_000)
        + struct.pack("<HHII", 257, 4, 1, 100_000)
        + struct.pack("<I", 0),
    }


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WebP", "BMP", "GIF", "TIFF"])
def test_a_header_claiming_a_huge_image_is_refused_before_decoding(fmt, tmp_path):
    path = tmp_path / f"claim.{fmt.lower()}"
    path.write_bytes(claims()[fmt])
    header = read_header(path.read_bytes())
    assert header.format == fmt and header.width * header.height > DEFAULT_MAX_PIXELS
    t0 = time.perf_counter()
    with pytest.raises(UnreadableImage, match=rf"{fmt} header declares \d+x\d+ = .* Mpx, over the 67.1 Mpx limit"):
        read_image(str(path))
    assert time.perf_counter() - t0 < 1.0  # nothing decoded


def test_max_pixels_raises_and_lowers_the_limit():
    header = read_header(encoded(".png"))
    check_header(header, 53 * 37)
    with pytest.raises(UnreadableImage, match="over the 0.0 Mpx limit"):
        check_header(header, 53 * 37 - 1)
    big = read_header(claims()["PNG"])
    check_header(big, 100_000 * 100_000)  # --max-pixels 1e10 lets it through to the decoder


def test_frame_bomb_and_empty_and_foreign_files(tmp_path):
    gif = odd.gif_frames(tmp_path / "frames.gif")
    assert os.path.getsize(gif) < 2_000_000
    with pytest.raises(UnreadableImage, match=f"over {MAX_FRAMES} frames"):
        read_image(gif)
    few = odd.gif_frames(tmp_path / "few.gif", frames=3)
    assert read_image(few).shape[:2] == (1, 1)
    for name, data, why in (
        ("empty.png", b"", "an empty file"),
        ("text.png", b"hello", "no PNG, JPEG"),
        ("cut.png", encoded(".png")[:20], "corrupt or truncated image header"),
        ("bad.png", encoded(".png")[:60], "corrupt or truncated image"),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnreadableImage, match=why):
            read_image(str(tmp_path / name))


def test_files_that_are_not_files_are_refused_without_reading(tmp_path):
    loop = odd.symlink_loop(tmp_path)
    folder = odd.folder_named(tmp_path / "x.png")
    sparse = odd.sparse_file(tmp_path / "sparse.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "dangling.png")
    for path, why in (
        (loop, "symbolic link loop"),
        (folder, "a folder, not a file"),
        (sparse, "8.6 GB, over the 553.6 MB limit"),
        (str(tmp_path / "dangling.png"), "dangling link"),
        ("/dev/zero", "not a regular file"),
        (str(tmp_path / "none.png"), "no such file"),
    ):
        with pytest.raises(UnreadableImage, match=why):
            read_image(path)
    assert file_problem(sparse, None) is None  # the size limit is the caller's
    with pytest.raises(InputFileError, match="grew past the 10 bytes limit while being read"):
        read_bounded("/proc/self/status", 10, "status")  # stat says 0 bytes: the read itself is bounded


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tif"])
@pytest.mark.parametrize("flags", [cv2.IMREAD_UNCHANGED, cv2.IMREAD_COLOR, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR])
def test_decoding_equals_opencv(ext, flags, tmp_path):
    path = str(tmp_path / f"a{ext}")
    write_image(path, BGR)
    assert np.array_equal(read_image(path, flags), cv2.imread(path, flags))


def test_not_utf8_file_names_are_read_and_written(tmp_path):
    path = odd.not_utf8_name(tmp_path)
    assert not os.fsencode(path).decode("utf-8", "replace").isascii()
    with pytest.raises(UnicodeEncodeError):
        path.encode("utf-8")  # the name OpenCV's string API would be handed
    write_image(path, BGR)
    assert os.listdir(os.fsencode(str(tmp_path))) == [b"caf\xe9.png"]
    assert np.array_equal(read_image(path), BGR)


def test_json_depth_and_bounded_reads(tmp_path):
    assert json_depth('{"a": [1, {"b": "[[[["}], "c": "\\"]"}') == 3
    assert loads_json("[[1]]", "x") == [[1]] and loads_json(b'{"a": 1}', "x") == {"a": 1}
    with pytest.raises(InputFileError, match="nested 10000 levels deep"):
        loads_json("[" * 10_000 + "]" * 10_000, "deep.json")
    with pytest.raises(InputFileError, match="not valid JSON"):
        loads_json("{", "bad.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 101)
    with pytest.raises(InputFileError, match="big.json: 101 bytes, over the 100 bytes limit"):
        read_bounded(str(big), 100, "result")


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "x\0y", "é" * 200])
def test_plain_names_only(name):
    with pytest.raises(InputFileError, match="--name"):
        plain_name(name, "--name")


def test_outputs_stay_under_their_root(tmp_path):
    assert plain_name("run-1_final.v2", "--name") == "run-1_final.v2"
    root = output_dir(str(tmp_path / "out" / "deep"), "-o")
    outside = tmp_path / "victim.png"
    outside.write_bytes(b"keep me")
    os.symlink(outside, os.path.join(root, "a_out.png"))
    with pytest.raises(InputFileError, match="is a link; writing would follow it out of"):
        output_file(root, "a_out.png", "output")
    os.mkdir(os.path.join(root, "b_out.png"))
    with pytest.raises(InputFileError, match="is a folder, not a file"):
        output_file(root, "b_out.png", "output")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for path, why in ((str(a_file), "a file, not a folder"), (str(a_file / "sub"), "cannot create the folder")):
        with pytest.raises(InputFileError, match=why):
            output_dir(path, "-o")
    if os.path.isdir("/sys/kernel"):  # a folder even root cannot write into
        with pytest.raises(InputFileError, match="not writable"):
            output_dir("/sys/kernel", "-o")
    assert outside.read_bytes() == b"keep me"


def test_safetensors_metadata_is_bounded(tmp_path):
    deep = odd.deep_metadata_safetensors(tmp_path / "deep.safetensors")
    assert safetensors_metadata(deep)["network_options"].startswith("[[[")  # a string: parsed only when used
    big = odd.safetensors_with_metadata(tmp_path / "big.safetensors", {"x": "y" * (2 << 20)})
    with pytest.raises(CheckpointError, match="characters of safetensors metadata, over the"):
        safetensors_metadata(big)
    header = tmp_path / "header.safetensors"
    header.write_bytes((20 << 20).to_bytes(8, "little") + b"{" + b" " * 100)
    with pytest.raises(CheckpointError, match="a header of 20971520 bytes, over the"):
        safetensors_metadata(str(header))
    nested = tmp_path / "nested.safetensors"
    text = b'{"__metadata__": {"a": "b"}, "x": ' + b"[" * 50 + b"]" * 50 + b"}"
    nested.write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(CheckpointError, match="nested 51 levels deep"):
        safetensors_metadata(str(nested))
    assert stored_values(odd.huge_network_safetensors(tmp_path / "huge.safetensors")) == 1


def test_a_huge_network_is_refused_before_it_is_built():
    from basicsr.archs.rrdbnet_arch import RRDBNet

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="more than .* parameter values, more than the 1,000 its weights"):
        build_bounded(lambda: RRDBNet(3, 3, num_feat=256, num_block=500, num_grow_ch=32), 1000, "net")
    assert time.perf_counter() - t0 < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100_000  # kB: nothing allocated
    net = build_bounded(lambda: RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4), 10**6, "net")
    assert isinstance(net, RRDBNet) and next(net.parameters()).device.type == "cpu"
    with pytest.raises(CheckpointError, match="cannot be built"):
        build_bounded(lambda: torch.nn.Linear(-5, 3), 10**6, "net")
