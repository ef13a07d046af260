"""SFD-IQA: checkpoint contract, tiled scoring, the BasicSR metric, image handling, bad checkpoints."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric
from basicsr.models import build_model
from basicsr.utils.registry import METRIC_REGISTRY
from conftest import lr_hr_batch, photo, sfd_opt

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_metric.sfd_iqa import SFDIQA, SFDCheckpointError, load_sfd_checkpoint, tile_starts, upsized_shape
from sfd_metric.sfd_iqa_metric import calculate_sfd_iqa, get_scorer, live_discriminator
from sfd_tools.iqa.mos_data import read_image

TILE = 64


@pytest.fixture(scope="module")
def trained(tiny_clip_files, tmp_path_factory):
    """A discriminator trained a few D-only iterations by SFDModel and saved through its own save path."""
    tmp = tmp_path_factory.mktemp("sfd_iqa_run")
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp))
    opt["network_g"] = {"type": "SFDBicubicUpsampler", "scale": 4}
    opt["datasets"] = {"train": {"gt_size": TILE}}  # recorded in net_d: SFD-IQA's default tile
    torch.manual_seed(0)
    model = build_model(opt)
    for it, name in enumerate(("astronaut", "coffee", "rocket", "astronaut", "coffee", "rocket") * 2, start=1):
        model.feed_data(lr_hr_batch(4, name=name))
        model.optimize_parameters(it)
    model.save(0, 12)
    return {"ckpt": str(tmp / "models" / "net_d_12.pth"), "model": model, "clip": tiny_clip_files["tiny-rn"]}


@pytest.fixture(scope="module")
def scorer(trained):
    return SFDIQA.from_checkpoint(trained["ckpt"], tile=TILE, device="cpu")


def test_checkpoint_records_the_training_crop_as_default_tile(trained):
    from sfd_model.sfd_model import train_patch_size

    assert SFDIQA.from_checkpoint(trained["ckpt"], device="cpu").tile == TILE  # not the 256 fallback
    assert SFDIQA.from_checkpoint(trained["ckpt"], device="cpu", tile=96).tile == 96
    assert train_patch_size({"gt_size": 256, "datasets": {"train": {"gt_size": 128}}}) == 256  # Real-ESRGAN style
    assert train_patch_size({"datasets": {"train": {"gt_size": 128}}}) == 128
    assert train_patch_size({"datasets": {}}) is None


def test_scores_in_unit_interval_and_deterministic(trained, scorer):
    again = SFDIQA.from_checkpoint(trained["ckpt"], tile=TILE, device="cpu")  # a fresh load
    for name in ("chelsea", "motorcycle_right"):
        img = photo(name)[:200, :260]
        a, b = scorer.score(img), again.score(img)
        assert a == b
        for v in (a.q, a.q_feat, a.q_text):
            assert 0.0 <= v <= 1.0
        assert a.q == pytest.approx(0.5 * a.q_feat + 0.5 * a.q_text)
        assert a.n_crops == 4 * 5  # 200 -> 0,64,128,136 ; 260 -> 0,64,128,192,196


def test_scores_are_the_trained_heads_formula(trained, scorer):
    """Loaded weights = trained weights, and q_feat/q_text follow SPEC's formula on one crop."""
    disc = trained["model"].get_bare_model(trained["model"].net_d).eval()
    crop = torch.from_numpy(photo("chelsea")[50 : 50 + TILE, 100 : 100 + TILE]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        logits = disc.logits(disc.extract(crop))
    q_feat = torch.stack([torch.sigmoid(m).mean() for m in logits.feat]).mean()
    q_text = torch.sigmoid(logits.text[0])
    s = scorer.score(crop[0])
    assert s.n_crops == 1
    assert s.q_feat == pytest.approx(float(q_feat), abs=1e-6)
    assert s.q_text == pytest.approx(float(q_text), abs=1e-6)
    disc.train()


def test_tile_layout():
    assert tile_starts(256, 256) == [0]
    assert tile_starts(512, 256) == [0, 256]
    assert tile_starts(300, 256) == [0, 44]  # last tile aligned to the border
    assert tile_starts(300, 256, stride=128) == [0, 44]
    assert tile_starts(600, 256, stride=128) == [0, 128, 256, 344]
    assert upsized_shape(20, 30, 64) == (64, 96)  # aspect kept, short side = tile
    assert upsized_shape(100, 70, 64) == (100, 70)


def crop_spread(scorer, img: np.ndarray) -> float:
    """max - min of Q over the image's own tiles: the scale every tolerance below is relative to."""
    _, boxes = scorer.crop_layout(*img.shape[:2])
    crops = torch.stack([torch.from_numpy(img[t : t + TILE, s : s + TILE].copy()).permute(2, 0, 1) for t, s in boxes])
    q_feat, q_text = scorer.score_crops(crops.float() / 255)
    q = 0.5 * q_feat + 0.5 * q_text
    return float(q.max() - q.min())


def test_tiling_invariance(scorer):
    img = photo("motorcycle_right")[100:228, 200:328]  # 128 x 128 = 2 x 2 tiles of 64
    whole = scorer.score(img)
    quads = [scorer.score(img[t : t + TILE, s : s + TILE]) for t in (0, TILE) for s in (0, TILE)]
    assert whole.q == pytest.approx(np.mean([x.q for x in quads]), abs=1e-6)
    big = photo("motorcycle_right")[:300, :400]
    spread = crop_spread(scorer, big)  # ~0.19 for this fixture
    assert spread > 0.05  # the tiles differ: a fraction of the spread is a meaningful bound
    grid = scorer.score(big)
    overlapping = SFDIQA(scorer.disc, TILE, stride=TILE // 2, device="cpu").score(big)
    shifted = scorer.score(big[16:, 24:])
    assert overlapping.n_crops > grid.n_crops
    # Other crops of the same image average to nearly the same Q (measured: 1% and 8% of the spread).
    assert abs(overlapping.q - grid.q) < 0.05 * spread
    assert abs(shifted.q - grid.q) < 0.12 * spread


def test_batches_bound_memory_and_do_not_change_scores(scorer, monkeypatch):
    img = photo("coffee")[:256, :320]
    one_by_one = SFDIQA(scorer.disc, TILE, batch_size=1, device="cpu")
    sizes = []
    real = SFDIQA.score_crops

    def spy(self, crops):
        sizes.append(crops.shape[0])
        return real(self, crops)

    batched = SFDIQA(scorer.disc, TILE, batch_size=7, device="cpu")
    monkeypatch.setattr(SFDIQA, "score_crops", spy)
    s7 = batched.score(img)
    assert max(sizes) == 7 and sum(sizes) == s7.n_crops == 20
    s1 = one_by_one.score(img)
    assert s1.q == pytest.approx(s7.q, abs=1e-5)


def test_bf16_close_to_float32(scorer):
    img = photo("chelsea")[:128, :192]
    ref = scorer.score(img)
    bf16 = SFDIQA(scorer.disc, TILE, bf16=True, device="cpu")
    low = bf16.score(img)
    spread = crop_spread(scorer, photo("motorcycle_right")[:300, :400])
    assert abs(low.q - ref.q) < 0.03 * spread  # measured: < 1% of the spread
    # the forward runs in bf16, the scores are float32 (bf16 keeps ~3 digits: means would drift)
    crops = torch.from_numpy(img[:TILE, :TILE].copy()).permute(2, 0, 1)[None].float() / 255
    assert all(q.dtype == torch.float32 for q in bf16.score_crops(crops))


def test_image_types_give_the_same_score(scorer, tmp_path):
    rgb = photo("chelsea")[:96, :128]
    ref = scorer.score(rgb).q
    gray = rgb[..., 1]
    variants = {
        "u16.png": (rgb.astype(np.uint16) * 257)[..., ::-1],
        "rgba.png": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)]),
        "rgb.png": rgb[..., ::-1],
        "gray.png": gray,
    }
    for name, arr in variants.items():
        cv2.imwrite(str(tmp_path / name), arr)
    assert read_image(str(tmp_path / "u16.png")).dtype == np.uint16
    for name in ("u16.png", "rgba.png", "rgb.png"):
        img = read_image(str(tmp_path / name))
        assert img.shape == rgb.shape
        assert scorer.score(img).q == pytest.approx(ref, abs=1e-6), name
    assert scorer.score(rgb.astype(np.float32) / 255).q == pytest.approx(ref, abs=1e-6)
    g = read_image(str(tmp_path / "gray.png"))
    assert g.shape == rgb.shape and (g[..., 0] == g[..., 2]).all()
    assert scorer.score(g).q == pytest.approx(scorer.score(np.stack([gray] * 3, -1)).q, abs=1e-6)


