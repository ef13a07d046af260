"""Row ``iqa``: SFD-IQA throughput vs BasicSR NIQE and the bare CLIP forwards it needs."""

import contextlib
import importlib
import importlib.metadata
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from sfd_lab.bench.core import ratio_of, seed_all, time_stats, trace_ops
from sfd_lab.bench.gan_step import judge_target
from sfd_lab.bench.profiles import TARGET_IQA_FLOOR_RATIO, TARGET_IQA_GPU_IMAGES_PER_S
from sfd_lab.bench.steps import BenchContext, photo_crops
from sfd_lab.timing import IterationTimer, no_gc


def tile_images(images: torch.Tensor, tile: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N*T, 3, tile, tile): a grid of tiles, the last row/column aligned to the border."""
    h, w = images.shape[-2:]
    if h < tile or w < tile:
        images = F.interpolate(images, size=(max(h, tile), max(w, tile)), mode="bicubic", align_corners=False)
        h, w = images.shape[-2:]
    tops = sorted({*range(0, h - tile + 1, tile), h - tile})
    lefts = sorted({*range(0, w - tile + 1, tile), w - tile})
    crops = [images[:, :, t : t + tile, s : s + tile] for t in tops for s in lefts]
    return torch.stack(crops, dim=1).flatten(0, 1)


class ReferenceSFDIQA:
    """docs/method.md "SFD-IQA" on an SFDDiscriminator with the prompt-pair text features computed once.

    The text features do not depend on the image, so a scorer needs them once, not per batch;
    this is the benchmark's yardstick for the package scorer (and its stand-in when the package
    has none). ``__call__(images)`` (N, 3, H, W) in [0, 1] -> (N,) Q = mean over tiles of
    alpha * q_feat + (1 - alpha) * q_text.
    """

    def __init__(self, disc, tile: int, amp: torch.dtype | None, alpha: float = 0.5) -> None:
        self.disc, self.tile, self.amp, self.alpha = disc.eval(), tile, amp, alpha
        with torch.no_grad():
            self.text = disc.text_features() if disc.use_text else None

    def _autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.amp) if self.amp else contextlib.nullcontext()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        tiles = tile_images(images, self.tile)
        with self._autocast(images.device):
            feats = self.disc.extract(tiles)
            q = []
            if self.disc.use_feat:
                maps = self.disc.feat_disc(feats.middle)
                q.append(torch.stack([torch.sigmoid(m.float()).mean(dim=(1, 2, 3)) for m in maps]).mean(0))
            if self.disc.use_text:
                q.append(torch.sigmoid(self.disc.text_logit(feats.embedding, self.text).float()))
        per_tile = self.alpha * q[0] + (1 - self.alpha) * q[1] if len(q) == 2 else q[0]
        return per_tile.view(images.shape[0], -1).mean(dim=1)

    @torch.no_grad()
    def clip_floor(self, images: torch.Tensor) -> torch.Tensor:
        """The bare CLIP forward the score needs: middle maps and embedding of every tile."""
        with self._autocast(images.device):
            return self.disc.backbone(tile_images(images, self.tile), embedding=True).embedding


def _package_iqa(disc, tile: int, device: torch.device, bf16: bool):
    """(batched scorer over images, description) from ``sfd_metric.sfd_iqa.SFDIQA`` (issue 5), or
    (None, why not). The scorer tiles a batch of images and calls ``SFDIQA.score_crops`` once."""
    try:
        module = importlib.import_module("sfd_metric.sfd_iqa")
    except ModuleNotFoundError as err:
        return None, f"sfd_metric.sfd_iqa is not importable ({err})"
    cls = getattr(module, "SFDIQA", None)
    if cls is None or not hasattr(cls, "score_crops"):
        return None, "sfd_metric.sfd_iqa has no SFDIQA.score_crops"
    scorer = cls(disc, tile=tile, device=device, bf16=bf16)

    def score(images: torch.Tensor) -> torch.Tensor:
        q_feat, q_text = scorer.score_crops(tile_images(images, tile))
        q = torch.tensor([scorer.combine(float(f), float(t)) for f, t in zip(q_feat, q_text)])
        return q.view(images.shape[0], -1).mean(dim=1)

    return score, "sfd_metric.sfd_iqa.SFDIQA.score_crops (the package scorer)"


def _time_images(fn: Callable[[torch.Tensor], object], images: torch.Tensor, batch: int, device, repeats: int) -> dict:
    """Seconds per image of ``fn`` over ``images`` in chunks of ``batch`` (one warm-up pass; CUDA
    events after a synchronisation, garbage collector off)."""
    timer = IterationTimer(device)

    def one_pass() -> None:
        for i in range(0, len(images), batch):
            fn(images[i : i + batch])

    times = []
    with no_gc():
        for r in range(repeats + 1):
            wall, _ = timer(one_pass)
            if r:
                times.append(wall / len(images))
    stats = time_stats(times)
    stats["images_per_s"] = 1.0 / stats["median_s"]
    return stats


def _time_niqe(images: torch.Tensor, repeats: int) -> dict:
    """BasicSR's NIQE (numpy, CPU) per image on the same images, as BGR uint8 HWC."""
    from basicsr.metrics.niqe import calculate_niqe

    arrays = [(img.permute(1, 2, 0).cpu().numpy()[..., ::-1] * 255).round().astype(np.uint8) for img in images]
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        for img in arrays:
            calculate_niqe(img, crop_border=0)
        if r:
            times.append((time.perf_counter() - start) / len(arrays))
    stats = time_stats(times)
    stats["images_per_s"] = 1.0 / stats["median_s"]
    stats["images"] = len(arrays)
    return stats


