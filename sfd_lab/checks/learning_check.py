"""Does SFD learn? Two checks on CPU with a tiny CLIP and scikit-image photos, written to a report.

1. Discriminator: with a fixed generator (bicubic x4 upsampling of the LR crop, SFDBicubicUpsampler)
   SFDModel trains Feat-D and TG-D alone; on crops of *held-out* photos both must then tell HR
   crops from upsampled-LR crops (accuracy and ROC-AUC per crop).
2. Generator: against that discriminator, frozen, a tiny RRDBNet trained by the adversarial terms
   alone must lower its adversarial loss (it learns to fool a fixed SFD discriminator).

By default the tiny CLIP has random weights with calibrated BatchNorm statistics
(calibrate_random_clip), so the check shows the machinery learns, not CLIP semantics; pass a real
clip_model/pretrained for that (here: ``quality-tiny-rn`` + the file sfd_lab.checks.quality_clip trains).
The zero-shot fixed-prompt baseline (sfd_metric.zero_shot_iqa) is reported on the same crops.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from sfd_arch.clip_provenance import prepare_tiny_clip
from sfd_utils.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, bicubic_lr, photo_crops


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC of scores (positives should score higher), ties counted half."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


@torch.no_grad()
def judge(disc, hr: torch.Tensor, fake: torch.Tensor) -> dict:
    """Per-crop decisions of Feat-D (mean logit over positions and layers) and TG-D on held-out crops."""
    disc.eval()
    out = {}
    for name, imgs in (("real", hr), ("fake", fake)):
        logits = disc.logits(disc.extract(imgs))
        out[f"feat_{name}"] = torch.stack([m.mean(dim=(1, 2, 3)) for m in logits.feat]).mean(0).numpy()
        out[f"text_{name}"] = logits.text.numpy()
    # Baseline: CLIP's embedding alone with fixed prompts (CLIP-IQA style), no training.
    from sfd_metric.zero_shot_iqa import ZeroShotQuality

    zero_shot = ZeroShotQuality(disc.backbone, tile=hr.shape[-1])
    out["zero_shot_real"] = zero_shot.score_crops(hr).numpy()
    out["zero_shot_fake"] = zero_shot.score_crops(fake).numpy()
    disc.train()
    result = {}
    for head, threshold in (("feat", 0.0), ("text", 0.0), ("zero_shot", 0.5)):
        real, fake_ = out[f"{head}_real"], out[f"{head}_fake"]
        result[f"{head}_accuracy"] = float(((real > threshold).mean() + (fake_ < threshold).mean()) / 2)
        result[f"{head}_auc"] = auc(real, fake_)
    return result


def run_learning_check(
    out_dir: str = "results/learning_check",
    d_iters: int = 1000,
    g_iters: int = 60,
    batch: int = 16,
    crop: int = 96,
    clip_model: str = "tiny-rn",
    clip_pretrained: str | None = None,
    lr_d: float = 1e-3,
    seed: int = 0,
    clip_input_size: int | None = None,
    feat_norm: str | None = None,
) -> dict:
    """Run both checks; write ``report.json`` and ``report.md`` under ``out_dir``; return the report.

    clip_pretrained None: a random ``clip_model`` with calibrated BatchNorm (see module doc).
    feat_norm None: the architecture's default (``channel``; the results of 2026-11-30 were ``rms``).
    """
    from basicsr.models import build_model

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config
    from sfd_utils.presets import sfd_options

    register_clip_config(TINY_CLIP_CONFIGS)  # shipped tiny configs by name, random or with a weights file
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_hr = photo_crops(TRAIN_PHOTOS, crop, crop // 2)
    test_hr = photo_crops(HELDOUT_PHOTOS, crop, crop)
    if clip_pretrained is None:
        clip_pretrained = prepare_tiny_clip(out_dir, clip_model, train_hr[rng.permutation(len(train_hr))[:64]])
    network_d = {"clip_model": clip_model, "clip_pretrained": clip_pretrained, "n_ctx": 8, "feat_mid_channels": 32}
    if clip_input_size:
        network_d["clip_input_size"] = clip_input_size  # the one CLIP forward at this short side
    if feat_norm:
        network_d["feat_norm"] = feat_norm
    adam = {"type": "Adam", "lr": lr_d, "betas": [0.9, 0.99]}
    opt = sfd_options(
        os.path.join(out_dir, "disc_only"),
        network_d,
        {"type": "SFDBicubicUpsampler", "scale": 4},
        train={"optim_d": adam},
    )
    model = build_model(opt)
    disc = model.get_bare_model(model.net_d)
    test_fake = F.interpolate(bicubic_lr(test_hr), scale_factor=4, mode="bicubic").clamp(0, 1)
    before = judge(disc, test_hr, test_fake)
    start = time.perf_counter()
    curve = []
    for it in range(1, d_iters + 1):
        hr = train_hr[rng.choice(len(train_hr), batch, replace=False)]
        model.feed_data({"lq": bicubic_lr(hr), "gt": hr})
        model.optimize_parameters(it)
        if it % max(1, d_iters // 10) == 0:
            curve.append({"iter": it, **{k: round(float(v), 4) for k, v in model.log_dict.items()}})
    d_seconds = time.perf_counter() - start
    after = judge(disc, test_hr, test_fake)
    model.save(0, d_iters)
    d_ckpt = os.path.join(opt["path"]["models"], f"net_d_{d_iters}.pth")

    # Generator check: the same discriminator, frozen (lr 0, running RMS frozen), a tiny RRDBNet.
    opt_g = sfd_options(
        os.path.join(out_dir, "gen_vs_fixed_d"),
        network_d,
        train={
            "pixel_opt": None,
            "optim_d": {**adam, "lr": 0.0},
            "optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
            "feat_gan_opt": {"type": "SFDGANLoss", "loss_weight": 1.0},
            "text_gan_opt": {"type": "SFDGANLoss", "loss_weight": 1.0},
        },
    )
    gmodel = build_model(opt_g)
    gmodel.load_network(gmodel.net_d, d_ckpt, True, "params")
    gmodel.get_bare_model(gmodel.net_d).feat_disc.momentum = 0.0
    g_losses = []
    for it in range(1, g_iters + 1):
        hr = train_hr[rng.choice(len(train_hr), batch, replace=False)]
        gmodel.feed_data({"lq": bicubic_lr(hr), "gt": hr})
        gmodel.optimize_parameters(it)
        g_losses.append(float(gmodel.log_dict["l_g_feat"]) + float(gmodel.log_dict["l_g_text"]))

    k = max(1, g_iters // 10)
    report = {
        "setup": {
            "clip_model": clip_model,
            "clip_pretrained": clip_pretrained,
            "train_photos": TRAIN_PHOTOS,
            "heldout_photos": HELDOUT_PHOTOS,
            "crop": crop,
            "clip_input_size": clip_input_size,
            "feat_norm": disc.config["feat_norm"],
            "batch": batch,
            "d_iters": d_iters,
            "g_iters": g_iters,
            "train_crops": len(train_hr),
            "heldout_crops": len(test_hr),
        },
        "discriminator_heldout_before": before,
        "discriminator_heldout_after": after,
        "discriminator_train_curve": curve,
        "discriminator_seconds": round(d_seconds, 1),
        "discriminator_checkpoint": d_ckpt,
        "generator_adv_loss_first": float(np.mean(g_losses[:k])),
        "generator_adv_loss_last": float(np.mean(g_losses[-k:])),
    }
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(render_markdown(report))
    return report


def render_markdown(r: dict) -> str:
    s, b, a = r["setup"], r["discriminator_heldout_before"], r["discriminator_heldout_after"]
    lines = [
        "# SFD learning check",
        "",
        f"CLIP `{s['clip_model']}` ({s['clip_pretrained']}); {s['train_crops']} training crops "
        f"({', '.join(s['train_photos'])}), {s['heldout_crops']} held-out crops ({', '.join(s['heldout_photos'])}), "
        f"{s['crop']}² HR vs bicubic x4 down-up, batch {s['batch']}.",
        "",
        f"## Discriminator alone ({s['d_iters']} iterations, {r['discriminator_seconds']} s)",
        "",
        "| held-out crops | Feat-D accuracy | Feat-D AUC | TG-D accuracy | TG-D AUC |",
        "|---|---|---|---|---|",
        f"| before training | {b['feat_accuracy']:.3f} | {b['feat_auc']:.3f} | {b['text_accuracy']:.3f} "
        f"| {b['text_auc']:.3f} |",
        f"| after training | {a['feat_accuracy']:.3f} | {a['feat_auc']:.3f} | {a['text_accuracy']:.3f} "
        f"| {a['text_auc']:.3f} |",
        "",
        'Baseline without training (fixed prompts "a high quality photo." vs "a low quality photo.", '
        f"CLIP-IQA style, p > 0.5 = real): accuracy {a['zero_shot_accuracy']:.3f}, AUC {a['zero_shot_auc']:.3f}.",
        "",
        f"## Generator against the frozen discriminator ({s['g_iters']} iterations, adversarial terms only)",
        "",
        f"Adversarial loss (Feat-D + TG-D), mean of first/last tenth: {r['generator_adv_loss_first']:.3f} -> "
        f"{r['generator_adv_loss_last']:.3f}",
        "",
    ]
    return "\n".join(lines)


def run_learning_check_cli(a) -> int:
    """``scripts/sfd_learning_check.py``: the namespace of :func:`sfd_lab.bench.cli.learning_check_parser`."""
    r = run_learning_check(
        a.out, a.d_iters, a.g_iters, a.batch, a.crop, a.clip_model, a.clip_pretrained,
        clip_input_size=a.clip_input_size, feat_norm=a.feat_norm,
    )  # fmt: skip
    print(open(os.path.join(a.out, "report.md")).read())
    print(f"report: {os.path.join(a.out, 'report.md')}  discriminator: {r['discriminator_checkpoint']}")
    return 0