def test_tiny_image_is_resized_up(scorer):
    tiny = photo("chelsea")[100:120, 200:230]  # 20 x 30 < one tile
    assert scorer.crop_layout(20, 30) == ((64, 96), [(0, 0), (0, 32)])
    s = scorer.score(tiny)
    assert s.n_crops == 2 and 0.0 <= s.q <= 1.0


def test_basicsr_metric(trained, scorer):
    assert METRIC_REGISTRY.get("calculate_sfd_iqa") is calculate_sfd_iqa
    rgb = photo("coffee")[:128, :160]
    opt = {"type": "calculate_sfd_iqa", "checkpoint": trained["ckpt"], "tile": TILE, "better": "higher"}
    data = {"img": np.ascontiguousarray(rgb[..., ::-1]), "img2": rgb}  # BasicSR passes BGR uint8
    assert calculate_metric(data, opt) == pytest.approx(scorer.score(rgb).q, abs=1e-6)
    q_text = calculate_metric(data, {**opt, "component": "q_text", "crop_border": 4})
    assert q_text == pytest.approx(scorer.score(rgb[4:-4, 4:-4]).q_text, abs=1e-6)
    options = {"tile": TILE, "clip_pretrained": None}
    assert get_scorer(trained["ckpt"], **options) is get_scorer(trained["ckpt"], **options)  # loaded once
    with pytest.raises(ValueError, match="component"):
        calculate_metric(data, {**opt, "component": "niqe"})
    with pytest.raises(ValueError, match="checkpoint"):
        calculate_metric(data, {"type": "calculate_sfd_iqa"})


