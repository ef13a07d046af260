"""SFD-IQA checked by value and by what it must tell apart.

q_feat, q_text and Q of whole images equal SPEC's formula recomputed from open_clip
(tests/bite_reference.py) with the tile offsets written out; a tiny SFD discriminator trained briefly
(discriminator only, HR crops of the training photos against their bicubic down-up versions) scores
held-out HR crops above their bicubic versions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from bite_reference import clip_image, clip_prompt_features, feat_stats, normalised, set_feat_stats, text_logit
from conftest import sfd_opt

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_metric.sfd_iqa import SFDIQA
from sfd_utils.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, load_photo

CROP = 64


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def down_up(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """(B, 3, H, W) -> bicubic x1/scale (antialiased) then bicubic back up: the 'fake' of training."""
    lq = F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True).clamp(0, 1)
    return F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def train_discriminator(clip_file: str, tmp_dir: str, seed: int, iters: int = 24):
    """SFDModel, discriminator only (SFDBicubicUpsampler as generator): random 64² HR crops of
    TRAIN_PHOTOS (batch 4) against their bicubic down-up versions."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = sfd_opt(clip_file, tmp_dir)
    opt["network_g"] = {"type": "SFDBicubicUpsampler", "scale": 4}
    model = build_model(opt)
    photos = [to_tensor(load_photo(n)) for n in TRAIN_PHOTOS]
    for it in range(1, iters + 1):
        crops = []
        for k in rng.integers(len(photos), size=4):
            img = photos[k]
            top, left = (int(rng.integers(s - CROP + 1)) for s in img.shape[1:])
            crops.append(img[:, top : top + CROP, left : left + CROP])
        gt = torch.stack(crops)
        lq = F.interpolate(gt, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
        model.feed_data({"lq": lq, "gt": gt})
        model.optimize_parameters(it)
    return model.get_bare_model(model.net_d).eval()


def heldout_crops() -> torch.Tensor:
    """(8, 3, 64, 64): four crops from each held-out photo."""
    out = []
    for name in HELDOUT_PHOTOS:
        img = to_tensor(load_photo(name))
        for top, left in ((60, 80), (140, 200), (200, 40), (100, 300)):
            out.append(img[:, top : top + CROP, left : left + CROP])
    return torch.stack(out)


def hr_minus_bicubic(disc) -> torch.Tensor:
    """Per held-out crop: Q(HR) - Q(bicubic down-up), (8,)."""
    scorer = SFDIQA(disc, tile=CROP, device="cpu")
    hr = heldout_crops()
    bic = down_up(hr)
    return torch.tensor([scorer.score(h).q - scorer.score(b).q for h, b in zip(hr, bic)])


@pytest.fixture(scope="module")
def trained(tiny_clip_files, tmp_path_factory):
    return train_discriminator(tiny_clip_files["tiny-rn"], str(tmp_path_factory.mktemp("bite_iqa")), seed=0)


def test_trained_discriminator_scores_hr_above_bicubic(trained):
    """Held-out scenes: HR crops score above their bicubic down-up versions on average.

    Measured with seeds 0-4: mean Q(HR) - Q(bicubic) 0.043-0.088 (4 to 8 of the 8 crops higher)."""
    diff = hr_minus_bicubic(trained)
    assert diff.mean() > 0.015, diff


# -- the formula, by hand -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scrambled(tiny_clip_files):
    """An untrained discriminator whose scores vary from crop to crop: random prompt contexts far
    from their init, and small running RMS values (inputs to the heads amplified)."""
    torch.manual_seed(5)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=16)
    with torch.no_grad():
        disc.prompt_pair.ctx.normal_(0, 0.5)
    set_feat_stats(disc.feat_disc, [0.02, 0.05, 0.1])
    return disc.eval()


def reference_scores(disc, crops: torch.Tensor, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per crop (q_feat, q_text) from open_clip + the trained heads, written out.

    Crops whose size is not a multiple of 32 are reflect-padded at the bottom/right (as the CLIP
    input must be); Feat-D positions that only see padding are left out of q_feat."""
    clip = disc.backbone.clip
    pad = (-tile) % 32
    x = F.pad(crops, (0, pad, 0, pad), mode="reflect") if pad else crops
    maps, emb = clip_image(clip, x)
    text = clip_prompt_features(clip, disc.prompt_pair.ctx.detach(), "high quality photo.", "low quality photo.")
    q_text = torch.sigmoid(text_logit(clip, emb, text))
    per_layer, stats = [], feat_stats(disc.feat_disc)
    with torch.no_grad():
        for m, (feat, stride) in enumerate(zip(maps, (4, 8, 16))):
            logits = disc.feat_disc.heads[m](normalised(stats, m, feat))
            valid = -(-tile // stride)  # ceil
            per_layer.append(torch.sigmoid(logits[..., :valid, :valid]).mean(dim=(1, 2, 3)))
    return torch.stack(per_layer).mean(0), q_text


@pytest.mark.parametrize(
    "tile,tops,lefts",
    [
        (64, (0, 64, 86), (0, 64, 128, 136)),  # last row/column aligned to the 150 x 200 border
        (48, (0, 48, 96, 102), (0, 48, 96, 144, 152)),  # not a multiple of CLIP's stride: padded
    ],
)
def test_scores_follow_the_formula_by_hand(scrambled, tile, tops, lefts):
    """q_feat = mean_m mean_pos sigmoid(D_m), q_text = sigmoid(z), Q = mean_c [a q_feat + (1 - a) q_text]."""
    img = load_photo("chelsea")[30:180, 40:240]  # 150 x 200
    crops = torch.stack([to_tensor(img[t : t + tile, s : s + tile]) for t in tops for s in lefts])
    q_feat, q_text = reference_scores(scrambled, crops, tile)
    spread = float(torch.cat([q_feat, q_text]).max() - torch.cat([q_feat, q_text]).min())
    assert spread > 0.02, spread  # crops differ: a wrong crop or weight shows up in the means
    tol = 1e-3 * spread
    for alpha in (0.5, 0.2):
        s = SFDIQA(scrambled, tile=tile, alpha=alpha, device="cpu").score(img)
        assert s.n_crops == len(crops)
        assert s.q_feat == pytest.approx(float(q_feat.mean()), abs=tol)
        assert s.q_text == pytest.approx(float(q_text.mean()), abs=tol)
        want = float((alpha * q_feat + (1 - alpha) * q_text).mean())
        assert s.q == pytest.approx(want, abs=tol), alpha
    assert SFDIQA(scrambled, tile=tile, device="cpu").alpha == 0.5  # SPEC's default
