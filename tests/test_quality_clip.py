"""Quality-aware tiny CLIP (sfd_lab.checks.quality_clip) and the zero-shot baseline (sfd_metric.zero_shot_iqa)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import photo_tensor

from sfd_lab.checks import quality_clip as qc
from sfd_utils.photos import HELDOUT_PHOTOS, SCENE, TRAIN_GRAY_PHOTOS, TRAIN_PHOTOS

# Zero-shot AUC on held-out crops (sharp vs degraded): the trained stand-in must clear PASS, and a
# random-weight CLIP of the same architecture must stay below FAIL (measured ~0.5).
PASS, FAIL = 0.75, 0.62


def test_short_context_text_encoding_equals_open_clip():
    import open_clip

    qc.register_quality_clip()
    torch.manual_seed(0)
    model = open_clip.create_model(qc.QUALITY_CLIP_MODEL)
    tokens = open_clip.get_tokenizer(qc.QUALITY_CLIP_MODEL)(
        ["a sharp photo of the cat.", "noisy", "a low quality photo."]
    )
    full = F.normalize(model.encode_text(tokens), dim=-1)
    torch.testing.assert_close(qc.encode_text_short(model, tokens), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", qc.DEGRADATION_KINDS)
def test_degradations_change_the_crop_and_stay_8_bit(kind):
    img = photo_tensor("astronaut", 64)[0]
    rng = np.random.default_rng(0)
    out = qc.degrade_crop(img, kind, qc.EVAL_STRENGTH[kind], rng)
    assert out.shape == img.shape and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    torch.testing.assert_close(out * 255, (out * 255).round(), atol=1e-4, rtol=0)
    assert float((out - img).abs().mean()) > 0.005
    with pytest.raises(ValueError, match="unknown degradation"):
        qc.degrade_crop(img, "rain", 1.0, rng)


def test_batch_targets_follow_the_caption_meaning():
    s = qc.QualityCLIPSettings(batch=16, photos=("astronaut", "coffee"))
    images, captions, targets = qc.make_batch(qc._photo_pool(s.photos, s.crop), s, np.random.default_rng(3))
    assert images.shape == (16, 3, 64, 64) and len(captions) == 16 and targets.shape == (16, 16)
    assert bool((targets.diagonal() == 1).all())  # every caption fits its own crop
    assert float(targets[:8, 8:].sum()) == 0 and float(targets[8:, :8].sum()) == 0  # sharp never fits degraded
    assert qc.caption_fits("noisy", None, "noise", "cat") and not qc.caption_fits("noisy", None, "jpeg", "cat")
    assert qc.caption_fits("low quality", None, "jpeg", "cat") and not qc.caption_fits("low quality", None, None, "cat")
    assert not qc.caption_fits("sharp", "coffee cup", None, "astronaut")


def test_multi_positive_loss_prefers_matching_embeddings():
    targets = torch.eye(4)
    targets[0, 1] = targets[1, 0] = 1.0
    emb = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    scale = torch.tensor(10.0)
    aligned = qc.multi_positive_loss(emb, emb, scale, targets)
    shuffled = qc.multi_positive_loss(emb, emb[[2, 3, 0, 1]], scale, targets)
    assert float(aligned) < float(shuffled)


def test_training_never_reads_a_heldout_photo(tmp_path, monkeypatch):
    read = []
    real_load = qc.load_photo
    monkeypatch.setattr(qc, "load_photo", lambda name: read.append(name) or real_load(name))
    s = qc.QualityCLIPSettings(steps=2, batch=8, warmup=1)
    facts = qc.train_quality_clip(str(tmp_path / "q.pt"), s, evaluate=False)
    assert set(read) == set(TRAIN_PHOTOS + TRAIN_GRAY_PHOTOS) == set(facts["train_photos"])
    assert not {SCENE[n] for n in read} & {SCENE[n] for n in HELDOUT_PHOTOS}
    for leak in ("chelsea", "cat", "motorcycle_left"):  # a held-out photo, or one sharing a held-out scene
        with pytest.raises(ValueError, match="held-out"):
            qc.train_quality_clip(str(tmp_path / "x.pt"), qc.QualityCLIPSettings(photos=("astronaut", leak)))


def test_cache_trains_once_and_reuses_a_file_with_the_same_settings(tmp_path, monkeypatch):
    a, b = qc.QualityCLIPSettings(), qc.QualityCLIPSettings(steps=10)
    assert a.key() == qc.QualityCLIPSettings().key() and a.key() != b.key()
    tiny = qc.QualityCLIPSettings(steps=1, batch=4, warmup=1, photos=("coffee",))
    path = qc.cached_quality_clip(tiny, str(tmp_path / "cache"), reuse=())
    assert path.startswith(str(tmp_path / "cache")) and tiny.key() in path

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(qc, "train_quality_clip", no_training)
    assert qc.cached_quality_clip(tiny, str(tmp_path / "cache"), reuse=()) == path
    assert qc.cached_quality_clip(tiny, str(tmp_path / "other"), reuse=(path,)) == path  # e.g. the script's file
    with pytest.raises(AssertionError, match="trained again"):  # other settings: not reused
        qc.cached_quality_clip(qc.QualityCLIPSettings(steps=2, batch=4), str(tmp_path / "other"), reuse=(path,))


def test_trained_file_loads_through_clip_pretrained(quality_clip_file):
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    saved = torch.load(quality_clip_file, map_location="cpu", weights_only=True)
    disc = SFDDiscriminator(qc.QUALITY_CLIP_MODEL, quality_clip_file, n_ctx=4, feat_mid_channels=16)
    clip = disc.backbone.clip
    assert not disc.backbone.random_weights
    for name, value in clip.state_dict().items():
        torch.testing.assert_close(value, saved[name], msg=name)
    out = disc.logits(disc.extract(photo_tensor("astronaut", 96, batch=2)))
    assert out.text.shape == (2,) and all(torch.isfinite(m).all() for m in out.feat)


def test_zero_shot_separates_heldout_crops_and_random_weights_do_not(quality_clip_file):
    trained = qc.evaluate_zero_shot(quality_clip_file, crop=64)
    random = qc.evaluate_zero_shot(None, crop=64)
    assert trained["n_crops"] == random["n_crops"] > 50
    assert trained["auc"] >= PASS, trained
    assert random["auc"] < FAIL, random
    assert trained["accuracy"] > random["accuracy"] + 0.1


def test_zero_shot_scorer_tiles_like_sfd_iqa(quality_clip_file):
    from sfd_arch.clip_backbone import FrozenCLIP
    from sfd_metric.sfd_iqa import crop_batches
    from sfd_metric.zero_shot_iqa import ZeroShotQuality

    clip = FrozenCLIP(qc.QUALITY_CLIP_MODEL, quality_clip_file)
    scorer = ZeroShotQuality(clip, tile=64)
    img = (photo_tensor("coffee", None)[0][:, :150, :200].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    crops = torch.cat(list(crop_batches(img, 64)))
    assert crops.shape == (3 * 4, 3, 64, 64)
    p = scorer.score_crops(crops)
    assert bool(((p >= 0) & (p <= 1)).all())
    assert scorer.score(img) == pytest.approx(float(p.mean()), abs=1e-6)
    with pytest.raises(ValueError, match="pair"):
        ZeroShotQuality(clip, prompts=("good",))
    with pytest.raises(ValueError, match="stride"):
        ZeroShotQuality(clip, tile=16)