def test_metric_scores_with_the_discriminator_being_trained(trained, scorer):
    """`checkpoint: current` in SFDModel's validation = the live discriminator, at the training crop."""
    disc = trained["model"].get_bare_model(trained["model"].net_d)
    rgb = photo("coffee")[:128, :160]
    data = {"img": np.ascontiguousarray(rgb[..., ::-1]), "img2": rgb}
    opt = {"type": "calculate_sfd_iqa", "checkpoint": "current"}
    with pytest.raises(ValueError, match="only in that model's validation"):
        calculate_metric(data, opt)
    disc.train()
    with live_discriminator(disc, tile=TILE):
        live = calculate_metric(data, opt)
        assert not disc.training  # scored in eval mode
    assert disc.training  # and given back in train mode
    assert live == pytest.approx(scorer.score(rgb).q, abs=1e-5)  # same heads as the saved checkpoint


def test_clip_override_and_random_clip_refused(trained, tmp_path):
    config, state = load_sfd_checkpoint(trained["ckpt"])
    assert config["clip_model"] == "tiny-rn" and config["clip_pretrained"] == trained["clip"]
    s = SFDIQA.from_checkpoint(trained["ckpt"], clip_pretrained=trained["clip"], tile=TILE, device="cpu")
    assert 0.0 <= s.score(photo("chelsea")[:64, :64]).q <= 1.0
    with pytest.raises(SFDCheckpointError, match="random"):
        SFDIQA.from_checkpoint(trained["ckpt"], clip_pretrained="random")
    with pytest.raises(FileNotFoundError, match="missing_clip.pt"):
        SFDIQA.from_checkpoint(trained["ckpt"], clip_pretrained=str(tmp_path / "missing_clip.pt"))


class NotAllowedUnderWeightsOnly:
    """A pickled custom object: torch.load(weights_only=True) refuses it."""


def _save(path, obj):
    torch.save(obj, path)
    return str(path)