def row_iqa(ctx: BenchContext, trace: bool) -> dict:
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    p, device = ctx.profile, ctx.device
    clip = p.clip_models[0]
    seed_all(p.seed)
    disc = SFDDiscriminator(clip, None, feat_mid_channels=p.feat_mid_channels, n_ctx=p.n_ctx).to(device)
    amp = torch.bfloat16 if device.type == "cuda" else None  # the GPU target is for bf16
    reference = ReferenceSFDIQA(disc, p.iqa_tile, amp)
    package, package_source = _package_iqa(disc, p.iqa_tile, device, amp is not None)
    methods = {"clip_floor": reference.clip_floor, "sfd_iqa_text_once": reference}
    if package is not None:
        methods["sfd_iqa"] = package
    images = photo_crops(p.iqa_images, p.iqa_size, p.seed + 1).to(device)
    tiles_per_image = tile_images(images[:1], p.iqa_tile).shape[0]
    sweep = []
    for batch in (b for b in p.iqa_batches if b <= len(images)):
        entry = {"batch_images": batch, "batch_tiles": batch * tiles_per_image}
        for name, fn in methods.items():
            entry[name] = _time_images(fn, images, batch, device, p.iqa_repeats)
        for name in methods:
            entry[f"{name}_to_floor"] = ratio_of(entry[name]["median_s"], entry["clip_floor"]["median_s"])
        sweep.append(entry)
    niqe = _time_niqe(images[: p.niqe_images], p.niqe_repeats or p.iqa_repeats)
    main = "sfd_iqa" if package is not None else "sfd_iqa_text_once"
    best = max(sweep, key=lambda s: s[main]["images_per_s"])
    targets = []
    for name in [m for m in ("sfd_iqa", "sfd_iqa_text_once") if m in methods]:
        if device.type == "cuda":
            top = max(sweep, key=lambda s, n=name: s[n]["images_per_s"])
            value = top[name]["images_per_s"]
            targets.append(
                judge_target(
                    f"{name}: images/s (bf16, best batch)",
                    value,
                    ">=",
                    TARGET_IQA_GPU_IMAGES_PER_S,
                    p,
                    spreads=(top[name]["spread"],),
                )
            )
            if p.target_iqa_floor_speed is not None:  # issue 21: toward the bare CLIP forward it needs
                speed = 1.0 / top[f"{name}_to_floor"] if top[f"{name}_to_floor"] else None
                targets.append(
                    judge_target(
                        f"{name}: images/s vs the bare CLIP floor (same batch, {top['batch_images']})",
                        speed,
                        ">=",
                        p.target_iqa_floor_speed,
                        p,
                        spreads=(top[name]["spread"], top["clip_floor"]["spread"]),
                    )
                )
        else:
            top = min(sweep, key=lambda s, n=name: s[f"{n}_to_floor"])
            value = top[f"{name}_to_floor"]
            targets.append(
                judge_target(
                    f"{name}: time / bare CLIP forwards",
                    value,
                    "<=",
                    TARGET_IQA_FLOOR_RATIO,
                    p,
                    spreads=(top[name]["spread"], top["clip_floor"]["spread"]),
                )
            )
    result = {
        "status": "ok",
        "scorer": package_source,
        "methods": {
            "clip_floor": "FrozenCLIP forward (middle maps + embedding) of every tile, no heads",
            "sfd_iqa_text_once": "the method's formula on the same SFDDiscriminator, prompt features computed once",
            **({"sfd_iqa": package_source} if package is not None else {}),
        },
        "clip": clip,
        "image_size": p.iqa_size,
        "tile": p.iqa_tile,
        "tiles_per_image": tiles_per_image,
        "images": len(images),
        "precision": "bf16 autocast" if amp else "fp32",
        "sweep": sweep,
        "niqe": niqe,
        "sfd_iqa_vs_niqe_speed": ratio_of(best[main]["images_per_s"], niqe["images_per_s"]),
        "targets": targets,
    }
    if trace and any(t["met"] is False for t in targets):
        chunk = images[: best["batch_images"]]
        result["trace"] = {main: trace_ops(lambda: methods[main](chunk), device)}
    return result


# -- row 5: CSUD ----------------------------------------------------------------------------------
