"""Real photographs for the lab's evaluations, split by scene into train / val / test.

The committed manifest (``benchmarks/photos/manifest.json``) names about two dozen photographs that
Debian ships in its wallpaper packages (CC-BY / CC-BY-SA / CC0 photos in ``lomiri-wallpapers-16.04``,
LGPL-3 photos in ``plasma-workspace-wallpapers``), each with its author, licence, scene, split and the
SHA-256 of the packaged file. Nothing of the photos is in the repository: :func:`prepare_photos`
fetches the packages at run time without root (``apt-get download`` + ``dpkg-deb -x``, or ``.deb``
files the user already has), checks every file against the manifest, downsamples it x2 with area
filtering (which suppresses JPEG blocking, as Flickr2K-style sets do), crops it to a multiple of 8
and writes ``<root>/<split>/<name>.png`` plus ``<root>/prepared.json``. A folder of the user's own
photos (e.g. DIV2K) can be prepared the same way, one scene per file unless a ``scenes.json`` maps
file stems to scenes.

Held out means held out: no scene has photos in two splits (checked when a manifest is read).
:func:`photo_set` returns the prepared set, or, where nothing was prepared (CI, a fresh clone), the
scikit-image photos as a labelled fallback (``PhotoSet.source`` says which, and why).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST_PATH = os.path.join(ROOT, "benchmarks", "photos", "manifest.json")
DEFAULT_ROOT = os.path.join(ROOT, "datasets", "photos")
SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# the fallback: scikit-image's photos (sfd_utils.photos keeps their scenes apart); val = two grey photos
FALLBACK_VAL = ("camera", "coins")


class PhotosNotPrepared(FileNotFoundError):
    """The prepared photos are missing or do not match the manifest (the message says how to prepare)."""


@dataclasses.dataclass(frozen=True)
class Photo:
    """One photograph: where it comes from, which scene it shows, which split it belongs to."""

    name: str
    scene: str
    split: str
    author: str
    licence: str
    source: str  # a Debian package, "scikit-image" or "folder"
    path: str | None = None  # the prepared PNG (None: a scikit-image photo, loaded by name)

    def rgb(self):
        """(H, W, 3) uint8 RGB."""
        if self.path is None:
            from sfd_utils.photos import load_photo

            return load_photo(self.name)
        import cv2
        import numpy as np

        with open(self.path, "rb") as f:  # bytes, then imdecode: no file name reaches OpenCV
            img = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise PhotosNotPrepared(f"{self.path}: not a readable image; prepare the photos again")
        return img[:, :, ::-1].copy()


@dataclasses.dataclass
class PhotoSet:
    """The three splits; ``source`` is "debian", "folder: <path>" or "scikit-image fallback: <reason>"."""

    source: str
    manifest_sha256: str | None
    train: list[Photo]
    val: list[Photo]
    test: list[Photo]

    @property
    def fallback(self) -> bool:
        return self.source.startswith("scikit-image")

    def split(self, name: str) -> list[Photo]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
        return getattr(self, name)

    def scenes(self, name: str) -> list[str]:
        return sorted({p.scene for p in self.split(name)})


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str) -> str:
    from sfd_utils.downloads import sha256_file

    return sha256_file(path)


def read_manifest(path: str = MANIFEST_PATH) -> dict:
    """The manifest, checked: every entry complete, names unique, no scene in two splits."""
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    photos = manifest.get("photos")
    if not isinstance(photos, list) or not photos:
        raise ValueError(f"{path}: no 'photos' list")
    needed = ("name", "scene", "split", "author", "licence")
    names, scene_split = set(), {}
    for entry in photos:
        missing = [k for k in needed if not entry.get(k)]
        if missing:
            raise ValueError(f"{path}: photo {entry.get('name')!r} lacks {', '.join(missing)}")
        if entry["split"] not in SPLITS:
            raise ValueError(f"{path}: photo {entry['name']!r} has split {entry['split']!r}, not one of {SPLITS}")
        if entry["name"] in names:
            raise ValueError(f"{path}: photo name {entry['name']!r} appears twice")
        names.add(entry["name"])
        other = scene_split.setdefault(entry["scene"], entry["split"])
        if other != entry["split"]:
            raise ValueError(f"{path}: scene {entry['scene']!r} is in both {other} and {entry['split']}")
    return manifest


def _photos_of(manifest: dict, root: str, source: str) -> dict[str, list[Photo]]:
    out: dict[str, list[Photo]] = {s: [] for s in SPLITS}
    for e in manifest["photos"]:
        path = os.path.join(root, e["split"], f"{e['name']}.png")
        out[e["split"]].append(
            Photo(e["name"], e["scene"], e["split"], e["author"], e["licence"], e.get("package", source), path)
        )
    return out


def fallback_set(reason: str) -> PhotoSet:
    """scikit-image's photos, split by scene as sfd_utils.photos keeps them (labelled as a fallback)."""
    from sfd_utils.photos import HELDOUT_PHOTOS, SCENE, TRAIN_PHOTOS

    def photos(names, split):
        return [
            Photo(n, SCENE[n], split, "scikit-image", "BSD-3-Clause (scikit-image data)", "scikit-image") for n in names
        ]

    return PhotoSet(
        f"scikit-image fallback: {reason}",
        None,
        photos(TRAIN_PHOTOS, "train"),
        photos(FALLBACK_VAL, "val"),
        photos(HELDOUT_PHOTOS, "test"),
    )


