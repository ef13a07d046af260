"""The lab's real photographs: the committed manifest keeps scenes apart, preparation checks and writes
what the manifest says (from a .deb built here, no network), and a fresh clone falls back, labelled."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from sfd_lab import photos as ph
from sfd_utils.photos import load_photo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "prepare_photos.py")


def test_committed_manifest_holds_out_by_scene():
    m = ph.read_manifest()
    entries = m["photos"]
    scenes = {s: {e["scene"] for e in entries if e["split"] == s} for s in ph.SPLITS}
    assert len(scenes["test"]) >= 8 and len(scenes["val"]) >= 2 and len(scenes["train"]) >= 8
    assert not (scenes["train"] & scenes["val"]) and not (scenes["train"] & scenes["test"])
    assert not (scenes["val"] & scenes["test"])
    for e in entries:
        assert len(e["sha256"]) == 64 and e["package"] in m["packages"] and e["member"].endswith(".jpg")
        assert e["author"] and e["licence"]
    # illustrations stay out (named in the manifest's note), the photos in
    assert not any("umang" in e["member"] or "/Altai/" in e["member"] for e in entries)


def test_manifest_with_a_scene_in_two_splits_is_refused(tmp_path):
    m = ph.read_manifest()
    bad = copy.deepcopy(m)
    test_entry = next(e for e in bad["photos"] if e["split"] == "test")
    next(e for e in bad["photos"] if e["split"] == "train")["scene"] = test_entry["scene"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="is in both"):
        ph.read_manifest(str(path))


def test_fresh_clone_falls_back_to_scikit_image_and_says_so(tmp_path):
    ps = ph.photo_set(str(tmp_path / "nothing"))
    assert ps.fallback and "no prepared photos" in ps.source and ps.manifest_sha256 is None
    assert not set(ps.scenes("train")) & set(ps.scenes("test"))
    img = ps.test[0].rgb()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    with pytest.raises(ph.PhotosNotPrepared, match="prepare_photos.py"):
        ph.photo_set(str(tmp_path / "nothing"), allow_fallback=False)


def _fake_package(tmp_path, manifest: dict) -> str:
    """A .deb holding the manifest's members as JPEGs of scikit-image photos; returns the debs folder."""
    package = next(iter(manifest["packages"]))
    tree = tmp_path / "pkgroot"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {manifest['packages'][package]}\nArchitecture: all\n"
        "Maintainer: test <t@example.org>\nDescription: test photos\n"
    )
    for e, name in zip(manifest["photos"], ("astronaut", "coffee", "rocket", "chelsea")):
        member = tree / e["member"]
        member.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".jpg", cv2.resize(load_photo(name)[:, :, ::-1], None, fx=2, fy=2))
        member.write_bytes(buf.tobytes())
        e["sha256"] = ph.sha256_bytes(buf.tobytes())
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "-b", str(tree), str(debs / f"{package}_1_all.deb")], check=True, capture_output=True)
    return str(debs)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_prepare_from_a_deb_checks_hashes_and_writes_the_splits(tmp_path):
    manifest = {
        "packages": {"sfd-test-photos": "1"},
        "downsample": 2,
        "crop_multiple": 8,
        "photos": [
            {
                "name": n,
                "scene": n,
                "split": s,
                "author": "a",
                "licence": "CC0-1.0",
                "package": "sfd-test-photos",
                "member": f"usr/share/p/{n}.jpg",
            }
            for n, s in (("a", "train"), ("b", "train"), ("c", "val"), ("d", "test"))
        ],
    }
    debs = _fake_package(tmp_path, manifest)
    mpath = tmp_path / "manifest.json"
    mpath.write_text(json.dumps(manifest))
    root = str(tmp_path / "photos")
    ps = ph.prepare_photos(root, debs, manifest_path=str(mpath), log=lambda _: None)
    assert ps.source == "debian" and ps.manifest_sha256 == ph.file_sha256(str(mpath))
    assert [p.name for p in ps.train] == ["a", "b"] and [p.name for p in ps.test] == ["d"]
    a = ps.train[0].rgb()
    h, w = load_photo("astronaut").shape[:2]
    assert a.shape == (h // 8 * 8, w // 8 * 8, 3)  # x2 up in the package, x2 (area) down, cropped to 8
    assert np.abs(a.astype(float) - load_photo("astronaut")[: a.shape[0], : a.shape[1]]).mean() < 6
    # the same set comes back from disk; a changed manifest makes it stale (fallback names why)
    assert [p.name for p in ph.photo_set(root, manifest_path=str(mpath)).val] == ["c"]
    manifest["photos"][0]["author"] = "someone else"
    mpath.write_text(json.dumps(manifest))
    assert "another manifest" in ph.photo_set(root, manifest_path=str(mpath)).source
    # a file that differs from the manifest is refused, naming it; --allow-changed takes it
    manifest["photos"][0]["sha256"] = "0" * 64
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(ph.PhotosNotPrepared, match="usr/share/p/a.jpg.*differs"):
        ph.prepare_photos(root, debs, manifest_path=str(mpath), log=lambda _: None)
    ph.prepare_photos(root, debs, manifest_path=str(mpath), allow_changed=True, log=lambda _: None)


def test_prepare_a_folder_keeps_a_scene_in_one_split(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    names = ("astronaut", "coffee", "rocket", "chelsea", "motorcycle_left", "motorcycle_right", "camera", "coins")
    for n in names:
        img = load_photo(n)
        cv2.imwrite(str(folder / f"{n}.png"), img[:, :, ::-1] if img.ndim == 3 else img)
    (folder / "scenes.json").write_text(json.dumps({"motorcycle_left": "motorcycle", "motorcycle_right": "motorcycle"}))
    root = str(tmp_path / "prepared")
    ps = ph.prepare_folder(str(folder), root, n_val=2, n_test=3, log=lambda _: None)
    assert ps.source.startswith("folder:") and len(ps.scenes("test")) == 3 and len(ps.scenes("val")) == 2
    moto = {p.split for s in ph.SPLITS for p in ps.split(s) if p.scene == "motorcycle"}
    assert len(moto) == 1
    assert sum(len(ps.split(s)) for s in ph.SPLITS) == len(names)
    with pytest.raises(ValueError, match="need at least"):
        ph.prepare_folder(str(folder), str(tmp_path / "p2"), n_val=3, n_test=8, log=lambda _: None)


def test_script_exit_statuses(tmp_path):
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--from-folder", str(tmp_path / "absent"), "--root", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "not a folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, SCRIPT, "--from-f", "x"], capture_output=True, text=True)
    assert proc.returncode == 2  # no abbreviations
