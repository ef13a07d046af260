"""The quality-aware tiny CLIP on the lab's real photographs: its settings follow the photo set (its train
split where prepared, scikit-image's photos otherwise), training reads the train split only, the zero-shot
evaluation takes any held-out photos, and the bake-off's default stays the scikit-image CLIP."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from sfd_lab.checks import quality_clip as qc
from sfd_lab.photos import Photo, PhotoSet, fallback_set


def fake_set(tmp_path, sha: str = "ab" * 32) -> PhotoSet:
    """A prepared-looking photo set of small PNGs: two train photos, one val, one test."""
    import cv2

    rng = np.random.default_rng(0)
    split = {}
    for name, which in (("lake", "train"), ("moss", "train"), ("clock", "val"), ("cups", "test")):
        path = tmp_path / which / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (160, 200, 3), dtype=np.uint8))
        split.setdefault(which, []).append(Photo(name, f"{name} scene", which, "a", "CC0", "pkg", str(path)))
    return PhotoSet("debian", sha, split["train"], split["val"], split["test"])


def test_photo_set_settings_follow_the_photo_set(tmp_path):
    assert qc.photo_set_settings(fallback_set("not prepared")) == qc.QualityCLIPSettings()
    s = qc.photo_set_settings(fake_set(tmp_path))
    assert s.photos == ("lake", "moss") and s.photo_source == "debian:" + "ab" * 6
    assert s.key() != qc.QualityCLIPSettings().key()
    assert s.key() != dataclasses.replace(s, photo_source="debian:" + "cd" * 6).key()


def test_scikit_image_keys_are_those_of_files_trained_before_the_photo_set():
    s = qc.QualityCLIPSettings()
    fields = {k: v for k, v in dataclasses.asdict(s).items() if k != "photo_source"}
    blob = json.dumps({"version": qc.TRAINER_VERSION, **fields}, sort_keys=True)
    assert s.key() == hashlib.sha256(blob.encode()).hexdigest()[:12]


def test_training_reads_the_train_split_only(tmp_path, monkeypatch):
    ps = fake_set(tmp_path)
    monkeypatch.setattr("sfd_lab.photos.photo_set", lambda **kw: ps)
    read = []
    rgb = Photo.rgb
    monkeypatch.setattr(Photo, "rgb", lambda self: read.append(self.name) or rgb(self))
    s = dataclasses.replace(qc.photo_set_settings(ps), steps=2, batch=8, warmup=1)
    facts = qc.train_quality_clip(str(tmp_path / "q.pt"), s, evaluate=False)
    assert set(read) == {"lake", "moss"} and facts["photo_source"] == s.photo_source
    pool = qc._photo_pool(s, 64)
    assert {scene for scene, _ in pool} == {"lake scene", "moss scene"}  # captions name the photo set's scenes
    with pytest.raises(ValueError, match=r"\['clock'\] are not in the photo set's train split"):
        qc.train_quality_clip(str(tmp_path / "x.pt"), dataclasses.replace(s, photos=("lake", "clock")))
    with pytest.raises(FileNotFoundError, match="come from manifest abababababab"):
        qc.training_photos(dataclasses.replace(s, photo_source="debian:" + "cd" * 6))
    with pytest.raises(ValueError, match="photo_source: 'flickr'"):
        qc.training_photos(dataclasses.replace(s, photo_source="flickr"))


def test_heldout_crops_of_any_photos_spread_evenly(tmp_path):
    ps = fake_set(tmp_path)
    sharp, degraded = qc.heldout_eval_set(64, ps.val + ps.test)
    assert sharp.shape == (2 * 2 * 3, 3, 64, 64)  # 160x200: 2 x 3 non-overlapping 64² crops per photo
    assert set(degraded) == set(qc.DEGRADATION_KINDS) and degraded["jpeg"].shape == sharp.shape
    capped, _ = qc.heldout_eval_set(64, ps.test, max_per_photo=2)
    full, _ = qc.heldout_eval_set(64, ps.test)
    assert capped.shape[0] == 2
    assert np.array_equal(capped[0].numpy(), full[0].numpy()) and np.array_equal(capped[1].numpy(), full[-1].numpy())


def test_the_default_clip_is_the_scikit_image_one(tmp_path, monkeypatch):
    """cached_quality_clip() without settings: the scikit-image recipe (it beat the photo-set CLIP on the
    validation crops), whatever photos are prepared."""
    monkeypatch.setattr("sfd_lab.photos.photo_set", lambda **kw: fake_set(tmp_path))
    trained = []
    monkeypatch.setattr(qc, "train_quality_clip", lambda path, s, evaluate: trained.append(s))
    qc.cached_quality_clip(cache_dir=str(tmp_path / "cache"), reuse=())
    assert trained == [qc.QualityCLIPSettings()]


def test_comparison_needs_the_photo_set_clip(capsys):
    from sfd_lab.checks.cli import quality_clip_parser
    from sfd_lab.checks.quality_clip_heldout import run_train_quality_clip

    a = quality_clip_parser().parse_args(["--results-dir", "x"])
    with pytest.raises(ValueError, match="give --photos photo-set"):
        run_train_quality_clip(a)
