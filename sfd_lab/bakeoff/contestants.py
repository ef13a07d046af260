"""The bake-off's training side: one stage-1 L1 generator fine-tuned against seven discriminators.

Every contestant starts from the same stage-1 generator (the demo's, ``options/demo_SR_psnr_cpu.yml``)
and is fine-tuned with the same generator losses (L1 + one GAN term of the same total weight; the
demo has no perceptual loss, so neither has the bake-off), the same optimisers and EMA (the demo's
stage-2 recipe, ``options/demo_SFD_cpu.yml``), the same iterations and, per seed, the same batches in
the same order with the same flips. Only the discriminator (and the BasicSR model that hosts it)
differs:

- stock discriminators through BasicSR's ``SRGANModel`` (vanilla GAN loss): Real-ESRGAN's
  ``UNetDiscriminatorSN``, ESRGAN's ``VGGStyleDiscriminator`` and a plain pix2pix PatchGAN
  (``CSUDPatchDiscriminator`` with ``use_high_pass: false``: 3-channel NLayer, InstanceNorm);
- SFD through ``SFDModel``: Feat-D + TG-D on the quality-aware tiny CLIP (sfd_lab.checks.quality_clip),
  the same on *random* weights of that CLIP architecture (BatchNorm calibrated, as the learning
  check's stand-in: do CLIP's semantics matter?), Feat-D only and TG-D only (the paper's ablation).

The total adversarial weight is the same for every contestant: a stock discriminator's GAN term has
weight ``gan_weight``; SFD with both heads gives each head ``gan_weight / 2`` (as its stock-model
drop-in weighs them), Feat-D or TG-D alone gets ``gan_weight``.

Evaluation, plots and the report are the program's (sfd_lab.bakeoff.run); this module imports only
components and helpers.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time

import cv2
import numpy as np
import torch

from sfd_utils.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGE1_RECIPE = os.path.join(ROOT, "options", "demo_SR_psnr_cpu.yml")
STAGE2_RECIPE = os.path.join(ROOT, "options", "demo_SFD_cpu.yml")
QUALITY_CLIP_MODEL = "quality-tiny-rn"  # sfd_lab.checks.quality_clip.QUALITY_CLIP_MODEL
# the generators train on crops of these photos and are judged on crops of these (no shared scene)
GENERATOR_TRAIN_PHOTOS, EVAL_PHOTOS = TRAIN_PHOTOS, HELDOUT_PHOTOS
# The judge: the quality CLIP's trainer with another seed on other photos. The contestants' CLIP
# trained on the colour and the grey training photos (seed 0); scikit-image ships too few natural
# photos for a disjoint set that still judges colour crops (grey photos only: zero-shot AUC 0.57 on
# the held-out crops), so the judge trains on the colour training photos alone, never an evaluation one.
JUDGE_SEED, JUDGE_PHOTOS = 1, TRAIN_PHOTOS


@dataclasses.dataclass(frozen=True)
class Contestant:
    """One discriminator of the bake-off: its label, the BasicSR model hosting it, and its kind."""

    key: str
    label: str
    short: str  # a column title in the montage
    host: str  # "SRGANModel" or "SFDModel"
    kind: str  # unet | vgg | patchgan | sfd
    clip: str | None = None  # "quality" | "random" (SFD only)
    use_feat: bool = True
    use_text: bool = True


CONTESTANTS = {
    c.key: c
    for c in (
        Contestant("unet", "U-Net SN (Real-ESRGAN)", "U-Net SN", "SRGANModel", "unet"),
        Contestant("vgg", "VGG-style (ESRGAN)", "VGG-style", "SRGANModel", "vgg"),
        Contestant("patchgan", "PatchGAN (pix2pix)", "PatchGAN", "SRGANModel", "patchgan"),
        Contestant("sfd", "SFD: Feat-D + TG-D", "SFD", "SFDModel", "sfd", "quality"),
        Contestant("sfd_random", "SFD, random CLIP", "SFD rand. CLIP", "SFDModel", "sfd", "random"),
        Contestant("feat_d", "Feat-D only", "Feat-D only", "SFDModel", "sfd", "quality", use_text=False),
        Contestant("tg_d", "TG-D only", "TG-D only", "SFDModel", "sfd", "quality", use_feat=False),
    )
}


@dataclasses.dataclass(frozen=True)
class BakeoffSettings:
    """Everything that decides the trained generators.

    seeds: one fine-tuning run per contestant and seed (seed = data order and discriminator init);
    iters / batch / gt_size: stage-2 iterations, batch and HR crop (VGGStyleDiscriminator needs 128 or
    256); gan_weight: total adversarial weight next to L1 weight 1 (see module doc); d_lr: the
    discriminators' Adam learning rate (None = the demo recipe's 1e-4, at which no discriminator
    leaves chance accuracy in a few hundred iterations); d_width: base
    width of the stock discriminators (num_feat / ndf; their defaults are 64); n_ctx / feat_mid:
    TG-D context tokens and Feat-D head width; stage1_iters: L1 iterations (None = the recipe's).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    iters: int = 300
    batch: int = 4
    gt_size: int = 128
    gan_weight: float = 0.1
    d_lr: float | None = 1e-3
    d_width: int = 32
    n_ctx: int = 8
    feat_mid: int = 32
    stage1_iters: int | None = None
    stage1_seed: int = 0
    contestants: tuple[str, ...] = tuple(CONTESTANTS)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.contestants) - set(CONTESTANTS))
        if unknown:
            raise ValueError(f"unknown contestant(s) {unknown}; choose from {', '.join(CONTESTANTS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if "vgg" in self.contestants and self.gt_size not in (128, 256):
            raise ValueError(f"gt_size {self.gt_size}: VGGStyleDiscriminator takes 128 or 256 crops")
        if min(self.iters, self.batch, self.d_width) < 1 or self.gan_weight <= 0:
            raise ValueError("iters, batch and d_width must be >= 1 and gan_weight > 0")


def read_recipe(path: str) -> dict:
    """A YAML recipe, read with the safe loader."""
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# -- data ------------------------------------------------------------------------------------------------
def load_split(root: str, split: str, scale: int = 4) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(names, HR (N, 3, H, W), LR (N, 3, H/s, W/s)) float [0, 1] RGB of a demo-layout split
    (``root/<split>/{hr,lr_x<scale>}``, scripts/prepare_demo_data.py)."""
    hr_dir, lr_dir = os.path.join(root, split, "hr"), os.path.join(root, split, f"lr_x{scale}")
    names = sorted(f for f in os.listdir(hr_dir) if f.endswith(".png")) if os.path.isdir(hr_dir) else []
    if not names:
        raise FileNotFoundError(f"no HR images in {hr_dir} (write the data with scripts/prepare_demo_data.py)")

    def read(path: str) -> torch.Tensor:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"unreadable image {path}")
        return torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float() / 255.0

    hr = torch.stack([read(os.path.join(hr_dir, n)) for n in names])
    lr = torch.stack([read(os.path.join(lr_dir, n)) for n in names])
    if lr.shape[-1] * scale != hr.shape[-1] or lr.shape[-2] * scale != hr.shape[-2]:
        raise ValueError(f"{lr_dir}: LR {tuple(lr.shape[-2:])} is not HR {tuple(hr.shape[-2:])} / {scale}")
    return names, hr, lr


def data_order(n: int, iters: int, batch: int, seed: int, lr_size: int, lr_crop: int) -> list[dict]:
    """The batches of a run: per iteration the sample indices (epochs of random permutations), LR crop
    offsets and BasicSR-style flips/rotations. A function of the arguments only, so every contestant of
    a seed sees the same batches in the same order."""
    if lr_crop > lr_size:
        raise ValueError(f"crop of {lr_crop} LR pixels is larger than the {lr_size}-pixel LR images")
    rng = np.random.default_rng([seed, 24])
    pool: list[int] = []
    order = []
    for _ in range(iters):
        idx = []
        while len(idx) < batch:
            if not pool:
                pool = list(rng.permutation(n))
            idx.append(int(pool.pop()))
        order.append(
            {
                "idx": idx,
                "top": rng.integers(0, lr_size - lr_crop + 1, size=batch).tolist(),
                "left": rng.integers(0, lr_size - lr_crop + 1, size=batch).tolist(),
                "hflip": (rng.random(batch) < 0.5).tolist(),
                "vflip": (rng.random(batch) < 0.5).tolist(),
                "rot90": (rng.random(batch) < 0.5).tolist(),
            }
        )
    return order


def make_batch(hr: torch.Tensor, lr: torch.Tensor, step: dict, lr_crop: int, scale: int = 4) -> dict:
    """{'lq', 'gt'} of one ``data_order`` entry: paired crops, flips and rotations, contiguous."""
    lqs, gts = [], []
    for k, i in enumerate(step["idx"]):
        t, s = step["top"][k], step["left"][k]
        lq = lr[i, :, t : t + lr_crop, s : s + lr_crop]
        gt = hr[i, :, t * scale : (t + lr_crop) * scale, s * scale : (s + lr_crop) * scale]
        for flag, fn in (("hflip", lambda x: x.flip(-1)), ("vflip", lambda x: x.flip(-2))):
            if step[flag][k]:
                lq, gt = fn(lq), fn(gt)
        if step["rot90"][k]:
            lq, gt = lq.transpose(-1, -2), gt.transpose(-1, -2)
        lqs.append(lq)
        gts.append(gt)
    return {"lq": torch.stack(lqs).contiguous(), "gt": torch.stack(gts).contiguous()}


# -- options ------------------------------------------------------------------------------------------------
def network_d(c: Contestant, s: BakeoffSettings, clips: dict[str, str]) -> dict:
    """BasicSR ``network_d`` of a contestant; ``clips`` = {"quality": file, "random": file}."""
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
    }


def gan_losses(c: Contestant, gan_weight: float) -> dict:
    """The adversarial terms under ``train``: one stock GANLoss, or SFD's per-head terms with the same
    total weight. Keys set to None are removed from the defaults."""
    if c.host == "SRGANModel":
        return {
            "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": gan_weight},
            "feat_gan_opt": None,
            "text_gan_opt": None,
        }
    heads = int(c.use_feat) + int(c.use_text)
    term = {"type": "SFDGANLoss", "gan_type": "vanilla", "loss_weight": gan_weight / heads}
    return {"feat_gan_opt": dict(term) if c.use_feat else None, "text_gan_opt": dict(term) if c.use_text else None}


def generator_losses(opt: dict) -> dict:
    """The generator's terms of an options dict: {name: (type, weight)} with the adversarial weights
    summed under 'gan' (what the bake-off keeps identical across contestants)."""
    t = opt["train"]
    out = {k: (t[k]["type"], float(t[k]["loss_weight"])) for k in ("pixel_opt", "perceptual_opt") if t.get(k)}
    out["gan"] = sum(float(t[k]["loss_weight"]) for k in ("gan_opt", "feat_gan_opt", "text_gan_opt") if t.get(k))
    return out


def stage2_options(c: Contestant, s: BakeoffSettings, clips: dict, stage1: str, exp_dir: str) -> dict:
    """BasicSR options of one contestant's fine-tuning: the demo's stage-2 generator, optimisers, EMA
    and L1 term; the contestant's discriminator and adversarial term; no perceptual loss."""
    from sfd_utils.presets import sfd_options

    recipe = read_recipe(STAGE2_RECIPE)
    rt = recipe["train"]
    train = {
        "ema_decay": rt.get("ema_decay", 0),
        "optim_g": dict(rt["optim_g"]),
        "optim_d": {**rt["optim_d"], **({"lr": s.d_lr} if s.d_lr else {})},
        "scheduler": dict(rt["scheduler"]),
        "pixel_opt": dict(rt["pixel_opt"]),
        "net_d_iters": rt.get("net_d_iters", 1),
        "net_d_init_iters": rt.get("net_d_init_iters", 0),
        **gan_losses(c, s.gan_weight),
    }
    opt = sfd_options(exp_dir, {}, copy.deepcopy(recipe["network_g"]), train=copy.deepcopy(train), model_type=c.host)
    opt["network_d"] = network_d(c, s, clips)
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
def _train(model, order: list[dict], hr, lr, lr_crop: int, log_points: int = 10) -> tuple[list[dict], float]:
    """BasicSR's per-iteration calls (learning rate, feed, optimise) over ``order``; (log curve, seconds)."""
    every = max(1, len(order) // log_points)
    curve, start = [], time.perf_counter()
    for it, step in enumerate(order, 1):
        model.update_learning_rate(it, warmup_iter=-1)
        model.feed_data(make_batch(hr, lr, step, lr_crop))
        model.optimize_parameters(it)
        if it % every == 0 or it == len(order):
            curve.append({"iter": it, **{k: round(float(v), 5) for k, v in model.log_dict.items()}})
    return curve, time.perf_counter() - start


def train_stage1(data_root: str, out_dir: str, iters: int | None = None, seed: int = 0) -> dict:
    """The one stage-1 generator: the demo's L1 recipe on the demo training crops. Returns facts
    and the checkpoint (``params`` + ``params_ema``)."""
    from basicsr.models import build_model

    opt = stage1_options(os.path.join(out_dir, "stage1"), iters)
    recipe_data = read_recipe(STAGE1_RECIPE)["datasets"]["train"]
    gt, batch = int(recipe_data["gt_size"]), int(recipe_data["batch_size_per_gpu"])
    _, hr, lr = load_split(data_root, "train")
    torch.manual_seed(seed)
    model = build_model(opt)
    order = data_order(len(hr), opt["train"]["total_iter"], batch, seed, lr.shape[-1], gt // 4)
    curve, seconds = _train(model, order, hr, lr, gt // 4)
    total = opt["train"]["total_iter"]
    model.save_network([model.net_g, model.net_g_ema], "net_g", total, param_key=["params", "params_ema"])
    return {
        "checkpoint": os.path.join(opt["path"]["models"], f"net_g_{total}.pth"),
        "recipe": os.path.relpath(STAGE1_RECIPE, ROOT),
        "iters": total,
        "batch": batch,
        "gt_size": gt,
        "seed": seed,
        "train_images": len(hr),
        "seconds": round(seconds, 1),
        "curve": curve,
    }


@torch.no_grad()
def upscale(net: torch.nn.Module, lr: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, h, w) in [0, 1] -> N uint8 RGB images, rounded as scripts/inference_sr.py writes them."""
    net.eval()
    out = []
    for x in lr:
        y = net(x[None].contiguous())[0].clamp(0, 1)
        out.append((y.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8))
    return out


def write_images(images: list[np.ndarray], names: list[str], out_dir: str, suffix: str = "_out") -> str:
    """RGB uint8 images as ``<stem><suffix>.png`` (BasicSR/evaluate_sr.py naming)."""
    os.makedirs(out_dir, exist_ok=True)
    for img, name in zip(images, names):
        cv2.imwrite(os.path.join(out_dir, f"{os.path.splitext(name)[0]}{suffix}.png"), img[..., ::-1])
    return out_dir


def stage1_outputs(checkpoint: str, data_root: str, out_dir: str) -> dict[str, str]:
    """Held-out outputs of the references: bicubic upsampling and the stage-1 generator (EMA)."""
    from basicsr.archs import build_network

    from sfd_arch.bicubic_arch import SFDBicubicUpsampler
    from sfd_utils.checkpoint import load_generator_weights

    names, _, lr = load_split(data_root, "val")
    net = build_network(copy.deepcopy(read_recipe(STAGE1_RECIPE)["network_g"]))
    load_generator_weights(net, checkpoint, "params_ema")
    return {
        "bicubic": write_images(upscale(SFDBicubicUpsampler(4), lr), names, os.path.join(out_dir, "bicubic")),
        "stage1": write_images(upscale(net, lr), names, os.path.join(out_dir, "stage1")),
    }


def finetune(key: str, seed: int, s: BakeoffSettings, clips: dict, stage1: str, data_root: str, out_dir: str) -> dict:
    """One contestant, one seed: fine-tune the stage-1 generator, write its held-out outputs (EMA
    generator) and its networks. Returns facts (seconds, discriminator size, log curve, paths)."""
    from basicsr.models import build_model

    c = CONTESTANTS[key]
    exp = os.path.join(out_dir, "runs", f"{key}-seed{seed}")
    opt = stage2_options(c, s, clips, stage1, exp)
    _, hr, lr = load_split(data_root, "train")
    names, _, val_lr = load_split(data_root, "val")
    lr_crop = s.gt_size // 4
    order = data_order(len(hr), s.iters, s.batch, seed, lr.shape[-1], lr_crop)
    torch.manual_seed(seed)
    model = build_model(opt)
    curve, seconds = _train(model, order, hr, lr, lr_crop)
    net_g = model.net_g_ema if getattr(model, "net_g_ema", None) is not None else model.net_g
    sr_dir = write_images(upscale(net_g, val_lr), names, os.path.join(out_dir, "sr", key, f"seed{seed}"))
    g_nets = [model.net_g, model.net_g_ema] if net_g is not model.net_g else model.net_g
    g_keys = ["params", "params_ema"] if net_g is not model.net_g else "params"
    model.save_network(g_nets, "net_g", s.iters, param_key=g_keys)
    model.save_network(model.net_d, "net_d", s.iters)
    return {
        "contestant": key,
        "seed": seed,
        "seconds": round(seconds, 1),
        "s_per_iter": round(seconds / s.iters, 4),
        "d_params": sum(p.numel() for p in model.get_bare_model(model.net_d).parameters() if p.requires_grad),
        "generator_losses": generator_losses(opt),
        "network_d": {k: v for k, v in opt["network_d"].items() if k != "clip_pretrained"},
        "curve": curve,
        "sr_dir": sr_dir,
        "net_g": os.path.join(opt["path"]["models"], f"net_g_{s.iters}.pth"),
        "net_d": os.path.join(opt["path"]["models"], f"net_d_{s.iters}.pth"),
    }
