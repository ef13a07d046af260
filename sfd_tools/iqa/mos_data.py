"""Inputs of SFD-IQA evaluation: image files, folders and opinion-score tables (CSV/TSV, KonIQ-10k,
LIVE Challenge), read with the standard library, OpenCV/Pillow and scipy.io.

Image convention: :func:`read_image` returns (H, W, 3) **RGB** in the file's own sample type (uint8,
uint16 or float32), so a huge 8-bit image stays 8-bit until it is cut into crops. Grayscale is
replicated to 3 channels; an alpha channel is **dropped** (not composited on any background:
IQA data sets are opaque photos, and compositing would invent pixels). EXIF orientation is applied.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from sfd_utils.files import TEXT_LIMIT, InputFileError, display, file_problem, read_bounded
from sfd_utils.images import UnreadableImage
from sfd_utils.images import read_image as read_any_image

KONIQ_CSV = "koniq10k_scores_and_distributions.csv"
KONIQ_IMAGES = "1024x768"
LIVEC_NAMES = os.path.join("Data", "AllImages_release.mat")
LIVEC_MOS = os.path.join("Data", "AllMOS_release.mat")
LIVEC_IMAGES = "Images"
LIVEC_N_TRAIN = 7  # t1.bmp ... t7.bmp, the training images of the release; excluded by default
TABLE_EXTS = (".csv", ".tsv", ".txt")
IMAGE_NAME_ENDS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
NAME_COLUMNS = ("image_name", "image", "img_name", "name", "filename", "file_name", "file", "path", "img")
MOS_COLUMNS = ("MOS", "mos", "Mos", "mos_score", "score", "Score", "mean_opinion_score")


class InputError(ValueError):
    """The input cannot be evaluated at all (empty folder, missing column, unknown layout, ...)."""


@dataclass
class Item:
    """One image to score: display name, file path, opinion score (None without MOS)."""

    name: str
    path: str
    mos: float | None = None


# -- images ----------------------------------------------------------------------------------------
def read_image(path: str, max_pixels: int | None = None) -> np.ndarray:
    """File -> (H, W, 3) RGB array, uint8 / uint16 / float32 as stored (see module docstring), read by
    :func:`sfd_utils.images.read_image` (sized from its header before decoding, at most ``max_pixels``).

    Raises UnreadableImage with the reason (missing, corrupt, not an image, too large, unsupported type).
    """
    import cv2

    # ANYDEPTH keeps 16-bit; ANYCOLOR keeps gray as gray and drops alpha; EXIF orientation applied.
    img = read_any_image(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR, max_pixels)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise UnreadableImage(f"empty or malformed image (shape {img.shape})")
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        if np.issubdtype(img.dtype, np.floating):
            img = img.astype(np.float32)
        else:
            raise UnreadableImage(f"unsupported sample type {img.dtype} (8/16-bit integer or float only)")
    if img.shape[2] in (1, 2):
        return np.ascontiguousarray(np.repeat(img[..., :1], 3, axis=2))  # gray (+ alpha): replicate gray
    return np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB, alpha dropped


# -- folders ---------------------------------------------------------------------------------------
def list_folder(folder: str, recursive: bool = False) -> list[Item]:
    """Every regular, non-hidden file of ``folder`` (sorted; subfolders with ``recursive``) as an Item.

    All files are listed, not only known image extensions: a file that is not an image is then
    reported and skipped by name instead of silently ignored; so is a subfolder named like an image
    (``x.png/``) that ``recursive`` would not enter. Raises InputError when there is none.
    """
    if not os.path.isdir(folder):
        raise InputError(f"{folder!r} is not a folder")
    items = []
    for root, dirs, files in os.walk(folder):
        if not recursive:
            files = [*files, *(d for d in dirs if d.lower().endswith(IMAGE_NAME_ENDS))]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for f in sorted(files):
            if not f.startswith("."):
                path = os.path.join(root, f)
                items.append(Item(os.path.relpath(path, folder), path))
    if not items:
        raise InputError(f"folder {folder!r} holds no files to score" + ("" if recursive else " (try --recursive)"))
    return items


# -- opinion-score tables ------------------------------------------------------------------------------
def _pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, flag: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise InputError(f"{what} column {wanted!r} is not in the table; its columns are {columns} (set {flag})")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise InputError(f"no {what} column found (looked for {list(candidates)}); columns are {columns}: set {flag}")


def table_image_path(image_dir: str, name: str, where: str) -> str:
    """``image_dir/name`` for an image named by a score table; InputError when the name is absolute or
    climbs out of ``image_dir`` with ``..`` (a table must not make the program read other files)."""
    parts = name.replace("\\", "/").split("/")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or os.path.splitdrive(name)[0] or ".." in parts:
        raise InputError(
            f"{where}: image name {name!r} is absolute or leaves the image folder; names in a score table "
            "are relative to --image-dir"
        )
    return os.path.join(image_dir, *[p for p in parts if p not in ("", ".")])


def read_mos_table(
    table: str,
    image_dir: str | None = None,
    name_col: str | None = None,
    mos_col: str | None = None,
    split: str | None = None,
    split_col: str = "set",
) -> list[Item]:
    """CSV/TSV with a header: image name column + MOS column -> Items (image path = image_dir/name).

    Delimiter: tab for .tsv, otherwise sniffed among , ; tab. ``split`` keeps rows whose ``split_col``
    equals it (e.g. KonIQ's sets file: training / validation / test). image_dir default: the table's
    folder. Raises InputError for a missing column, a non-numeric MOS or an empty table.
    """
    if not os.path.lexists(table):
        raise InputError(f"MOS table {display(table)!r} does not exist")
    try:
        text = read_bounded(table, TEXT_LIMIT, "MOS table").decode("utf-8-sig")
    except InputFileError as err:
        raise InputError(str(err)) from None
    except UnicodeDecodeError as err:
        raise InputError(
            f"MOS table {display(table)!r} is not a text (UTF-8) table: {err.reason} at byte {err.start}"
        ) from None
    if table.lower().endswith(".tsv"):
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if not columns:
        raise InputError(f"MOS table {table!r} is empty (no header row)")
    reader.fieldnames = columns
    name_key = _pick_column(columns, name_col, NAME_COLUMNS, "image name", "--name-col")
    mos_key = _pick_column(columns, mos_col, MOS_COLUMNS, "MOS", "--mos-col")
    if split is not None and split_col not in columns:
        raise InputError(f"--split {split!r} needs a {split_col!r} column; the table's columns are {columns}")
    image_dir = image_dir if image_dir is not None else os.path.dirname(os.path.abspath(table))
    items = []
    for line, row in enumerate(reader, start=2):
        if split is not None and (row.get(split_col) or "").strip() != split:
            continue
        name = (row.get(name_key) or "").strip()
        if not name:
            continue
        try:
            mos = float(row[mos_key])
        except (TypeError, ValueError) as err:
            raise InputError(f"{table}, line {line}: MOS {row.get(mos_key)!r} of {name!r} is not a number") from err
        items.append(Item(name, table_image_path(image_dir, name, f"{display(table)}, line {line}"), mos))
    if not items:
        raise InputError(f"MOS table {table!r} has no rows" + (f" with {split_col} == {split!r}" if split else ""))
    return items


def read_koniq(root: str, image_dir: str | None = None, split: str | None = None) -> list[Item]:
    """KonIQ-10k as published: ``root/koniq10k_scores_and_distributions.csv`` (image_name, MOS) and
    images in ``root/1024x768/``. ``root`` may also be the CSV itself."""
    table = root if os.path.isfile(root) else os.path.join(root, KONIQ_CSV)
    base = os.path.dirname(os.path.abspath(table))
    return read_mos_table(table, image_dir or os.path.join(base, KONIQ_IMAGES), "image_name", "MOS", split)


def _mat_strings(value) -> list[str]:
    out = []
    for e in np.asarray(value, dtype=object).ravel():
        while isinstance(e, np.ndarray):  # MATLAB cell -> nested object/char arrays
            e = e.ravel()[0] if e.size else ""
        out.append(str(e).strip())
    return out


def read_livec(root: str, image_dir: str | None = None, include_train: bool = False) -> list[Item]:
    """LIVE In the Wild Image Quality Challenge as published: ``Data/AllImages_release.mat`` (key
    ``AllImages_release``: image names), ``Data/AllMOS_release.mat`` (key ``AllMOS_release``) and
    ``Images/``. The first 7 entries (t1.bmp..t7.bmp, the release's training images) are left out
    unless ``include_train`` (the usual 1162-image protocol)."""
    import scipy.io

    names_file, mos_file = os.path.join(root, LIVEC_NAMES), os.path.join(root, LIVEC_MOS)
    for f in (names_file, mos_file):
        if not os.path.isfile(f):
            raise InputError(f"LIVE Challenge layout: {f!r} does not exist (give the folder holding Data/ and Images/)")
        problem = file_problem(f, TEXT_LIMIT)
        if problem:
            raise InputError(f"LIVE Challenge layout: {f!r}: {problem}")
    try:
        names = _mat_strings(scipy.io.loadmat(names_file)["AllImages_release"])
        mos = np.asarray(scipy.io.loadmat(mos_file)["AllMOS_release"], dtype=np.float64).ravel()
    except KeyError as err:
        raise InputError(f"LIVE Challenge .mat files lack the key {err}") from err
    except (ValueError, NotImplementedError, OSError) as err:
        raise InputError(f"cannot read the LIVE Challenge .mat files: {err}") from err
    if len(names) != len(mos):
        raise InputError(f"LIVE Challenge: {len(names)} image names but {len(mos)} MOS values")
    image_dir = image_dir or os.path.join(root, LIVEC_IMAGES)
    start = 0 if include_train else LIVEC_N_TRAIN
    pairs = zip(names[start:], mos[start:])
    return [Item(n, table_image_path(image_dir, n, f"{names_file}"), float(m)) for n, m in pairs]


def resolve_inputs(
    source: str,
    dataset: str = "auto",
    mos: str | None = None,
    image_dir: str | None = None,
    name_col: str | None = None,
    mos_col: str | None = None,
    split: str | None = None,
    livec_include_train: bool = False,
    recursive: bool = False,
) -> tuple[list[Item], str]:
    """What to score -> (items, layout name: image | folder | table | koniq | livec).

    dataset 'auto': a KonIQ/LIVE Challenge folder by its files, a .csv/.tsv/.txt file as a MOS table,
    another file as one image, another folder as a folder of images (with MOS from ``mos`` if given).
    """
    if not os.path.exists(source):
        raise InputError(f"input {source!r} does not exist")
    is_dir = os.path.isdir(source)
    layout = dataset
    if dataset == "auto":
        if mos:
            layout = "table"
        elif is_dir and os.path.isfile(os.path.join(source, KONIQ_CSV)):
            layout = "koniq"
        elif os.path.basename(source) == KONIQ_CSV:
            layout = "koniq"
        elif is_dir and os.path.isfile(os.path.join(source, LIVEC_MOS)):
            layout = "livec"
        elif is_dir:
            layout = "folder"
        elif source.lower().endswith(TABLE_EXTS):
            layout = "table"
        else:
            layout = "image"
    if layout == "koniq":
        return read_koniq(source, image_dir, split), layout
    if layout == "livec":
        return read_livec(source, image_dir, livec_include_train), layout
    if layout == "table":
        table = mos or source
        default_dir = source if is_dir else None
        return read_mos_table(table, image_dir or default_dir, name_col, mos_col, split), layout
    if layout == "folder":
        return list_folder(source, recursive), layout
    if layout == "image":
        if is_dir:
            raise InputError(f"--dataset image: {source!r} is a folder")
        return [Item(os.path.basename(source), source)], layout
    raise InputError(f"unknown dataset layout {dataset!r}")
