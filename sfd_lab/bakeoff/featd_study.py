"""``scripts/featd_study.py``: which Feat-D design helps a generator at this scale? (issue 30 item 7)

The bake-off of 2026-12-04 found that Feat-D alone made images worse (crop NIQE 8.11 -> 9.9, and the
montage showed edge halos and speckle). This study asks whether that is our Feat-D design or the
scale, one factor at a time from today's default:

- CLIP layers: the default stages 1-3, stage 1 alone (early), stage 3 alone (late);
- ``feat_norm``: the default running RMS per layer, none, per-channel standardisation;
- the heads' receptive field: the default (two 3x3 convs: 5 positions a side), pointwise (depth 0: one
  position), deep (four 3x3 convs: 9 positions);
- the generator's term: the default vanilla (non-saturating BCE), relativistic average (ESRGAN), paired
  feature matching on the heads' activations (pix2pixHD).

Every variant fine-tunes the same stage-1 L1 generator against SFD with Feat-D only and with Feat-D +
TG-D, at the same per-head weight (as inside SFD), for every seed, with the bake-off's fine-tuning
(sfd_lab.bakeoff.contestants: optimisers, EMA, per-seed batches in the same order). Generators train on
tiles of the photo set's **train** split; everything is judged on the whole images of its **validation**
split (never the held-out test photos): PSNR-Y, NIQE (BasicSR's, whole image) and the realism test
(sfd_lab.bakeoff.realism, a classifier two-sample test cross-validated across scenes). The report
(sfd_lab.bakeoff.featd_report) pairs each variant with the default by image and seed.

Resumable: the stage-1 generator and every variant x config x seed result are kept under ``--out``
and a rerun skips what is there (a changed setting is refused rather than mixed in).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import torch

from sfd_lab.bakeoff import contestants as bo

# variant -> (factor, what it changes, network_d options, feat_gan_opt options); one factor at a time
VARIANTS = {
    "default": ("default", "today's default: stages 1-3, feat_norm rms, two 3x3 convs, vanilla", {}, {}),
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


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """Everything that decides the results (a rerun with other settings into the same ``--out`` is refused).

    seeds: fine-tuning runs per variant and config; iters / batch / gt_size: fine-tuning iterations,
    batch and HR crop; head_weight: adversarial weight of each head (Feat-D, and TG-D where on) next to
    L1 weight 1; d_lr: the heads' Adam learning rate; feat_mid / n_ctx: head width and TG-D context
    tokens (the bake-off's); tile / tiles_per_photo: the HR training tiles cut from each training photo;
    stage1_iters: L1 iterations of the one stage-1 generator (None: the demo recipe's).
    """

    seeds: tuple[int, ...] = (0, 1)
    iters: int = 300
    batch: int = 4
    gt_size: int = 128
    head_weight: float = 0.05
    d_lr: float = 1e-3
    feat_mid: int = 32
    n_ctx: int = 8
    tile: int = 256
    tiles_per_photo: int = 16
    stage1_iters: int | None = None
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
        if self.gt_size % 4 or self.tile % 4 or self.gt_size > self.tile or min(self.iters, self.batch) < 1:
            raise ValueError("gt_size and tile must be multiples of 4 with gt_size <= tile; iters, batch >= 1")

    def training_key(self) -> dict:
        """The settings every stored run must share (the lists of variants, configs and seeds may grow)."""
        out = dataclasses.asdict(self)
        for k in ("seeds", "variants", "configs"):
            out.pop(k)
        return out


def run_key(variant: str, config: str, seed: int) -> str:
    return f"{variant}-{config}-seed{seed}"


# -- data ------------------------------------------------------------------------------------------------
def _to_tensor(imgs: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0


def training_tiles(photos, tile: int, per_photo: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """HR (N, 3, tile, tile) and MATLAB-bicubic x4 LR tiles of the training photos, at most ``per_photo``
    non-overlapping tiles each, evenly spread over the photo; and each tile's scene."""
    from sfd_utils.photos import bicubic_down, tiles

    hr, lr, scenes = [], [], []
    for p in photos:
        found = tiles(p.rgb(), tile, tile)
        if len(found) > per_photo:
            found = [found[i] for i in np.linspace(0, len(found) - 1, per_photo).round().astype(int)]
        for t in found:
            hr.append(np.ascontiguousarray(t))
            lr.append(bicubic_down(t, 4))
            scenes.append(p.scene)
    if not hr:
        raise ValueError(f"no {tile}² tile in the training photos")
    return _to_tensor(hr), _to_tensor(lr), scenes


def validation_images(photos) -> list[dict]:
    """{name, scene, hr (H, W, 3) uint8, lr (H/4, W/4, 3) uint8} of every validation photo, cropped to a
    multiple of 4 (whole images: NIQE and the realism test see all of them)."""
    from sfd_utils.photos import bicubic_down

    out = []
    for p in photos:
        img = p.rgb()
        h, w = (img.shape[0] // 4) * 4, (img.shape[1] // 4) * 4
        hr = np.ascontiguousarray(img[:h, :w])
        out.append({"name": p.name, "scene": p.scene, "hr": hr, "lr": bicubic_down(hr, 4)})
    return out


# -- metrics -------------------------------------------------------------------------------------------------
def image_metrics(sr: np.ndarray, hr: np.ndarray) -> dict:
    """PSNR-Y (border 4) against HR and BasicSR's NIQE (Y, border 4) of the whole image; uint8 RGB in."""
    from basicsr.metrics import calculate_niqe, calculate_psnr

    bgr_sr, bgr_hr = np.ascontiguousarray(sr[..., ::-1]), np.ascontiguousarray(hr[..., ::-1])
    return {
        "psnr": float(calculate_psnr(bgr_sr, bgr_hr, 4, "HWC", test_y_channel=True)),
        "niqe": float(calculate_niqe(bgr_sr, 4, "HWC", convert_to="y")),
    }


@torch.no_grad()
def upscale_images(net: torch.nn.Module, val: list[dict]) -> list[np.ndarray]:
    """Every validation LR image through ``net`` (one at a time: the sizes differ) -> uint8 RGB."""
    return [bo.upscale(net, _to_tensor([v["lr"]]))[0] for v in val]


def write_png(img: np.ndarray, path: str) -> None:
    import cv2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(img[..., ::-1])):
        raise OSError(f"could not write {path}")


def read_png(path: str) -> np.ndarray:
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"unreadable image {path}")
    return np.ascontiguousarray(img[..., ::-1])


# -- training ------------------------------------------------------------------------------------------------
class StudyData:
    """The study's images, prepared once per process: training tiles and validation images."""

    def __init__(self, s: StudySettings) -> None:
        from sfd_lab.photos import photo_set

        self.photos = photo_set()
        self.hr, self.lr, self.scenes = training_tiles(self.photos.train, s.tile, s.tiles_per_photo)
        self.val = validation_images(self.photos.val)


def train_stage1(data: StudyData, out_dir: str, s: StudySettings, seed: int = 0) -> dict:
    """The one stage-1 generator: the demo's L1 recipe on the training tiles (kept; reused on rerun)."""
    from basicsr.models import build_model

    facts_path = os.path.join(out_dir, "stage1.json")
    if os.path.isfile(facts_path):
        with open(facts_path, encoding="utf-8") as f:
            return json.load(f)
    opt = bo.stage1_options(os.path.join(out_dir, "stage1"), s.stage1_iters)
    recipe = bo.read_recipe(bo.STAGE1_RECIPE)["datasets"]["train"]
    gt, batch, total = int(recipe["gt_size"]), int(recipe["batch_size_per_gpu"]), opt["train"]["total_iter"]
    torch.manual_seed(seed)
    model = build_model(opt)
    order = bo.data_order(len(data.hr), total, batch, seed, data.lr.shape[-1], gt // 4)
    curve, seconds = bo._train(model, order, data.hr, data.lr, gt // 4)
    model.save_network([model.net_g, model.net_g_ema], "net_g", total, param_key=["params", "params_ema"])
    facts = {
        "checkpoint": os.path.join(opt["path"]["models"], f"net_g_{total}.pth"),
        "iters": total,
        "batch": batch,
        "gt_size": gt,
        "seed": seed,
        "seconds": round(seconds, 1),
        "final_l1": curve[-1].get("l_pix"),
    }
    with open(facts_path, "w", encoding="utf-8") as f:
        json.dump(facts, f, indent=1)
    return facts


def stage2_options(variant: str, config: str, seed: int, s: StudySettings, clip: str, stage1: str, exp: str) -> dict:
    """BasicSR options of one run: the bake-off's SFD fine-tuning with this variant's Feat-D and loss."""
    c = bo.Contestant(f"{variant}-{config}", CONFIGS[config], variant, "SFDModel", "sfd", "quality")
    c = dataclasses.replace(c, use_text=config == "sfd")
    bs = bo.BakeoffSettings(
        seeds=(seed,), iters=s.iters, batch=s.batch, gt_size=s.gt_size, gan_weight=s.head_weight, d_lr=s.d_lr,
        n_ctx=s.n_ctx, feat_mid=s.feat_mid, contestants=("sfd",),
    )  # fmt: skip
    opt = bo.stage2_options(c, bs, {"quality": clip}, stage1, exp)
    _, _, net_d, loss = VARIANTS[variant]
    opt["network_d"].update(net_d)
    term = {"type": "SFDGANLoss", "gan_type": "vanilla", "loss_weight": s.head_weight}
    opt["train"]["feat_gan_opt"] = {**term, **loss}
    if config == "sfd":
        opt["train"]["text_gan_opt"] = dict(term)  # the same per-head weight as Feat-D
    return opt


def finetune(variant: str, config: str, seed: int, s: StudySettings, clip: str, stage1: str, out_dir: str) -> dict:
    """One variant x config x seed: fine-tune, upscale the validation images (EMA generator), write them
    and the per-image PSNR-Y / NIQE. Returns the run's record (also written as ``runs/<key>.json``)."""
    from basicsr.models import build_model

    data = _data(s)
    key = run_key(variant, config, seed)
    exp = os.path.join(out_dir, "runs", key)
    opt = stage2_options(variant, config, seed, s, clip, stage1, exp)
    lr_crop = s.gt_size // 4
    order = bo.data_order(len(data.hr), s.iters, s.batch, seed, data.lr.shape[-1], lr_crop)
    torch.manual_seed(seed)
    cpu0 = time.process_time()
    model = build_model(opt)
    curve, seconds = bo._train(model, order, data.hr, data.lr, lr_crop)
    net_g = model.net_g_ema if getattr(model, "net_g_ema", None) is not None else model.net_g
    t0 = time.perf_counter()
    srs = upscale_images(net_g, data.val)
    images = []
    for v, sr in zip(data.val, srs):
        write_png(sr, os.path.join(out_dir, "sr", key, f"{v['name']}.png"))
        images.append({"name": v["name"], "scene": v["scene"], **image_metrics(sr, v["hr"])})
    tail = [row for row in curve if row["iter"] > s.iters // 2]
    record = {
        "key": key,
        "variant": variant,
        "config": config,
        "seed": seed,
        "settings": s.training_key(),
        "network_d": {k: v for k, v in opt["network_d"].items() if k != "clip_pretrained"},
        "feat_gan_opt": opt["train"]["feat_gan_opt"],
        "text_gan_opt": opt["train"].get("text_gan_opt"),
        "train_seconds": round(seconds, 1),
        "eval_seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "d_accuracy_feat_late": float(np.mean([r["acc_d_feat"] for r in tail])) if tail else None,
        "d_accuracy_text_late": (
            float(np.mean([r["acc_d_text"] for r in tail])) if tail and "acc_d_text" in tail[0] else None
        ),
        "final_log": curve[-1],
        "images": images,
    }
    _write_json(os.path.join(out_dir, "runs", f"{key}.json"), record)
    return record


def realism_of(out_dir: str, name: str, outputs: list[str], s: StudySettings, options: dict) -> dict:
    """The realism test (sfd_lab.bakeoff.realism) of the validation outputs in ``sr/<output>/`` for each
    of ``outputs`` (a method's runs, one per seed, pooled as the bake-off pools them: every HR image once
    per run) against HR; its ``per_image`` holds one accuracy per run and scene. Kept as
    ``realism/<name>.json`` and reused while the outputs and options are the same."""
    from sfd_lab.bakeoff.realism import realism_test

    path = os.path.join(out_dir, "realism", f"{name}.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        if stored.get("options") == options and stored.get("outputs") == outputs:
            return stored
    val = _data(s).val
    hr = {v["scene"]: [v["hr"]] * len(outputs) for v in val}
    sr = {v["scene"]: [read_png(os.path.join(out_dir, "sr", o, f"{v['name']}.png")) for o in outputs] for v in val}
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = {**realism_test(hr, sr, seed=0, **options), "options": options, "outputs": outputs}
    result["seconds"], result["cpu_seconds"] = round(time.perf_counter() - t0, 1), round(time.process_time() - cpu0, 1)
    _write_json(path, result)
    return result


_DATA: dict = {}


def _data(s: StudySettings) -> StudyData:
    """The study's images, made once per process (each worker makes its own)."""
    key = json.dumps(s.training_key(), sort_keys=True)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = StudyData(s)
    return _DATA[key]


def _write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(path + ".part", path)


def load_run(out_dir: str, key: str, s: StudySettings) -> dict | None:
    """A stored run's record, or None; a record made with other settings is refused (one line)."""
    path = os.path.join(out_dir, "runs", f"{key}.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if record.get("settings") != s.training_key():
        raise ValueError(f"{path} was made with other settings; use another --out or delete it")
    return record