def test_foreign_checkpoints_give_clear_errors(trained, tmp_path):
    _, state = load_sfd_checkpoint(trained["ckpt"])
    rrdb = build_model(sfd_opt(trained["clip"], str(tmp_path / "g"))).net_g.state_dict()
    with pytest.raises(SFDCheckpointError, match="_extra_state") as err:
        SFDIQA.from_checkpoint(_save(tmp_path / "net_g.pth", {"params": rrdb}))
    assert "body.0.rdb1" in str(err.value)  # it shows what the file holds instead
    with pytest.raises(SFDCheckpointError, match="weights-only"):
        SFDIQA.from_checkpoint(_save(tmp_path / "pickle.pth", {"params": state, "obj": NotAllowedUnderWeightsOnly()}))
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(SFDCheckpointError, match="weights-only"):
        SFDIQA.from_checkpoint(str(tmp_path / "text.pth"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SFDIQA.from_checkpoint(str(tmp_path / "nothing.pth"))
    wrong = dict(state, _extra_state=torch.tensor(list(b'{"format": "other"}'), dtype=torch.uint8))
    with pytest.raises(SFDCheckpointError, match="not an SFD discriminator checkpoint"):
        SFDIQA.from_checkpoint(_save(tmp_path / "wrong.pth", wrong))
    lacking = dict(state, _extra_state=torch.tensor(list(b'{"format": "sfd-discriminator"}'), dtype=torch.uint8))
    with pytest.raises(SFDCheckpointError, match="clip_model"):
        SFDIQA.from_checkpoint(_save(tmp_path / "lacking.pth", lacking))
    head = next(k for k in state if k.startswith("feat_disc.heads.0"))
    cut = {k: v for k, v in state.items() if k != head}
    with pytest.raises(SFDCheckpointError, match="missing keys") as err:
        SFDIQA.from_checkpoint(_save(tmp_path / "cut.pth", {"params": cut}))
    assert head in str(err.value)


def test_raw_state_dict_and_untrained_discriminator(tiny_clip_files, tmp_path):
    """A plain state_dict of an SFDDiscriminator (no BasicSR wrapper, ViT CLIP, TG-D off) loads too."""
    disc = SFDDiscriminator("tiny-vit", tiny_clip_files["tiny-vit"], n_ctx=4, feat_mid_channels=8, use_text=False)
    path = _save(tmp_path / "raw.pth", disc.state_dict())
    s = SFDIQA.from_checkpoint(path, tile=48, device="cpu").score(photo("chelsea")[:70, :90])
    assert math.isnan(s.q_text) and s.q == s.q_feat and 0.0 <= s.q <= 1.0


def test_ranking_report_runs_on_any_checkpoint(trained, tmp_path):
    import json

    from sfd_tools.iqa.ranking import DEGRADATIONS, degrade, render_ranking_markdown, run_ranking_report

    img = photo("chelsea")[:64, :64]
    assert all(degrade(img, k, 0).tobytes() == img.tobytes() for k in DEGRADATIONS)
    assert all(degrade(img, k, 3).shape == img.shape and degrade(img, k, 3).dtype == np.uint8 for k in DEGRADATIONS)
    path = run_ranking_report(
        trained["ckpt"],
        None,
        str(tmp_path),
        tile=TILE,
        photos=("chelsea",),
        crop=192,
        crop_stride=1000,
        speed=False,
        progress=False,
        training={"recipe": "options/demo_SFD_cpu.yml", "random_clip": True},  # the demo's form
    )
    text = open(path).read()
    assert all(f"| {k} |" in text for k in DEGRADATIONS) and "NIQE pooled" in text
    assert "recipe = options/demo_SFD_cpu.yml" in text
    report = json.loads((tmp_path / "report.json").read_text())
    report["training"] = {"iters": 5, "batch": 2, "crop": 96, "train_photos": ["astronaut"], "seconds": 1.0}
    assert "5 iterations, batch 2, 96² HR crops of astronaut" in render_ranking_markdown(report)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n_base_images"] == 1
    for entry in report["degradations"].values():
        assert len(entry["mean_per_level"]["q"]) == 6
        assert -1.0 <= entry["srocc"]["q"]["pooled"] <= 1.0 and -1.0 <= entry["srocc"]["niqe"]["pooled"] <= 1.0
