"""The bake-off's training side: one stage-1 L1 generator fine-tuned against each discriminator.

Every run starts from the same stage-1 generator (the demo's recipe, ``options/demo_SR_psnr_cpu.yml``,
trained on the photo set's *train* split) and is fine-tuned with the same generator losses (L1 weight
1 + adversarial terms; the demo has no perceptual loss, so neither has the bake-off), the same
optimisers and EMA (the demo's stage-2 recipe, ``options/demo_SFD_cpu.yml``), the same iterations
and, per seed, the same batches in the same order with the same flips. Only the discriminator (and
the BasicSR model hosting it), the GAN weight and the discriminator's learning rate differ:

- the **L1-only control**: the same fine-tuning with GAN weight 0 (BasicSR's ``SRModel``): what the
  extra iterations alone do;
- stock discriminators through BasicSR's ``SRGANModel`` (vanilla GAN loss): Real-ESRGAN's
  ``UNetDiscriminatorSN``, ESRGAN's ``VGGStyleDiscriminator`` and a plain pix2pix PatchGAN
  (``CSUDPatchDiscriminator`` with ``use_high_pass: false``: 3-channel NLayer, InstanceNorm);
- SFD through ``SFDModel``: Feat-D + TG-D on the quality-aware tiny CLIP (sfd_lab.checks.quality_clip),
  the same on *random* weights of that CLIP (BatchNorm calibrated: do CLIP's semantics matter?),
  Feat-D only and TG-D only. Their Feat-D normalises its CLIP maps with ``feat_norm: rms`` (the first
  default, named so that these rows keep their meaning); ``sfd_channel`` and ``feat_d_channel`` are
  the same with ``feat_norm: channel`` (the default since the Feat-D design study of 2026-12-07).

GAN weight ``w``: a stock discriminator's GAN term has weight ``w``; SFD gives **each head** ``w / 2``
(as its stock-model drop-in weighs them), and so do the ablations: Feat-D only and TG-D only keep
their head at ``w / 2`` — the same per-head weight as inside SFD, not the whole ``w`` on one head.

Each run logs the discriminator's accuracy on a fixed set of *validation* crops (real HR vs the
current generator's output; every output position judged, real > 0 and fake < 0, as the D step
sees them) at ten points of training: a discriminator that never leaves chance did not learn.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time

import numpy as np
import torch

from sfd_lab.bakeoff.data import SCALE, Pair, data_order, make_batch, probe_crops

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGE1_RECIPE = os.path.join(ROOT, "options", "demo_SR_psnr_cpu.yml")
STAGE2_RECIPE = os.path.join(ROOT, "options", "demo_SFD_cpu.yml")
QUALITY_CLIP_MODEL = "quality-tiny-rn"  # sfd_lab.checks.quality_clip.QUALITY_CLIP_MODEL
PROBE_CROPS = 16  # validation crops the discriminator accuracy is measured on
# A discriminator learned on a seed when its probe accuracy exceeds LEARNED_ACCURACY at LEARNED_PROBES or more
# of the ten probes (one probe above it can be chance: 16 crops, one logit each for VGG-style and TG-D).
LEARNED_ACCURACY, LEARNED_PROBES = 0.55, 2


@dataclasses.dataclass(frozen=True)
class Contestant:
    """One row of the bake-off: its label, the BasicSR model hosting it, and its discriminator kind."""

    key: str
    label: str
    short: str  # a column title in the montage
    host: str  # "SRModel" (no discriminator), "SRGANModel" or "SFDModel"
    kind: str  # none | unet | vgg | patchgan | sfd
    clip: str | None = None  # "quality" | "random" (SFD only)
    use_feat: bool = True
    use_text: bool = True
    feat_norm: str | None = None  # Feat-D's normalisation of its CLIP maps (SFD kinds with Feat-D only)

    @property
    def has_d(self) -> bool:
        return self.kind != "none"


CONTESTANTS = {
    c.key: c
    for c in (
        Contestant("l1", "L1-only control (GAN weight 0)", "L1 only", "SRModel", "none"),
        Contestant("unet", "U-Net SN (Real-ESRGAN)", "U-Net SN", "SRGANModel", "unet"),
        Contestant("vgg", "VGG-style (ESRGAN)", "VGG-style", "SRGANModel", "vgg"),
        Contestant("patchgan", "PatchGAN (pix2pix)", "PatchGAN", "SRGANModel", "patchgan"),
        Contestant("sfd", "SFD: Feat-D (rms) + TG-D", "SFD (rms)", "SFDModel", "sfd", "quality", feat_norm="rms"),
        Contestant(
            "sfd_random", "SFD, random CLIP (rms)", "SFD rand. CLIP", "SFDModel", "sfd", "random", feat_norm="rms"
        ),
        Contestant(
            "feat_d", "Feat-D (rms) only", "Feat-D only", "SFDModel", "sfd", "quality", use_text=False, feat_norm="rms"
        ),
        Contestant("tg_d", "TG-D only", "TG-D only", "SFDModel", "sfd", "quality", use_feat=False),
        Contestant(
            "sfd_channel",
            "SFD: Feat-D (channel) + TG-D",
            "SFD (ch.)",
            "SFDModel",
            "sfd",
            "quality",
            feat_norm="channel",
        ),  # fmt: skip
        Contestant(
            "feat_d_channel",
            "Feat-D (channel) only",
            "Feat-D (ch.)",
            "SFDModel",
            "sfd",
            "quality",
            use_text=False,
            feat_norm="channel",
        ),  # fmt: skip
    )
}


@dataclasses.dataclass(frozen=True)
class BakeoffSettings:
    """Everything that decides the trained generators and the measures.

    seeds: one fine-tuning run per contestant, GAN weight and seed (seed = data order and
    discriminator init); iters / batch / gt_size: fine-tuning iterations, batch and HR crop
    (VGGStyleDiscriminator needs 128 or 256); gan_weights: the frontier's total adversarial weights
    next to L1 weight 1 — the ``frontier`` contestants run at every one, the others at the middle
    one, where each discriminator's Adam learning rate is also chosen from ``lr_grid`` on the
    validation split (seed ``seeds[0]``); d_width: base width of the stock discriminators (num_feat
    / ndf; their defaults are 64); n_ctx / feat_mid: TG-D context tokens and Feat-D head width;
    stage1_iters: L1 iterations (None = the recipe's); realism: keyword arguments of
    sfd_lab.bakeoff.realism.realism_test (patch, patches_per_image, folds, steps, batch, width).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    iters: int = 300
    batch: int = 4
    gt_size: int = 128
    gan_weights: tuple[float, ...] = (0.03, 0.1, 0.3)
    frontier: tuple[str, ...] = ("sfd", "sfd_channel", "patchgan", "unet")
    lr_grid: tuple[float, ...] = (1e-4, 3e-4, 1e-3)
    d_width: int = 16
    n_ctx: int = 8
    feat_mid: int = 32
    stage1_iters: int | None = None
    stage1_seed: int = 0
    contestants: tuple[str, ...] = tuple(CONTESTANTS)
    realism: tuple[tuple[str, int], ...] = (("patch", 64), ("patches_per_image", 32), ("folds", 3), ("steps", 250))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.contestants) - set(CONTESTANTS))
        if unknown:
            raise ValueError(f"unknown contestant(s) {unknown}; choose from {', '.join(CONTESTANTS)}")
        bad_frontier = sorted(set(self.frontier) - set(self.contestants) - {"l1"})
        if bad_frontier:
            raise ValueError(f"frontier contestant(s) {bad_frontier} are not among the contestants")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if "vgg" in self.contestants and self.gt_size not in (128, 256):
            raise ValueError(f"gt_size {self.gt_size}: VGGStyleDiscriminator takes 128 or 256 crops")
        if min(self.iters, self.batch, self.d_width) < 1 or self.gt_size % SCALE:
            raise ValueError("iters, batch and d_width must be >= 1 and gt_size a multiple of 4")
        w = list(self.gan_weights)
        if not w or min(w) <= 0 or sorted(set(w)) != w:
            raise ValueError(f"gan_weights must be positive and increasing, got {list(self.gan_weights)}")
        if not self.lr_grid or min(self.lr_grid) <= 0:
            raise ValueError(f"lr_grid must hold positive learning rates, got {list(self.lr_grid)}")

    @property
    def mid_weight(self) -> float:
        """The GAN weight of the single-weight contestants and of the learning-rate choice."""
        return self.gan_weights[(len(self.gan_weights) - 1) // 2]

    def weights_of(self, key: str) -> tuple[float, ...]:
        if key == "l1":
            return (0.0,)
        return self.gan_weights if key in self.frontier else (self.mid_weight,)


def read_recipe(path: str) -> dict:
    """A YAML recipe, read with the safe loader."""
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# -- options ------------------------------------------------------------------------------------------------
def network_d(c: Contestant, s: BakeoffSettings, clips: dict[str, str]) -> dict | None:
    """BasicSR ``network_d`` of a contestant (None for the L1 control); ``clips`` = {"quality", "random"}."""
    if c.kind == "none":
        return None
    if c.kind == "unet":
        return {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": s.d_width, "skip_connection": True}
    if c.kind == "vgg":
        return {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": s.d_width, "input_size": s.gt_size}
    if c.kind == "patchgan":
        return {
            "type": "CSUDPatchDiscriminator",
            "num_in_ch": 3,
            "ndf": s.d_width,
            "n_layers": 3,
            "use_high_pass": False,
        }
    return {
        "type": "SFDDiscriminator",
        "clip_model": QUALITY_CLIP_MODEL,
        "clip_pretrained": clips[c.clip],
        "n_ctx": s.n_ctx,
        "feat_mid_channels": s.feat_mid,
        "use_feat": c.use_feat,
        "use_text": c.use_text,
        **({"feat_norm": c.feat_norm} if c.feat_norm and c.use_feat else {}),
    }


def gan_losses(c: Contestant, gan_weight: float) -> dict:
    """The adversarial terms under ``train`` (keys set to None are removed from the defaults): one
    stock GANLoss of weight ``w``, or SFD's terms at ``w / 2`` per head, ablations included."""
    if c.host == "SRModel":
        return {"gan_opt": None, "feat_gan_opt": None, "text_gan_opt": None}
    if c.host == "SRGANModel":
        return {
            "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": gan_weight},
            "feat_gan_opt": None,
            "text_gan_opt": None,
        }
    term = {"type": "SFDGANLoss", "gan_type": "vanilla", "loss_weight": gan_weight / 2}
    return {"feat_gan_opt": dict(term) if c.use_feat else None, "text_gan_opt": dict(term) if c.use_text else None}


def generator_losses(opt: dict) -> dict:
    """The generator's terms of an options dict: {name: (type, weight)}, each adversarial term on its own."""
    t = opt["train"]
    keys = ("pixel_opt", "perceptual_opt", "gan_opt", "feat_gan_opt", "text_gan_opt")
    return {k: (t[k]["type"], float(t[k]["loss_weight"])) for k in keys if t.get(k)}


def stage2_options(
    c: Contestant, s: BakeoffSettings, clips: dict, stage1: str | None, exp_dir: str, gan_weight: float, d_lr: float
) -> dict:
    """BasicSR options of one fine-tuning: the demo's stage-2 generator, optimisers, EMA and L1 term;
    the contestant's discriminator (Adam at ``d_lr``) and adversarial terms; no perceptual loss."""
    from sfd_utils.presets import sfd_options

    recipe = read_recipe(STAGE2_RECIPE)
    rt = recipe["train"]
    train = {
        "ema_decay": rt.get("ema_decay", 0),
        "optim_g": dict(rt["optim_g"]),
        "scheduler": dict(rt["scheduler"]),
        "pixel_opt": dict(rt["pixel_opt"]),
        "total_iter": s.iters,
        **gan_losses(c, gan_weight),
    }
    if c.has_d:
        train.update(optim_d={**rt["optim_d"], "lr": d_lr}, net_d_iters=rt.get("net_d_iters", 1))
        train["net_d_init_iters"] = rt.get("net_d_init_iters", 0)
    else:
        train.update(optim_d=None, net_d_iters=None, net_d_init_iters=None)
    opt = sfd_options(exp_dir, {}, copy.deepcopy(recipe["network_g"]), train=copy.deepcopy(train), model_type=c.host)
    nd = network_d(c, s, clips)
    if nd is None:
        opt.pop("network_d")
    else:
        opt["network_d"] = nd
    opt["path"].update({"pretrain_network_g": stage1, "param_key_g": "params_ema", "strict_load_g": True})
    opt["gt_size"] = s.gt_size  # recorded in SFD checkpoints: SFD-IQA tiles of the training crop
    return opt


def stage1_options(exp_dir: str, iters: int | None) -> dict:
    """The demo's stage-1 recipe (L1 only) as an options dict for BasicSR's SRModel."""
    from sfd_utils.presets import sfd_options

    recipe = read_recipe(STAGE1_RECIPE)
    rt = recipe["train"]
    train = {k: copy.deepcopy(rt[k]) for k in ("ema_decay", "optim_g", "scheduler", "pixel_opt", "warmup_iter")}
    train["total_iter"] = iters or rt["total_iter"]
    drop = {k: None for k in ("optim_d", "feat_gan_opt", "text_gan_opt", "net_d_iters", "net_d_init_iters")}
    opt = sfd_options(exp_dir, {}, copy.deepcopy(recipe["network_g"]), train={**train, **drop}, model_type="SRModel")
    opt.pop("network_d")
    return opt


# -- training ------------------------------------------------------------------------------------------------
@torch.no_grad()
def d_accuracy(model, probe: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Accuracy of the model's discriminator on the probe crops: real HR and the current generator's
    output, each as a separate batch (as the D step feeds them), every output position judged
    (real > 0, fake < 0). Measured in training mode, so BatchNorm sees what the D step sees; every
    buffer it moves (running statistics, spectral-norm vectors, Feat-D's running RMS) is put back
    afterwards, so the run itself is not touched."""
    lq, gt = probe
    net_d = model.get_bare_model(model.net_d)
    saved = {k: v.clone() for k, v in net_d.state_dict().items() if isinstance(v, torch.Tensor)}
    was_training = net_d.training
    net_d.train()
    try:
        fake = model.net_g(lq).clamp(0, 1)
        real_out, fake_out = net_d(gt).float(), net_d(fake).float()
    finally:
        net_d.load_state_dict(saved, strict=False)
        net_d.train(was_training)
    acc_real, acc_fake = float((real_out > 0).float().mean()), float((fake_out < 0).float().mean())
    return {"acc": (acc_real + acc_fake) / 2, "acc_real": acc_real, "acc_fake": acc_fake}


def _train(model, order: list[dict], pairs: list[Pair], lr_crop: int, probe=None, log_points: int = 10):
    """BasicSR's per-iteration calls (learning rate, feed, optimise) over ``order``; returns the log
    curve (with the discriminator's probe accuracy when ``probe`` is given) and the training seconds
    (probes excluded)."""
    every = max(1, len(order) // log_points)
    curve, seconds = [], 0.0
    for it, step in enumerate(order, 1):
        start = time.perf_counter()
        model.update_learning_rate(it, warmup_iter=-1)
        model.feed_data(make_batch(pairs, step, lr_crop))
        model.optimize_parameters(it)
        seconds += time.perf_counter() - start
        if it % every == 0 or it == len(order):
            row = {"iter": it, **{k: round(float(v), 5) for k, v in model.log_dict.items()}}
            if probe is not None:
                row.update({f"d_{k}": round(v, 4) for k, v in d_accuracy(model, probe).items()})
            curve.append(row)
    return curve, seconds


def train_stage1(train_pairs: list[Pair], out_dir: str, iters: int | None = None, seed: int = 0) -> dict:
    """The one stage-1 generator: the demo's L1 recipe on crops of the training photos. Returns facts
    and the checkpoint (``params`` + ``params_ema``)."""
    from basicsr.models import build_model

    opt = stage1_options(os.path.join(out_dir, "stage1"), iters)
    recipe_data = read_recipe(STAGE1_RECIPE)["datasets"]["train"]
    gt, batch = int(recipe_data["gt_size"]), int(recipe_data["batch_size_per_gpu"])
    torch.manual_seed(seed)
    model = build_model(opt)
    total = opt["train"]["total_iter"]
    order = data_order([p.lr.shape[:2] for p in train_pairs], total, batch, seed, gt // SCALE)
    curve, seconds = _train(model, order, train_pairs, gt // SCALE)
    model.save_network([model.net_g, model.net_g_ema], "net_g", total, param_key=["params", "params_ema"])
    return {
        "checkpoint": os.path.join(opt["path"]["models"], f"net_g_{total}.pth"),
        "recipe": os.path.relpath(STAGE1_RECIPE, ROOT),
        "iters": total,
        "batch": batch,
        "gt_size": gt,
        "seed": seed,
        "train_photos": len(train_pairs),
        "seconds": round(seconds, 1),
        "curve": curve,
    }


def load_generator(checkpoint: str, key: str = "params_ema") -> torch.nn.Module:
    """The demo generator architecture with weights from a checkpoint (weights only)."""
    from basicsr.archs import build_network

    from sfd_utils.checkpoint import load_generator_weights

    net = build_network(copy.deepcopy(read_recipe(STAGE1_RECIPE)["network_g"]))
    load_generator_weights(net, checkpoint, key)
    return net.eval()


def finetune(
    key: str,
    gan_weight: float,
    d_lr: float | None,
    seed: int,
    s: BakeoffSettings,
    clips: dict,
    stage1: str,
    train_pairs: list[Pair],
    val_pairs: list[Pair],
    exp_dir: str,
) -> dict:
    """One contestant at one GAN weight, D learning rate and seed: fine-tune the stage-1 generator and
    save its networks. Returns facts: seconds, the log curve with the discriminator's accuracy on the
    validation probe, and the checkpoint paths (``net_g``: params + params_ema)."""
    from basicsr.models import build_model

    c = CONTESTANTS[key]
    opt = stage2_options(c, s, clips, stage1, exp_dir, gan_weight, d_lr or 0.0)
    lr_crop = s.gt_size // SCALE
    order = data_order([p.lr.shape[:2] for p in train_pairs], s.iters, s.batch, seed, lr_crop)
    probe = probe_crops(val_pairs, PROBE_CROPS, lr_crop) if c.has_d else None
    torch.manual_seed(seed)
    model = build_model(opt)
    curve, seconds = _train(model, order, train_pairs, lr_crop, probe)
    model.save_network([model.net_g, model.net_g_ema], "net_g", s.iters, param_key=["params", "params_ema"])
    facts = {
        "contestant": key,
        "gan_weight": gan_weight,
        "d_lr": d_lr,
        "seed": seed,
        "seconds": round(seconds, 1),
        "s_per_iter": round(seconds / s.iters, 4),
        "generator_losses": generator_losses(opt),
        "curve": curve,
        "net_g": os.path.join(opt["path"]["models"], f"net_g_{s.iters}.pth"),
    }
    if c.has_d:
        model.save_network(model.net_d, "net_d", s.iters)
        accs = [row["d_acc"] for row in curve]
        facts.update(
            network_d={k: v for k, v in opt["network_d"].items() if k != "clip_pretrained"},
            net_d=os.path.join(opt["path"]["models"], f"net_d_{s.iters}.pth"),
            d_acc_final=accs[-1],
            d_acc_max=max(accs),
            d_acc_last3=float(np.mean(accs[-3:])),
        )
    return facts