def photo_set(root: str = DEFAULT_ROOT, allow_fallback: bool = True, manifest_path: str = MANIFEST_PATH) -> PhotoSet:
    """The prepared photos under ``root``; where they are absent or stale, the scikit-image fallback
    (``allow_fallback``) or :class:`PhotosNotPrepared` naming the fix."""
    try:
        return _prepared_set(root, manifest_path)
    except PhotosNotPrepared as err:
        if not allow_fallback:
            raise
        return fallback_set(str(err))


def _prepared_set(root: str, manifest_path: str) -> PhotoSet:
    record_path = os.path.join(root, "prepared.json")
    fix = f"run `python scripts/prepare_photos.py --root {os.path.relpath(root)}`"
    if not os.path.isfile(record_path):
        raise PhotosNotPrepared(f"no prepared photos in {root} ({fix})")
    with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
    if record.get("source") == "debian":
        manifest, manifest_sha = read_manifest(manifest_path), file_sha256(manifest_path)
        if record.get("manifest_sha256") != manifest_sha:
            raise PhotosNotPrepared(f"the photos in {root} were prepared from another manifest ({fix} again)")
        source = "debian"
    else:
        local = os.path.join(root, "manifest.json")
        manifest, manifest_sha = read_manifest(local), file_sha256(local)
        source = record.get("source", "folder")
    sets = _photos_of(manifest, root, source)
    for photo in (p for ps in sets.values() for p in ps):
        if not os.path.isfile(photo.path):
            raise PhotosNotPrepared(f"{photo.path} is missing ({fix} again)")
    return PhotoSet(source, manifest_sha, sets["train"], sets["val"], sets["test"])


# -- preparing ---------------------------------------------------------------------------------------
def _downsample(data: bytes, factor: int, multiple: int, what: str):
    """Decoded RGB image, area-downsampled by ``factor`` and cropped to a multiple of ``multiple``."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{what}: not a readable image")
    if factor > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    h, w = (img.shape[0] // multiple) * multiple, (img.shape[1] // multiple) * multiple
    if min(h, w) < 64:
        raise ValueError(f"{what}: too small after downsampling ({img.shape[1]}x{img.shape[0]})")
    return img[:h, :w]


def _write_png(img_bgr, path: str) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", img_bgr)
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)
    return sha256_bytes(buf.tobytes())


def _fetch_deb(package: str, version: str, debs_dir: str | None, work: str) -> str:
    """A ``.deb`` of ``package``: from ``debs_dir`` if it holds one, else ``apt-get download`` (no root)."""
    for folder in [debs_dir] if debs_dir else []:
        found = sorted(f for f in os.listdir(folder) if f.startswith(package + "_") and f.endswith(".deb"))
        if found:
            return os.path.join(folder, found[-1])
    if shutil.which("apt-get") is None:
        raise PhotosNotPrepared(
            f"apt-get is not available to fetch {package}: download {package}_*.deb by hand and pass "
            "--debs-dir, or prepare a folder of your own photos with --from-folder"
        )
    for spec in (f"{package}={version}", package):  # the manifest's version first, then what the mirror has
        proc = subprocess.run(["apt-get", "download", spec], cwd=work, capture_output=True, text=True)
        found = sorted(f for f in os.listdir(work) if f.startswith(package + "_") and f.endswith(".deb"))
        if proc.returncode == 0 and found:
            return os.path.join(work, found[-1])
    said = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
    raise PhotosNotPrepared(
        f"`apt-get download {package}` failed ({said}): check the network or pass --debs-dir with the .deb files"
    )


def prepare_photos(
    root: str = DEFAULT_ROOT,
    debs_dir: str | None = None,
    manifest_path: str = MANIFEST_PATH,
    allow_changed: bool = False,
    log=print,
) -> PhotoSet:
    """Fetch the manifest's packages, check and prepare every photo, write ``<root>/prepared.json``."""
    manifest = read_manifest(manifest_path)
    factor, multiple = int(manifest.get("downsample", 2)), int(manifest.get("crop_multiple", 8))
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sfd_photos_") as work:
        for package, version in manifest["packages"].items():
            deb = _fetch_deb(package, version, debs_dir, work)
            target = os.path.join(work, "x_" + package)
            subprocess.run(["dpkg-deb", "-x", deb, target], check=True, capture_output=True)
            log(f"{package}: {os.path.basename(deb)} unpacked")
            files[package] = target
        prepared = []
        for e in manifest["photos"]:
            member = os.path.join(files[e["package"]], e["member"])
            if not os.path.isfile(member):
                raise PhotosNotPrepared(f"{e['package']} has no {e['member']} (another package version?)")
            with open(member, "rb") as f:
                data = f.read()
            digest = sha256_bytes(data)
            if digest != e["sha256"] and not allow_changed:
                raise PhotosNotPrepared(
                    f"{e['member']} in {e['package']} differs from the manifest (sha256 {digest[:12]}..., expected "
                    f"{e['sha256'][:12]}...): another package version; --allow-changed uses it anyway"
                )
            img = _downsample(data, factor, multiple, e["member"])
            png = os.path.join(root, e["split"], f"{e['name']}.png")
            prepared.append({"name": e["name"], "png_sha256": _write_png(img, png), "size": list(img.shape[1::-1])})
            log(f"{e['split']:5s} {e['name']}: {img.shape[1]}x{img.shape[0]} ({e['scene']})")
    record = {"source": "debian", "manifest_sha256": file_sha256(manifest_path), "photos": prepared}
    _write_json(os.path.join(root, "prepared.json"), record)
    return _prepared_set(root, manifest_path)


