"""``scripts/featd_study.py``: which Feat-D design helps a generator at this scale? (issue 30 item 7)

The bake-off of 2026-12-04 found that Feat-D alone made images worse (crop NIQE 8.11 -> 9.9, and the
montage showed edge halos and speckle). This study asks whether that is our Feat-D design or the
scale, one factor at a time from the first design (the variant named "default": feat_norm rms; since the
study named it, the architecture's default is feat_norm channel):

- CLIP layers: the default stages 1-3, stage 1 alone (early), stage 3 alone (late);
- ``feat_norm``: the default running RMS per layer, none, per-channel standardisation;
- the heads' receptive field: the default (two 3x3 convs: 5 positions a side), pointwise (depth 0: one
  position), deep (four 3x3 convs: 9 positions);
- the generator's term: the default vanilla (non-saturating BCE), relativistic average (ESRGAN), paired
  feature matching on the heads' activations (pix2pixHD).

Every variant fine-tunes the bake-off's stage-1 L1 generator against SFD with Feat-D only and with
Feat-D + TG-D, at the same per-head weight (as inside SFD), for every seed, exactly as the bake-off
fine-tunes its SFD contestants (sfd_lab.bakeoff.contestants: the demo's optimisers and EMA, random crops
of the photo set's **train** split, per seed the same batches in the same order, the discriminator's
accuracy probed on validation crops). Everything is judged on the whole images of the **validation**
split, never on the held-out test photos: PSNR-Y, NIQE (BasicSR's, whole image) and the realism test
(sfd_lab.bakeoff.realism, a classifier two-sample test cross-validated across scenes, the seeds of a
variant pooled as the bake-off pools them). The program (sfd_lab.bakeoff.featd_run) runs these jobs as
tasks kept on disk (sfd_lab.bakeoff.plan); the report (sfd_lab.bakeoff.featd_report) pairs each variant
with the default by scene and seed.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from sfd_lab.bakeoff import contestants as bo
from sfd_lab.bakeoff import jobs
from sfd_lab.bakeoff.data import SCALE, data_order, probe_crops, read_png, write_png
from sfd_lab.bakeoff.evaluate import measure_outputs, upscale
from sfd_lab.bakeoff.jobs import _realism, pairs_of

# variant -> (factor, what it changes, network_d options, feat_gan_opt options); one factor at a time
VARIANTS = {
    "default": ("default", "the first default: stages 1-3, feat_norm rms, two 3x3 convs, vanilla", {}, {}),
    "layers_early": ("layers", "stage 1 only (early, stride 4)", {"feat_layers": [1]}, {}),
    "layers_late": ("layers", "stage 3 only (late, stride 16)", {"feat_layers": [3]}, {}),
    "norm_none": ("feat_norm", "feat_norm none (maps as they are)", {"feat_norm": "none"}, {}),
    "norm_channel": ("feat_norm", "feat_norm channel (per-channel standardisation)", {"feat_norm": "channel"}, {}),
    "head_pointwise": ("head", "feat_head_depth 0 (each position alone)", {"feat_head_depth": 0}, {}),
    "head_deep": ("head", "feat_head_depth 4 (9 positions a side)", {"feat_head_depth": 4}, {}),
    "g_relativistic": ("G loss", "relativistic average (D and G)", {}, {"relativistic": True}),
    "g_feature_matching": ("G loss", "paired feature matching (G), vanilla D", {}, {"feature_matching": True}),
}
CONFIGS = {"feat": "Feat-D only", "sfd": "Feat-D + TG-D"}
CONTESTANT_OF = {"feat": "feat_d", "sfd": "sfd"}  # the bake-off contestant each configuration starts from
REFERENCES = ("hr", "bicubic", "bicubic_noise4", "stage1")  # validation rows next to the variants
CONTROLS = {"l1": "L1 only (GAN weight 0)", "tg_d": "TG-D only"}  # fine-tuned like the variants, every seed


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """Everything that decides the results (a rerun with other settings into the same ``--out`` is refused).

    seeds: fine-tuning runs per variant and config; iters / batch / gt_size: fine-tuning iterations,
    batch and HR crop (the bake-off's); head_weight: adversarial weight of each head (Feat-D, and TG-D
    where on) next to L1 weight 1 (the bake-off's middle GAN weight 0.1, halved per head); d_lr: the
    heads' Adam learning rate; feat_mid / n_ctx: head width and TG-D context tokens (the bake-off's);
    stage1_iters / stage1_seed: the stage-1 generator (None: the demo recipe's iterations); realism:
    keyword arguments of sfd_lab.bakeoff.realism.realism_test (the bake-off's).
    """

    seeds: tuple[int, ...] = (0, 1)
    iters: int = 300
    batch: int = 4
    gt_size: int = 128
    head_weight: float = 0.05
    d_lr: float = 1e-3
    feat_mid: int = 32
    n_ctx: int = 8
    stage1_iters: int | None = None
    stage1_seed: int = 0
    realism: tuple[tuple[str, int], ...] = bo.BakeoffSettings().realism
    variants: tuple[str, ...] = tuple(VARIANTS)
    configs: tuple[str, ...] = tuple(CONFIGS)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS)) + sorted(set(self.configs) - set(CONFIGS))
        if unknown:
            raise ValueError(f"unknown variant/config {unknown}; variants: {', '.join(VARIANTS)}; configs: feat, sfd")
        if "default" not in self.variants:
            raise ValueError("variants must include 'default': every variant is compared with it")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if self.gt_size % SCALE or min(self.iters, self.batch) < 1 or self.head_weight <= 0:
            raise ValueError("gt_size must be a multiple of 4, iters and batch >= 1, head_weight > 0")

    def bakeoff(self, seed: int) -> bo.BakeoffSettings:
        """The bake-off settings of one run (its fine-tuning, with this study's sizes)."""
        return bo.BakeoffSettings(
            seeds=(seed,), iters=self.iters, batch=self.batch, gt_size=self.gt_size, n_ctx=self.n_ctx,
            feat_mid=self.feat_mid, gan_weights=(2 * self.head_weight,), frontier=(),
            contestants=("sfd", "feat_d", *CONTROLS),
        )  # fmt: skip


def run_key(variant: str, config: str, seed: int) -> str:
    return f"{variant}-{config}-s{seed}"


def stage2_options(variant: str, config: str, seed: int, s: StudySettings, clip: str, stage1: str, exp: str) -> dict:
    """BasicSR options of one run: the bake-off's SFD (Feat-D + TG-D) or Feat-D-only fine-tuning at GAN
    weight ``2 * head_weight`` (each head ``head_weight``), with this variant's Feat-D and generator term."""
    c = bo.CONTESTANTS[CONTESTANT_OF[config]]
    opt = bo.stage2_options(c, s.bakeoff(seed), {"quality": clip}, stage1, exp, 2 * s.head_weight, s.d_lr)
    _, _, net_d, loss = VARIANTS[variant]
    opt["network_d"].update(net_d)
    opt["train"]["feat_gan_opt"].update(loss)
    return opt


def _finetune_on_val(key: str, opt: dict, seed: int, s: StudySettings, photos: dict, cache_dir: str, out_dir: str):
    """Fine-tune with ``opt`` (the discriminator's accuracy probed on validation crops, when there is one),
    then the EMA generator on the whole validation photos: per-photo PSNR/SSIM-Y and NIQE, outputs as PNGs."""
    import time

    import torch
    from basicsr.models import build_model

    train, val = pairs_of(photos, "train", cache_dir), pairs_of(photos, "val", cache_dir)
    lr_crop = s.gt_size // SCALE
    order = data_order([p.lr.shape[:2] for p in train], s.iters, s.batch, seed, lr_crop)
    has_d = "network_d" in opt
    probe = probe_crops(val, bo.PROBE_CROPS, lr_crop) if has_d else None
    cpu0 = time.process_time()
    torch.manual_seed(seed)
    model = build_model(opt)
    curve, seconds = bo._train(model, order, train, lr_crop, probe)
    model.save_network([model.net_g, model.net_g_ema], "net_g", s.iters, param_key=["params", "params_ema"])
    if has_d:
        model.save_network(model.net_d, "net_d", s.iters)
    t0 = time.perf_counter()
    outputs = [upscale(model.net_g_ema, p.lr) for p in val]
    folder = os.path.join(out_dir, "sr", key)
    for p, img in zip(val, outputs):
        write_png(img, os.path.join(folder, f"{p.name}.png"))
    accs = [row["d_acc"] for row in curve] if has_d else None
    return {
        "network_d": {k: v for k, v in opt.get("network_d", {}).items() if k != "clip_pretrained"},
        "generator_losses": {k: opt["train"].get(k) for k in ("pixel_opt", "feat_gan_opt", "text_gan_opt")},
        "d_lr": s.d_lr if has_d else None,
        "train_seconds": round(seconds, 1),
        "eval_seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "d_acc_final": accs[-1] if accs else None,
        "d_acc_max": max(accs) if accs else None,
        "d_acc_last3": float(np.mean(accs[-3:])) if accs else None,
        "final_log": curve[-1],
        "curve": curve,
        "per_image": measure_outputs(val, outputs),
        "sr_dir": folder,
    }


def job_run(
    variant: str, config: str, seed: int, settings: StudySettings, clip: str, stage1: str, photos: dict,
    cache_dir: str, out_dir: str,
) -> dict:  # fmt: skip
    """One variant x config x seed, fine-tuned and measured on the validation photos (:func:`_finetune_on_val`)."""
    key = run_key(variant, config, seed)
    opt = stage2_options(variant, config, seed, settings, clip, stage1, os.path.join(out_dir, "runs", key))
    facts = _finetune_on_val(key, opt, seed, settings, photos, cache_dir, out_dir)
    return {"key": key, "variant": variant, "config": config, "seed": seed, **facts}


def job_control(
    control: str, seed: int, settings: StudySettings, clip: str, stage1: str, photos: dict, cache_dir: str, out_dir: str
) -> dict:
    """A control of one seed, fine-tuned and measured like the variants: ``l1`` (the same fine-tuning with
    GAN weight 0: what the iterations alone do) or ``tg_d`` (TG-D alone at the same per-head weight)."""
    key = f"control-{control}-s{seed}"
    c = bo.CONTESTANTS[control]
    exp = os.path.join(out_dir, "runs", key)
    opt = bo.stage2_options(
        c, settings.bakeoff(seed), {"quality": clip}, stage1, exp, 2 * settings.head_weight, settings.d_lr
    )
    return {
        "key": key,
        "control": control,
        "seed": seed,
        **_finetune_on_val(key, opt, seed, settings, photos, cache_dir, out_dir),
    }


def job_reference(row: str, photos: dict, cache_dir: str, out_dir: str, checkpoint: str | None = None) -> dict:
    """The bake-off's reference row (sfd_lab.bakeoff.jobs.job_reference) on the whole validation photos."""
    return jobs.job_reference(row, photos, cache_dir, out_dir, checkpoint, split="val")


def job_realism(name: str, sr_dirs: list[str], photos: dict, cache_dir: str, settings: dict) -> dict:
    """The realism test of one variant (or reference) on the whole validation photos, its seeds pooled
    (``sr_dirs``: one folder per seed); ``per_seed`` holds each seed's accuracy per scene."""
    import time

    val = pairs_of(photos, "val", cache_dir)
    outputs = [[read_png(os.path.join(d, f"{p.name}.png")) for p in val] for d in sr_dirs]
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = _realism(val, outputs, settings, seed=0)
    counts: dict[str, int] = {}
    for p in val:
        counts[p.scene] = counts.get(p.scene, 0) + 1
    per_seed: list[dict] = [{} for _ in sr_dirs]
    for scene, accs in result["per_image"].items():  # seed-major: a scene's images of seed k follow seed k - 1's
        n = counts[scene]
        for k, row in enumerate(per_seed):
            row[scene] = float(np.mean(accs[k * n : (k + 1) * n]))
    seconds, cpu = round(time.perf_counter() - t0, 1), round(time.process_time() - cpu0, 1)
    return {**result, "name": name, "per_seed": per_seed, "seconds": seconds, "cpu_seconds": cpu}
