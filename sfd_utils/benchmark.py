"""Benchmarks (issue 8): SFD's cost side by side with the discriminators BasicSR users pick today.

Every comparison runs in ONE process, side by side: each configuration is built and warmed up
(its peak memory is taken then), then the timed iterations run round-robin over the row's
configurations (so a machine whose speed drifts hurts them alike), with ``torch.cuda.synchronize``
around every timed call on GPU. Reported: median and min of the repeats, peak memory, and ratios
to the row's baseline. Rows:

1. ``gan_step``: one ``optimize_parameters`` of SFDModel (CLIP RN50 / ViT-B-16, random weights)
   vs BasicSR's RealESRGANModel (baseline) and ESRGANModel with UNetDiscriminatorSN, and SRModel
   (generator + losses only, so "step - SRModel step" is each discriminator's share). Same RRDBNet,
   batch, crop, L1 and VGG19 perceptual loss. FLOPs of one step counted by ``FlopCounterMode``.
2. ``clip_cost``: CLIP image forwards per iteration (counted by ``FrozenCLIP.num_image_forwards``)
   and step time of SFDModel vs the naive drop-in (SFDDiscriminator inside stock ESRGANModel,
   which calls ``net_d(img)`` and so CLIP once per call), both with a 1-block generator and no VGG
   loss so the step is the discriminator's cost.
3. ``precision``: SFDModel in fp32, bf16/fp16 autocast (fp16 on CUDA only) and channels_last;
   the losses of the first (seeded, same-batch) iterations against fp32's, within a stated tolerance.
4. ``iqa``: SFD-IQA images/s on 512² images (four 256² tiles each, SPEC formula) vs BasicSR's NIQE
   on the same images and the bare CLIP forward the score needs (the floor), over a batch sweep.
5. ``csud``: delegated to ``sfd_utils.bench_csud.run_csud_benchmark(profile_name) -> dict`` when
   that module exists; otherwise reported as not available.

Nothing downloads: CLIP and VGG19 have random weights (fine for timing), VGG19 read from a file
written here. CPU peak memory is the resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) above the resident set measured before the configuration was built,
after ``malloc_trim`` has returned freed heap pages; CUDA peak memory is
``torch.cuda.max_memory_allocated`` above the allocation before the build.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import datetime
import gc
import importlib
import importlib.metadata
import inspect
import logging
import os
import platform
import random
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

SCHEMA = "sfd-basicsr-benchmark/1"
ROWS = ("gan_step", "clip_cost", "precision", "iqa", "csud")
BASELINE = "realesrgan_unet"
# Issue 8's targets (benchmark figures, never test assertions).
TARGET_STEP_TIME = {"resnet": 0.75, "vit": 0.8}  # SFD step / Real-ESRGAN step
TARGET_STEP_MEM = 1.0
TARGET_CLIP_SPEEDUP = 2.0  # naive drop-in / SFDModel
TARGET_IQA_FLOOR_RATIO = 1.25  # SFD-IQA / bare CLIP forwards (CPU)
TARGET_IQA_GPU_IMAGES_PER_S = 500.0
# Largest relative deviation of a loss from fp32's over the first iterations (same seed, same batch).
LOSS_TOLERANCE = {"channels_last": 1e-3, "bf16": 5e-2, "fp16": 1e-2, "bf16+channels_last": 5e-2}
VGG_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}  # Real-ESRGAN
PHOTOS = ("astronaut", "coffee", "rocket", "retina", "hubble_deep_field", "ihc", "chelsea", "motorcycle_left")


def rrdbnet(num_block: int = 23, num_feat: int = 64, num_grow_ch: int = 32, scale: int = 4) -> dict:
    """BasicSR RRDBNet options (23 blocks = ESRGAN / Real-ESRGAN / the SFD release)."""
    return {
        "type": "RRDBNet",
        "num_in_ch": 3,
        "num_out_ch": 3,
        "num_feat": num_feat,
        "num_block": num_block,
        "num_grow_ch": num_grow_ch,
        "scale": scale,
    }


@dataclass(frozen=True)
class Profile:
    """Sizes of one benchmark run.

    device: 'cpu', 'cuda' or 'auto' (CUDA when present). amp: autocast dtype every row-1
    model runs under ('bf16') or None. precisions: row-3 variants. iqa_*: row 4 (images of
    iqa_size² scored as iqa_tile² tiles, iqa_images of them, batch sizes in images).
    """

    name: str
    device: str
    batch: int
    gt_size: int
    generator: dict
    clip_models: tuple[str, ...]
    unet_feat: int = 64
    feat_mid_channels: int = 256
    n_ctx: int = 16
    perceptual: bool = True
    warmup: int = 1
    repeats: int = 3
    amp: str | None = None
    precisions: tuple[str, ...] = ("fp32", "bf16", "channels_last")
    loss_iters: int = 3
    clip_row_generator: dict = field(default_factory=lambda: rrdbnet(num_block=1, num_feat=16, num_grow_ch=16))
    iqa_size: int = 512
    iqa_tile: int = 256
    iqa_images: int = 4
    iqa_batches: tuple[int, ...] = (1, 4)
    iqa_repeats: int = 2
    niqe_images: int = 4
    scale: int = 4
    seed: int = 0
    threads: int | None = None  # CPU threads (None: torch's default, one per core)


PROFILES = {
    # Seconds on 2 cores: tiny nets, tiny open_clip configs shipped in sfd_arch/clip_configs, no VGG
    # (its random init alone costs ~3 s per model); checks the machinery, its numbers mean nothing.
    "smoke": Profile(
        name="smoke",
        device="auto",
        batch=2,
        gt_size=64,
        generator=rrdbnet(num_block=1, num_feat=8, num_grow_ch=8),
        clip_models=("tiny-rn", "tiny-vit"),
        unet_feat=8,
        feat_mid_channels=16,
        n_ctx=4,
        perceptual=False,
        warmup=1,
        repeats=1,
        loss_iters=2,
        clip_row_generator=rrdbnet(num_block=1, num_feat=8, num_grow_ch=8),
        iqa_size=192,
        iqa_tile=96,
        iqa_images=2,
        iqa_batches=(1, 2),
        iqa_repeats=1,
        niqe_images=2,
        threads=1,  # small ops on a shared machine: OpenMP barriers of 2+ threads stall under load
    ),
    # Minutes on 2 cores: the real networks at a small batch and crop.
    "cpu": Profile(
        name="cpu",
        device="cpu",
        batch=2,
        gt_size=128,
        generator=rrdbnet(),
        clip_models=("RN50", "ViT-B-16"),
        loss_iters=2,  # bf16 autocast on a CPU without native bf16 is ~5x slower than fp32
    ),
    # Paper scale, used whenever CUDA is present: batch 16, 256² crops, bf16 autocast.
    "gpu": Profile(
        name="gpu",
        device="cuda",
        batch=16,
        gt_size=256,
        generator=rrdbnet(),
        clip_models=("RN50", "ViT-B-16"),
        warmup=3,
        repeats=10,
        amp="bf16",
        precisions=("fp32", "bf16", "fp16", "channels_last", "bf16+channels_last"),
        iqa_images=64,
        iqa_batches=(1, 4, 16, 64),
        iqa_repeats=5,
        niqe_images=8,
    ),
}


def resolve_profile(name: str) -> Profile:
    """'smoke' | 'cpu' | 'gpu' | 'auto' (gpu when CUDA is present, else cpu) -> Profile."""
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {sorted(PROFILES)} or 'auto'")
    profile = PROFILES[name]
    if profile.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"profile {name!r} needs a CUDA device and none is available")
    return profile


def profile_device(profile: Profile) -> torch.device:
    if profile.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(profile.device)


def parse_rows(spec: str | None) -> tuple[str, ...]:
    """'1,3' or 'gan_step,iqa' or None/'all' -> row names in ROWS order."""
    if not spec or spec == "all":
        return ROWS
    chosen = set()
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item.isdigit() and 1 <= int(item) <= len(ROWS):
            chosen.add(ROWS[int(item) - 1])
        elif item in ROWS:
            chosen.add(item)
        else:
            raise ValueError(f"--rows: unknown row {item!r}; use 1-{len(ROWS)} or names {ROWS}")
    return tuple(r for r in ROWS if r in chosen)


# -- measurement helpers --------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    """Return freed heap pages to the OS (glibc), so the next RSS baseline counts live memory only."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of one configuration in MB: CUDA allocator peak or CPU VmHWM above a baseline.

    ``start()`` before the configuration is built, ``reset()`` once it is built (so build-time
    temporaries such as VGG19's classifier do not count), ``peak_mb()`` after its iterations.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.ok = True

    def _clean(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        else:
            _malloc_trim()

    def start(self) -> None:
        self._clean()
        if self.device.type == "cuda":
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _status_kb("VmRSS") or 0

    def reset(self) -> None:
        self._clean()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.ok = _reset_hwm() and _status_kb("VmHWM") is not None

    def peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        if not self.ok:
            return None
        return (_status_kb("VmHWM") - self.base) / 1024


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn`` (torch.utils.flop_counter: matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def trace_ops(fn: Callable[[], object], device: torch.device, top: int = 12) -> list[dict]:
    """torch.profiler over one call of ``fn``: the ``top`` ops by self time, with input shapes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        fn()
        _sync(device)
    events = prof.key_averages(group_by_input_shape=True)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return [
        {
            "op": e.key,
            "shapes": str(e.input_shapes)[:120],
            "calls": int(e.count),
            "self_ms": getattr(e, attr) / 1e3,
            "share": getattr(e, attr) / total,
        }
        for e in ranked
    ]


def _stats(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _quiet_basicsr() -> Iterator[None]:
    """BasicSR logs every network and model it builds at INFO; keep the benchmark's output readable."""
    from basicsr.utils import get_root_logger

    logger = get_root_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _cuda_calls_stay_on_cpu(device: torch.device) -> Iterator[None]:
    """basicsr's RealESRGANModel.__init__ calls .cuda() on its JPEG/USM helpers: a no-op on CPU."""
    if device.type == "cuda":
        yield
        return
    original = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.nn.Module.cuda = original


# -- inputs ---------------------------------------------------------------------------------------


def _photo_tensor(name: str, min_size: int) -> torch.Tensor:
    """(3, H, W) float [0, 1] scikit-image photo, bicubic-enlarged if its short side < min_size."""
    from sfd_data.demo_data import load_photo

    img = torch.from_numpy(load_photo(name)).permute(2, 0, 1).float() / 255.0
    short = min(img.shape[-2:])
    if short < min_size:
        size = [int(np.ceil(s * min_size / short)) for s in img.shape[-2:]]
        img = F.interpolate(img[None], size=size, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    return img


def photo_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) float [0, 1] crops of the photos scikit-image ships (seeded positions)."""
    gen = torch.Generator().manual_seed(seed)
    crops = []
    for i in range(n):
        img = _photo_tensor(PHOTOS[i % len(PHOTOS)], size)
        top = int(torch.randint(0, img.shape[1] - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, img.shape[2] - size + 1, (1,), generator=gen))
        crops.append(img[:, top : top + size, left : left + size])
    return torch.stack(crops)


def sr_batches(profile: Profile, device: torch.device, count: int = 2) -> list[dict]:
    """``count`` training batches {'lq', 'gt'}: photo crops and their bicubic downscaling."""
    gt = photo_crops(count * profile.batch, profile.gt_size, profile.seed)
    lq = F.interpolate(gt, scale_factor=1 / profile.scale, mode="bicubic", antialias=True).clamp(0, 1)
    return [
        {"lq": lq[i : i + profile.batch].to(device), "gt": gt[i : i + profile.batch].to(device)}
        for i in range(0, len(gt), profile.batch)
    ]


def write_vgg19_weights(path: str, seed: int = 0) -> str:
    """A loadable torchvision VGG19 state_dict with random conv weights (nothing downloads).

    The classifier, which BasicSR's VGGFeatureExtractor discards, is stored as zero-stride views
    so the file is 80 MB instead of 550 MB.
    """
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg19().state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if not key.startswith("features."):
            state[key] = torch.zeros(()).expand(shape)
        elif key.endswith(".weight"):
            std = (2.0 / (shape[0] * shape[2] * shape[3])) ** 0.5  # torchvision's kaiming fan_out init
            state[key] = torch.randn(shape, generator=gen) * std
        else:
            state[key] = torch.zeros(shape)
    torch.save(state, path)
    return path


# -- training-step configurations -----------------------------------------------------------------


@dataclass
class StepSpec:
    """One configuration of a step row: what to build and how to label it."""

    name: str
    model_type: str
    network_d: dict | None
    generator: dict
    clip: str | None = None
    perceptual: bool = True
    precision: str = "fp32"  # fp32 | bf16 | fp16 | channels_last | bf16+channels_last
    stock: bool = False  # a BasicSR model: the benchmark wraps its step in the profile's autocast


class _Context:
    """What every row needs: profile, device, a scratch folder and the VGG19 file."""

    def __init__(self, profile: Profile, workdir: str) -> None:
        self.profile = profile
        self.device = profile_device(profile)
        self.workdir = workdir
        self._vgg: str | None = None

    @property
    def vgg_weights(self) -> str:
        if self._vgg is None:
            self._vgg = write_vgg19_weights(os.path.join(self.workdir, "vgg19-random.pth"), self.profile.seed)
        return self._vgg

    def sfd_network_d(self, clip: str) -> dict:
        p = self.profile
        return {
            "type": "SFDDiscriminator",
            "clip_model": clip,
            "clip_pretrained": None,
            "feat_mid_channels": p.feat_mid_channels,
            "n_ctx": p.n_ctx,
        }

    def unet_network_d(self) -> dict:
        return {"type": "UNetDiscriminatorSN_basicsr", "num_in_ch": 3, "num_feat": self.profile.unet_feat}

    def options(self, spec: StepSpec) -> dict:
        """BasicSR options for ``spec`` (built on sfd_utils.presets.sfd_options)."""
        from sfd_utils.presets import sfd_options

        precision = spec.precision
        train: dict = {
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
            "feat_gan_opt": {"type": "SFDGANLoss", "loss_weight": 0.1},
            "text_gan_opt": {"type": "SFDGANLoss", "loss_weight": 0.1},
        }
        if spec.perceptual:
            train["perceptual_opt"] = {
                "type": "SFDPerceptualLoss",
                "layer_weights": dict(VGG_LAYERS),
                "vgg_type": "vgg19",
                "use_input_norm": True,
                "range_norm": False,
                "perceptual_weight": 1.0,
                "style_weight": 0.0,
                "criterion": "l1",
                "vgg_weights": self.vgg_weights,
            }
        if spec.model_type == "SFDModel":
            amp = precision.split("+")[0]
            train["amp"] = amp if amp in ("bf16", "fp16") else None
            train["channels_last"] = "channels_last" in precision
        else:
            train["feat_gan_opt"] = train["text_gan_opt"] = None
            if spec.network_d is not None:
                train["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1}
        exp_dir = os.path.join(self.workdir, spec.name)
        opt = sfd_options(
            exp_dir,
            {},
            network_g=spec.generator,
            train=train,
            model_type=spec.model_type,
            scale=self.profile.scale,
            device=self.device.type,
        )
        if spec.network_d is None:
            opt.pop("network_d")
        else:
            opt["network_d"] = copy.deepcopy(spec.network_d)
        if spec.model_type.startswith("RealESRGANModel"):
            # Paired input (no on-the-fly synthesis: the data side is not what is compared here).
            opt.update(high_order_degradation=False, l1_gt_usm=False, percep_gt_usm=False, gan_gt_usm=False)
        return opt

    def autocast(self, spec: StepSpec):
        """The profile's autocast around a stock model's step (SFDModel has its own ``train.amp``)."""
        amp = self.profile.amp
        if not (spec.stock and amp):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[amp])


class _Entry:
    """A built configuration and what was measured on it."""

    def __init__(self, spec: StepSpec, model, ctx: _Context, batches: list[dict]) -> None:
        self.spec, self.model, self.ctx, self.batches = spec, model, ctx, batches
        self.it = 0
        self.times: list[float] = []
        self.losses: dict[str, list[float]] = {}
        self.forwards: list[int] = []
        self.peak_mb: float | None = None
        self.gflops: float | None = None

    def backbone(self):
        net_d = getattr(self.model, "net_d", None)
        if net_d is None:
            return None
        return getattr(self.model.get_bare_model(net_d), "backbone", None)

    def frozen_mb(self) -> float | None:
        """Size of the frozen CLIP weights (hidden from the model; part of the peak, batch-independent)."""
        backbone = self.backbone()
        if backbone is None:
            return None
        clip = backbone.clip
        tensors = list(clip.parameters()) + list(clip.buffers())
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20

    def step(self, record_losses: bool = False) -> float:
        """One optimize_parameters (feed_data outside the timing); returns its wall seconds."""
        self.it += 1
        self.model.feed_data(self.batches[self.it % len(self.batches)])
        backbone = self.backbone()
        before = backbone.num_image_forwards if backbone is not None else 0
        device = self.ctx.device
        _sync(device)
        start = time.perf_counter()
        with self.ctx.autocast(self.spec):
            self.model.optimize_parameters(self.it)
        _sync(device)
        elapsed = time.perf_counter() - start
        if backbone is not None:
            self.forwards.append(backbone.num_image_forwards - before)
        if record_losses:
            for key, value in self.model.log_dict.items():
                if key.startswith("l_"):
                    self.losses.setdefault(key, []).append(float(value))
        return elapsed


def _build(spec: StepSpec, ctx: _Context):
    from basicsr.models import build_model

    _seed(ctx.profile.seed)  # same initial weights for every precision variant of a model
    with _cuda_calls_stay_on_cpu(ctx.device):
        return build_model(ctx.options(spec))


def run_steps(
    specs: list[StepSpec], ctx: _Context, warmup: int, count_flops_too: bool = True, loss_iters: int = 0
) -> list[_Entry]:
    """Build and warm up each spec (peak memory, FLOPs), then time them round-robin."""
    batches = sr_batches(ctx.profile, ctx.device)
    entries = []
    for spec in specs:
        mem = PeakMemory(ctx.device)
        mem.start()
        model = _build(spec, ctx)
        mem.reset()
        entry = _Entry(spec, model, ctx, batches)
        for i in range(max(warmup, loss_iters, 1)):  # >= 1: Adam's state is allocated by the first step
            entry.step(record_losses=i < loss_iters)
        entry.peak_mb = mem.peak_mb()
        entry.gflops = count_flops(lambda e=entry: e.step()) / 1e9 if count_flops_too else None
        entries.append(entry)
    for _ in range(ctx.profile.repeats):
        for entry in entries:
            entry.times.append(entry.step())
    return entries


def _entry_row(entry: _Entry) -> dict:
    spec = entry.spec
    forwards = sorted(set(entry.forwards))
    return {
        "name": spec.name,
        "model": spec.model_type,
        "network_d": None if spec.network_d is None else spec.network_d["type"],
        "clip": spec.clip,
        "precision": spec.precision
        + (f" (autocast {entry.ctx.profile.amp})" if spec.stock and entry.ctx.profile.amp else ""),
        **_stats(entry.times),
        "peak_mem_mb": entry.peak_mb,
        "frozen_clip_mb": entry.frozen_mb(),
        "gflops_per_iter": entry.gflops,
        "clip_forwards_per_iter": (forwards[0] if len(forwards) == 1 else forwards) if forwards else None,
    }


def _free(entries: list[_Entry]) -> None:
    for entry in entries:
        entry.model = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _is_vit(clip: str) -> bool:
    return "vit" in clip.lower()


# -- row 1: GAN step ------------------------------------------------------------------------------


def row_gan_step(ctx: _Context, trace: bool) -> dict:
    p = ctx.profile
    specs = [
        StepSpec("sr_only", "SRModel", None, p.generator, perceptual=p.perceptual, stock=True),
        StepSpec(
            BASELINE, "RealESRGANModel_basicsr", ctx.unet_network_d(), p.generator, perceptual=p.perceptual, stock=True
        ),
        StepSpec("esrgan_unet", "ESRGANModel", ctx.unet_network_d(), p.generator, perceptual=p.perceptual, stock=True),
    ]
    for clip in p.clip_models:
        amp = p.amp or "fp32"
        specs.append(
            StepSpec(f"sfd_{clip}", "SFDModel", ctx.sfd_network_d(clip), p.generator, clip, p.perceptual, precision=amp)
        )
    entries = run_steps(specs, ctx, p.warmup)
    rows = [_entry_row(e) for e in entries]
    by_name = {r["name"]: r for r in rows}
    base, sr_only = by_name[BASELINE], by_name["sr_only"]
    for r in rows:
        r["time_ratio"] = _ratio(r["median_s"], base["median_s"])
        r["mem_ratio"] = _ratio(r["peak_mem_mb"], base["peak_mem_mb"])
        if r["peak_mem_mb"] is not None and r["frozen_clip_mb"] is not None:
            r["mem_ratio_without_frozen_clip"] = _ratio(r["peak_mem_mb"] - r["frozen_clip_mb"], base["peak_mem_mb"])
        r["flop_ratio"] = _ratio(r["gflops_per_iter"], base["gflops_per_iter"])
        if r["name"] != "sr_only":
            r["disc_part_s"] = r["median_s"] - sr_only["median_s"]
            r["disc_part_gflops"] = (r["gflops_per_iter"] or 0) - (sr_only["gflops_per_iter"] or 0)
    base_part = base["disc_part_s"]
    for r in rows:
        if "disc_part_s" in r:
            r["disc_part_ratio"] = _ratio(r["disc_part_s"], base_part) if base_part and base_part > 0 else None
    targets = []
    for r in rows:
        if r["model"] != "SFDModel":
            continue
        limit = TARGET_STEP_TIME["vit" if _is_vit(r["clip"]) else "resnet"]
        targets.append(_target(f"{r['name']}: step time vs {BASELINE}", r["time_ratio"], "<=", limit, p))
        targets.append(_target(f"{r['name']}: peak memory vs {BASELINE}", r["mem_ratio"], "<=", TARGET_STEP_MEM, p))
        targets.append(
            _target(f"{r['name']}: CLIP image forwards per iteration", r["clip_forwards_per_iter"], "==", 2, p)
        )
    result = {"status": "ok", "baseline": BASELINE, "configs": rows, "targets": targets}
    if trace:
        missed = {t["what"].split(":")[0] for t in targets if t["met"] is False and "step time" in t["what"]}
        result["trace"] = {e.spec.name: trace_ops(e.step, ctx.device) for e in entries if e.spec.name in missed}
        if result["trace"]:
            result["trace"][BASELINE] = trace_ops(next(e for e in entries if e.spec.name == BASELINE).step, ctx.device)
    _free(entries)
    return result


def _target(what: str, value, op: str, limit: float, profile: Profile) -> dict:
    """One issue target: met True/False, or None where it is not judged (smoke profile, no value)."""
    met = None
    if value is not None and profile.name != "smoke":
        met = bool(value <= limit) if op == "<=" else bool(value >= limit) if op == ">=" else bool(value == limit)
    if op == "==" and value is not None:  # the cost rule holds in every profile
        met = bool(value == limit)
    return {"what": what, "value": value, "target": f"{op} {limit:g}", "met": met}


# -- row 2: CLIP cost -----------------------------------------------------------------------------


def row_clip_cost(ctx: _Context, trace: bool) -> dict:
    p = ctx.profile
    specs = []
    for clip in p.clip_models:
        net_d = ctx.sfd_network_d(clip)
        amp = p.amp or "fp32"  # the naive drop-in runs under the same autocast (stock=True)
        specs.append(StepSpec(f"sfd_{clip}", "SFDModel", net_d, p.clip_row_generator, clip, False, precision=amp))
        naive_d = {**net_d, "reuse_features": False}  # the drop-in without feature reuse (see host_cost)
        specs.append(
            StepSpec(f"naive_esrgan_{clip}", "ESRGANModel", naive_d, p.clip_row_generator, clip, False, stock=True)
        )
    entries = run_steps(specs, ctx, p.warmup, count_flops_too=True)
    rows = [_entry_row(e) for e in entries]
    targets = []
    for clip in p.clip_models:
        sfd = next(r for r in rows if r["name"] == f"sfd_{clip}")
        naive = next(r for r in rows if r["name"] == f"naive_esrgan_{clip}")
        for r in (sfd, naive):
            r["speedup_vs_naive"] = _ratio(naive["median_s"], r["median_s"])
            r["flop_ratio_vs_sfd"] = _ratio(r["gflops_per_iter"], sfd["gflops_per_iter"])
        targets.append(
            _target(f"sfd_{clip}: CLIP image forwards per iteration", sfd["clip_forwards_per_iter"], "==", 2, p)
        )
        targets.append(
            _target(f"sfd_{clip}: speed-up vs naive drop-in", sfd["speedup_vs_naive"], ">=", TARGET_CLIP_SPEEDUP, p)
        )
    result = {
        "status": "ok",
        "note": "generator: a 1-block RRDBNet, no VGG loss, so each step is the discriminator's cost",
        "configs": rows,
        "targets": targets,
    }
    if trace:
        missed = {t["what"].split(":")[0] for t in targets if t["met"] is False}
        result["trace"] = {e.spec.name: trace_ops(e.step, ctx.device) for e in entries if e.spec.name in missed}
    _free(entries)
    return result


# -- row 3: precision and layout ------------------------------------------------------------------


def _max_rel_dev(losses: dict[str, list[float]], ref: dict[str, list[float]]) -> tuple[float | None, str | None]:
    worst, worst_key = None, None
    for key, values in losses.items():
        for a, b in zip(values, ref.get(key, [])):
            dev = abs(a - b) / max(abs(b), 1e-8)
            if worst is None or dev > worst:
                worst, worst_key = dev, key
    return worst, worst_key


def row_precision(ctx: _Context, trace: bool) -> dict:
    p = ctx.profile
    clip = p.clip_models[0]
    variants = [v for v in p.precisions if ctx.device.type == "cuda" or "fp16" not in v]  # fp16 autocast: CUDA only
    skipped = [v for v in p.precisions if v not in variants]
    specs = [
        StepSpec(f"sfd_{clip}_{v}", "SFDModel", ctx.sfd_network_d(clip), p.generator, clip, p.perceptual, precision=v)
        for v in variants
    ]
    entries = run_steps(specs, ctx, p.warmup, count_flops_too=False, loss_iters=p.loss_iters)
    rows = [_entry_row(e) for e in entries]
    ref = entries[0].losses
    targets = []
    for entry, r in zip(entries, rows):
        r["precision"] = entry.spec.precision
        r["time_ratio"] = _ratio(r["median_s"], rows[0]["median_s"])
        r["mem_ratio"] = _ratio(r["peak_mem_mb"], rows[0]["peak_mem_mb"])
        r["losses_first_iters"] = entry.losses
        dev, key = _max_rel_dev(entry.losses, ref)
        r["max_loss_rel_dev"], r["worst_loss"] = dev, key
        tol = LOSS_TOLERANCE.get(entry.spec.precision)
        r["loss_tolerance"] = tol
        if tol is not None:
            met = None if dev is None else bool(dev <= tol)
            targets.append({"what": f"{r['name']}: losses vs fp32", "value": dev, "target": f"<= {tol:g}", "met": met})
    _free(entries)
    return {
        "status": "ok",
        "clip": clip,
        "loss_iters": p.loss_iters,
        "skipped": {v: "fp16 autocast is CUDA only" for v in skipped},
        "configs": rows,
        "targets": targets,
    }


# -- row 4: SFD-IQA throughput --------------------------------------------------------------------


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
    """SPEC Part 1 "SFD-IQA" on an SFDDiscriminator with the prompt-pair text features computed once.

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
    """Seconds per image of ``fn`` over ``images`` in chunks of ``batch`` (one warm-up pass)."""
    times = []
    for r in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            fn(images[i : i + batch])
        _sync(device)
        if r:
            times.append((time.perf_counter() - start) / len(images))
    stats = _stats(times)
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
    stats = _stats(times)
    stats["images_per_s"] = 1.0 / stats["median_s"]
    stats["images"] = len(arrays)
    return stats


def row_iqa(ctx: _Context, trace: bool) -> dict:
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    p, device = ctx.profile, ctx.device
    clip = p.clip_models[0]
    _seed(p.seed)
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
            entry[f"{name}_to_floor"] = _ratio(entry[name]["median_s"], entry["clip_floor"]["median_s"])
        sweep.append(entry)
    niqe = _time_niqe(images[: p.niqe_images], p.iqa_repeats)
    main = "sfd_iqa" if package is not None else "sfd_iqa_text_once"
    best = max(sweep, key=lambda s: s[main]["images_per_s"])
    targets = []
    for name in [m for m in ("sfd_iqa", "sfd_iqa_text_once") if m in methods]:
        if device.type == "cuda":
            value = best[name]["images_per_s"]
            targets.append(_target(f"{name}: images/s (bf16, best batch)", value, ">=", TARGET_IQA_GPU_IMAGES_PER_S, p))
        else:
            value = min(s[f"{name}_to_floor"] for s in sweep)
            targets.append(_target(f"{name}: time / bare CLIP forwards", value, "<=", TARGET_IQA_FLOOR_RATIO, p))
    result = {
        "status": "ok",
        "scorer": package_source,
        "methods": {
            "clip_floor": "FrozenCLIP forward (middle maps + embedding) of every tile, no heads",
            "sfd_iqa_text_once": "SPEC formula on the same SFDDiscriminator, prompt text features computed once",
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
        "sfd_iqa_vs_niqe_speed": _ratio(best[main]["images_per_s"], niqe["images_per_s"]),
        "targets": targets,
    }
    if trace and any(t["met"] is False for t in targets):
        chunk = images[: best["batch_images"]]
        result["trace"] = {main: trace_ops(lambda: methods[main](chunk), device)}
    return result


# -- row 5: CSUD ----------------------------------------------------------------------------------


# Our profile -> sfd_utils.bench_csud's profile (its benchmark runs on CPU in every profile).
CSUD_PROFILES = {"smoke": "tiny", "cpu": "cpu", "gpu": "full"}
TARGET_CSUD = 0.8  # CSUDModel step / the released order of forwards, time and memory


def row_csud(ctx: _Context, trace: bool) -> dict:
    """Delegates to ``sfd_utils.bench_csud.run_csud_benchmark(profile, out_dir=None)`` (issue 6)."""
    try:
        module = importlib.import_module("sfd_utils.bench_csud")
    except ModuleNotFoundError as err:
        if err.name not in ("sfd_utils.bench_csud", "sfd_utils"):
            return {"status": "error", "reason": f"sfd_utils.bench_csud failed to import: {err}"}
        return {"status": "not available", "reason": "sfd_utils.bench_csud (CSUD, issue 6) does not exist yet"}
    run = getattr(module, "run_csud_benchmark", None)
    if run is None:
        return {"status": "not available", "reason": "sfd_utils.bench_csud has no run_csud_benchmark"}
    profile = CSUD_PROFILES.get(ctx.profile.name, ctx.profile.name)
    kwargs = {"out_dir": None} if "out_dir" in inspect.signature(run).parameters else {}  # results go in ours
    try:
        result = run(profile, **kwargs)
    except Exception as err:  # a broken neighbour row must not lose the other rows' results
        return {"status": "error", "reason": f"run_csud_benchmark raised {type(err).__name__}: {err}"}
    row = {"status": "ok", "csud_profile": profile, "result": result, "targets": []}
    methods = result.get("methods") if isinstance(result, dict) else None
    if isinstance(methods, dict) and {"ours", "released_order"} <= set(methods):
        ours, released = methods["ours"], methods["released_order"]
        for what, key in (("time", "s_per_iter_median"), ("peak memory", "peak_above_start_mib")):
            value = _ratio(ours.get(key), released.get(key))
            row[f"{what.split()[-1]}_ratio"] = value
            row["targets"].append(_target(f"CSUD step {what} vs released order", value, "<=", TARGET_CSUD, ctx.profile))
    return row


ROW_FUNCTIONS = {
    "gan_step": row_gan_step,
    "clip_cost": row_clip_cost,
    "precision": row_precision,
    "iqa": row_iqa,
    "csud": row_csud,
}


# -- the run --------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} ({os.cpu_count()} logical CPUs)"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_benchmark(
    profile: str | Profile = "auto",
    rows: tuple[str, ...] | str | None = None,
    out_dir: str | None = "benchmarks/results",
    command: str | None = None,
    trace: bool = True,
    notes: str | None = None,
    threads: int | None = None,
) -> dict:
    """Run the chosen rows of ``profile`` side by side in this process; write JSON + Markdown.

    Returns the results dict (schema SCHEMA) with ``files`` naming what was written (none when
    ``out_dir`` is None). ``trace``: profile (torch.profiler) the configurations that miss a time
    target. ``notes``: Markdown appended to the table file (findings).
    """
    from sfd_utils.compat import install

    install()  # basicsr 1.4.2 needs the torchvision shim before it is imported
    import open_clip

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS

    open_clip.add_model_config(TINY_CLIP_CONFIGS)  # tiny-rn / tiny-vit for the smoke profile
    prof = resolve_profile(profile) if isinstance(profile, str) else profile
    chosen = parse_rows(rows) if rows is None or isinstance(rows, str) else tuple(rows)
    device = profile_device(prof)
    if threads or prof.threads:
        prof = replace(prof, threads=threads or prof.threads)
    saved_threads = torch.get_num_threads()
    if prof.threads:
        torch.set_num_threads(prof.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as basicsr/train.py sets it
    started = time.time()
    meta = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "profile": asdict(prof),
        "rows": list(chosen),
        "device": device_name(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": _version("torchvision"),
            "basicsr": _version("basicsr"),
            "open_clip": _version("open_clip_torch"),
            "sfd-basicsr": _version("sfd-basicsr"),
        },
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "load_avg_before": _load(),
        "memory_method": "torch.cuda.max_memory_allocated above the pre-build allocation"
        if device.type == "cuda"
        else "VmHWM (reset via /proc/self/clear_refs) above the pre-build VmRSS, after malloc_trim",
    }
    results: dict = {"schema": SCHEMA, "meta": meta, "rows": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="sfd-bench-") as workdir, _quiet_basicsr():
            ctx = _Context(prof, workdir)
            for name in chosen:
                t0 = time.time()
                print(f"[benchmark] row {name} ({prof.name} profile, {device.type}) ...", flush=True)
                results["rows"][name] = ROW_FUNCTIONS[name](ctx, trace)
                results["rows"][name]["wall_s"] = time.time() - t0
    finally:
        torch.set_num_threads(saved_threads)
    meta["load_avg_after"] = _load()
    meta["wall_s"] = time.time() - started
    results["pending"] = [n for n, r in results["rows"].items() if r.get("status") != "ok"]
    results["notes"] = notes
    if out_dir:
        results["files"] = write_results(results, out_dir)
    return results


def result_stem(results: dict) -> str:
    """``<device>-<date>`` (``-smoke`` appended for the smoke profile)."""
    meta = results["meta"]
    device = "cpu" if meta["device_type"] == "cpu" else _slug(meta["device"])
    stem = f"{device}-{meta['date'][:10]}"
    return stem + ("-smoke" if meta["profile"]["name"] == "smoke" else "")


def write_results(results: dict, out_dir: str) -> dict:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir``; returns their paths."""
    import json

    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, result_stem(results))
    files = {"json": stem + ".json", "markdown": stem + ".md"}
    results["files"] = files
    with open(files["json"], "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(files["markdown"], "w") as f:
        f.write(to_markdown(results))
    return files


# -- Markdown -------------------------------------------------------------------------------------


def _f(x, digits: int = 3, suffix: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}{suffix}"
    return f"{x}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _targets_md(targets: list[dict]) -> list[str]:
    if not targets:
        return []
    mark = {True: "met", False: "**missed**", None: "not judged"}
    return [
        "",
        *_table(
            ["target", "value", "limit", ""],
            [[t["what"], _f(t["value"]), t["target"], mark[t["met"]]] for t in targets],
        ),
    ]


def _trace_md(trace: dict | None) -> list[str]:
    if not trace:
        return []
    lines = ["", "Where the time goes (torch.profiler, one call, top ops by self time):"]
    for name, ops in trace.items():
        lines += ["", f"`{name}`:", ""]
        lines += _table(
            ["op", "input shapes", "calls", "self ms", "share"],
            [
                [
                    o["op"],
                    o["shapes"].replace("|", "/"),
                    str(o["calls"]),
                    _f(o["self_ms"], 1),
                    _f(100 * o["share"], 1, "%"),
                ]
                for o in ops
            ],
        )
    return lines


def to_markdown(results: dict) -> str:
    """The results as Markdown tables (ratios to each row's baseline)."""
    meta, rows = results["meta"], results["rows"]
    prof = meta["profile"]
    v = meta["versions"]
    lines = [
        f"# SFD benchmark: {prof['name']} profile on {meta['device']}",
        "",
        f"- date {meta['date']}, {meta['threads']} threads, batch {prof['batch']}, gt {prof['gt_size']}², "
        f"generator RRDBNet {prof['generator']['num_block']} blocks, "
        f"warm-up {prof['warmup']}, repeats {prof['repeats']}" + (f", autocast {prof['amp']}" if prof["amp"] else ""),
        f"- torch {v['torch']}, torchvision {v['torchvision']}, basicsr {v['basicsr']}, open_clip {v['open_clip']}",
        f"- command: `{meta['command']}`",
        f"- load average before {meta['load_avg_before']}, after {meta.get('load_avg_after')}; "
        f"wall {_f(meta.get('wall_s'), 0)} s; peak memory: {meta['memory_method']}",
        "- random CLIP and VGG19 weights (cost does not depend on weights); times are medians of the repeats",
    ]
    if prof["name"] == "smoke":
        lines.append("- **smoke profile: tiny networks; the numbers check the machinery and mean nothing**")
    r = rows.get("gan_step")
    if r and r["status"] == "ok":
        lines += ["", "## 1. GAN step (one optimize_parameters)", ""]
        lines += _table(
            [
                "config",
                "model",
                "D",
                "s/iter",
                "min",
                "time ×",
                "peak MB",
                "mem ×",
                "frozen CLIP MB",
                "mem × w/o it",
                "GFLOP",
                "FLOP ×",
                "D part s",
                "D part ×",
                "CLIP fwd/iter",
            ],
            [
                [
                    c["name"],
                    c["model"],
                    c["network_d"] or "-",
                    _f(c["median_s"]),
                    _f(c["min_s"]),
                    _f(c["time_ratio"], 2),
                    _f(c["peak_mem_mb"], 0),
                    _f(c["mem_ratio"], 2),
                    _f(c.get("frozen_clip_mb"), 0),
                    _f(c.get("mem_ratio_without_frozen_clip"), 2),
                    _f(c["gflops_per_iter"], 1),
                    _f(c["flop_ratio"], 2),
                    _f(c.get("disc_part_s")),
                    _f(c.get("disc_part_ratio"), 2),
                    _f(c["clip_forwards_per_iter"]),
                ]
                for c in r["configs"]
            ],
        )
        lines += [
            "",
            f"Ratios (×) are to `{r['baseline']}` (BasicSR RealESRGANModel + UNetDiscriminatorSN). "
            "`D part` = step − `sr_only` step (SRModel: generator, L1 and VGG only).",
        ]
        lines += _targets_md(r["targets"]) + _trace_md(r.get("trace"))
    r = rows.get("clip_cost")
    if r and r["status"] == "ok":
        lines += [
            "",
            "## 2. CLIP cost: SFDModel vs the naive drop-in (SFDDiscriminator in ESRGANModel)",
            "",
            r["note"],
            "",
        ]
        lines += _table(
            [
                "config",
                "model",
                "CLIP fwd/iter",
                "s/iter",
                "min",
                "speed-up vs naive",
                "GFLOP",
                "FLOP vs SFD",
                "peak MB",
            ],
            [
                [
                    c["name"],
                    c["model"],
                    _f(c["clip_forwards_per_iter"]),
                    _f(c["median_s"]),
                    _f(c["min_s"]),
                    _f(c["speedup_vs_naive"], 2),
                    _f(c["gflops_per_iter"], 1),
                    _f(c["flop_ratio_vs_sfd"], 2),
                    _f(c["peak_mem_mb"], 0),
                ]
                for c in r["configs"]
            ],
        )
        lines += _targets_md(r["targets"]) + _trace_md(r.get("trace"))
    r = rows.get("precision")
    if r and r["status"] == "ok":
        lines += ["", f"## 3. Precision and layout (SFDModel, CLIP {r['clip']})", ""]
        lines += _table(
            [
                "variant",
                "s/iter",
                "min",
                "time ×",
                "peak MB",
                "mem ×",
                f"max loss dev (first {r['loss_iters']} its)",
                "tolerance",
            ],
            [
                [
                    c["precision"],
                    _f(c["median_s"]),
                    _f(c["min_s"]),
                    _f(c["time_ratio"], 2),
                    _f(c["peak_mem_mb"], 0),
                    _f(c["mem_ratio"], 2),
                    _f(c["max_loss_rel_dev"], 4) + (f" ({c['worst_loss']})" if c["worst_loss"] else ""),
                    _f(c["loss_tolerance"]),
                ]
                for c in r["configs"]
            ],
        )
        lines += [
            "",
            "Loss deviation: largest |loss − fp32 loss| / |fp32 loss| over the `l_*` terms, same seed and batches.",
        ]
        if r["skipped"]:
            lines.append("Skipped: " + ", ".join(f"{k} ({why})" for k, why in r["skipped"].items()))
        lines += _targets_md(r["targets"])
    r = rows.get("iqa")
    if r and r["status"] == "ok":
        lines += [
            "",
            f"## 4. SFD-IQA throughput ({r['image_size']}² images, {r['tiles_per_image']} tiles of {r['tile']}², "
            f"CLIP {r['clip']}, {r['precision']})",
            "",
        ]
        lines += [f"- `{k}`: {v}" for k, v in r["methods"].items()] + [""]
        names = [n for n in ("sfd_iqa", "sfd_iqa_text_once", "clip_floor") if n in r["methods"]]
        header = ["batch (images)", "tiles"] + [f"{n} img/s" for n in names] + [f"{n} / floor" for n in names[:-1]]
        body = [
            [str(s["batch_images"]), str(s["batch_tiles"])]
            + [_f(s[n]["images_per_s"], 2) for n in names]
            + [_f(s[f"{n}_to_floor"], 2) for n in names[:-1]]
            for s in r["sweep"]
        ]
        lines += _table(header, body)
        n = r["niqe"]
        lines += [
            "",
            f"BasicSR NIQE on {n['images']} of the same images (numpy, CPU): {_f(n['images_per_s'], 2)} img/s "
            f"({_f(n['median_s'])} s/img); SFD-IQA at its best batch runs at {_f(r['sfd_iqa_vs_niqe_speed'], 2)}× "
            "NIQE's speed.",
        ]
        lines += _targets_md(r["targets"]) + _trace_md(r.get("trace"))
    r = rows.get("csud")
    if r:
        lines += ["", "## 5. CSUD step", ""]
        if r["status"] != "ok":
            lines.append(f"{r['status']}: {r['reason']}")
        elif "time_ratio" in r:
            res = r["result"]
            lines += [
                f"`sfd_utils.bench_csud`, its `{r['csud_profile']}` profile ({res.get('networks', '')}; batch "
                f"{res.get('batch_per_domain')} per domain, {res.get('crop')}² crops, {res.get('device', 'cpu')}).",
                "",
            ]
            lines += _table(
                ["order of forwards", "s/iter", "peak MB above start", "time ×", "mem ×"],
                [
                    [
                        name,
                        _f(m.get("s_per_iter_median")),
                        _f(m.get("peak_above_start_mib"), 0),
                        _f(
                            _ratio(m.get("s_per_iter_median"), res["methods"]["released_order"]["s_per_iter_median"]), 2
                        ),
                        _f(
                            _ratio(
                                m.get("peak_above_start_mib"), res["methods"]["released_order"]["peak_above_start_mib"]
                            ),
                            2,
                        ),
                    ]
                    for name, m in res["methods"].items()
                ],
            )
            lines += _targets_md(r["targets"])
        else:
            res = r["result"] if isinstance(r["result"], dict) else {"result": r["result"]}
            lines += [f"- {k}: {_f(val)}" for k, val in res.items()]
    if results.get("pending"):
        lines += ["", "Pending rows: " + ", ".join(results["pending"])]
    if results.get("notes"):
        lines += ["", results["notes"].rstrip()]
    return "\n".join(lines) + "\n"