def prepare_folder(folder: str, root: str, n_val: int = 2, n_test: int = 8, log=print) -> PhotoSet:
    """The user's own photos: one scene per file (or per ``scenes.json`` entry), split deterministically
    by the scenes' hashes (``n_test`` test scenes, ``n_val`` val scenes, the rest train)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--from-folder {folder}: not a folder")
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    scene_map = {}
    if os.path.isfile(os.path.join(folder, "scenes.json")):
        with open(os.path.join(folder, "scenes.json"), encoding="utf-8") as f:
            scene_map = json.load(f)
    scenes = sorted({scene_map.get(os.path.splitext(n)[0], os.path.splitext(n)[0]) for n in names})
    if len(scenes) < n_val + n_test + 1:
        raise ValueError(f"{folder}: {len(scenes)} scenes, need at least {n_val + n_test + 1} (val + test + train)")
    order = sorted(scenes, key=lambda s: sha256_bytes(s.encode()))
    split_of = {s: "test" if i < n_test else "val" if i < n_test + n_val else "train" for i, s in enumerate(order)}
    photos, prepared = [], []
    for n in names:
        stem = os.path.splitext(n)[0]
        scene = scene_map.get(stem, stem)
        with open(os.path.join(folder, n), "rb") as f:
            data = f.read()
        img = _downsample(data, 1, 8, os.path.join(folder, n))
        split = split_of[scene]
        png = os.path.join(root, split, f"{stem}.png")
        photos.append(
            {
                "name": stem,
                "scene": scene,
                "split": split,
                "author": "user-supplied",
                "licence": "user-supplied",
                "package": "folder",
                "sha256": sha256_bytes(data),
            }
        )
        prepared.append({"name": stem, "png_sha256": _write_png(img, png), "size": list(img.shape[1::-1])})
        log(f"{split:5s} {stem} ({scene})")
    _write_json(
        os.path.join(root, "manifest.json"), {"about": f"prepared from {os.path.abspath(folder)}", "photos": photos}
    )
    read_manifest(os.path.join(root, "manifest.json"))
    _write_json(
        os.path.join(root, "prepared.json"), {"source": f"folder: {os.path.abspath(folder)}", "photos": prepared}
    )
    return _prepared_set(root, MANIFEST_PATH)


def _write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
    os.replace(path + ".part", path)


# -- command line (scripts/prepare_photos.py; the parser is sfd_lab.bakeoff.cli.prepare_photos_parser) ---
def run_prepare_cli(a: argparse.Namespace) -> int:
    a.root = a.root or DEFAULT_ROOT
    if a.from_folder:
        ps = prepare_folder(a.from_folder, a.root, a.val, a.test)
    else:
        ps = prepare_photos(a.root, a.debs_dir, allow_changed=a.allow_changed)
    counts = ", ".join(f"{s} {len(ps.split(s))} photos / {len(ps.scenes(s))} scenes" for s in SPLITS)
    print(f"prepared {ps.source} photos in {os.path.relpath(a.root)}: {counts}")
    return 0
