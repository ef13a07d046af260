"""Training steps to time: inputs from the photos scikit-image ships, BasicSR options for each
configuration (SFDModel, RealESRGANModel, ESRGANModel, SRModel), building and stepping them."""

import contextlib
import copy
import gc
import os
import statistics
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sfd_lab.bench.core import PeakMemory, cuda_calls_stay_on_cpu, seed_all, time_stats
from sfd_lab.bench.profiles import PHOTOS, VGG_LAYERS, Profile, profile_device
from sfd_lab.timing import (
    IterationTimer,
    allocator_counts,
    count_difference,
    no_gc,
    profile_iterations,
    verdict,
)


def _photo_tensor(name: str, min_size: int) -> torch.Tensor:
    """(3, H, W) float [0, 1] scikit-image photo, bicubic-enlarged if its short side < min_size."""
    from sfd_utils.photos import load_photo

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
PRINT_FREQ = 100  # logger.print_freq of every configuration (the recipes' value)


def has_fast_path() -> bool:
    """True when this code's SFDDiscriminator has the ``fast_path`` option (CUDA graphs)."""
    import inspect

    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    return "fast_path" in inspect.signature(SFDDiscriminator.__init__).parameters


def sfd_config_name(clip: str, fast_path: str = "off", host: str | None = None) -> str:
    """``sfd_<clip>[_<host>]_<eager|auto>``: every SFD row says which fast path it ran."""
    return f"sfd_{clip}" + (f"_{host}" if host else "") + ("_eager" if fast_path == "off" else f"_{fast_path}")


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


class BenchContext:
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

    def sfd_network_d(self, clip: str, fast_path: str = "off") -> dict:
        """SFDDiscriminator options of a row; ``fast_path``: 'off' (the default: eager) or 'auto'
        (CUDA graphs where they can serve; eager on a CPU). Row names say which (:func:`sfd_config_name`)."""
        p = self.profile
        return {
            "type": "SFDDiscriminator",
            "clip_model": clip,
            "clip_pretrained": None,
            "feat_mid_channels": p.feat_mid_channels,
            "n_ctx": p.n_ctx,
            **self.fast_path_option(fast_path),
        }

    @staticmethod
    def fast_path_option(mode: str = "off") -> dict:
        """``fast_path: <mode>`` where this code's discriminator has the option (older code: none; eager)."""
        return {"fast_path": mode} if has_fast_path() else {}

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
        opt["logger"]["print_freq"] = PRINT_FREQ  # as the recipes: logging statistics and reads every 100
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


def frozen_weights(model: torch.nn.Module) -> tuple[float, str]:
    """(MB, dtype) of a frozen model's parameters and buffers: sum of numel * element_size, and the
    parameters' dtype names joined by '+' (sorted) when they differ."""
    tensors = list(model.parameters()) + list(model.buffers())
    size = sum(t.numel() * t.element_size() for t in tensors) / 2**20
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in model.parameters()})
    return size, "+".join(dtypes) or "none"


class _Entry:
    """A built configuration and what was measured on it."""

    def __init__(self, spec: StepSpec, model, ctx: BenchContext, batches: list[dict]) -> None:
        self.spec, self.model, self.ctx, self.batches = spec, model, ctx, batches
        self.it = 0
        self.times: list[float] = []
        self.losses: dict[str, list[float]] = {}
        self.forwards: list[int] = []
        self.peak_mb: float | None = None
        self.gflops: float | None = None
        self.host_times: list[float] = []
        self.allocator: dict | None = None  # CUDA allocator driver calls during the timed repeats
        self.profiled: dict = {}  # profile_pass
        self.timer = IterationTimer(ctx.device)

    def backbone(self):
        net_d = getattr(self.model, "net_d", None)
        if net_d is None:
            return None
        return getattr(self.model.get_bare_model(net_d), "backbone", None)

    def frozen_mb(self) -> float | None:
        """Size of the frozen CLIP weights (hidden from the model; part of the peak, batch-independent)."""
        backbone = self.backbone()
        return None if backbone is None else frozen_weights(backbone.clip)[0]

    def frozen_dtype(self) -> str | None:
        """dtype(s) of the frozen CLIP parameters, e.g. 'float32' ('bfloat16+float32' when mixed)."""
        backbone = self.backbone()
        return None if backbone is None else frozen_weights(backbone.clip)[1]

    def step_gflops(self) -> float:
        """GFLOPs of one optimize_parameters (feed_data outside the count: basicsr's RealESRGANModel
        sharpens GT with a 101x101 USM kernel there, data-side work the timed step does not include)."""
        from torch.utils.flop_counter import FlopCounterMode

        self.it += 1
        self.model.feed_data(self.batches[self.it % len(self.batches)])
        with FlopCounterMode(display=False) as counter, self.ctx.autocast(self.spec):
            self.model.optimize_parameters(self.it)
        return counter.get_total_flops() / 1e9

    def trace(self) -> list[dict]:
        """torch.profiler top ops of one optimize_parameters (feed_data outside the trace)."""
        from sfd_lab.bench.core import trace_ops

        self.it += 1
        self.model.feed_data(self.batches[self.it % len(self.batches)])

        def optimize() -> None:
            with self.ctx.autocast(self.spec):
                self.model.optimize_parameters(self.it)

        return trace_ops(optimize, self.ctx.device)

    def profile_pass(self, iters: int) -> None:
        """GPU time, kernel launches, host synchronisations per step (torch.profiler, after the timing)."""
        self.it += 1
        self.model.feed_data(self.batches[self.it % len(self.batches)])

        def optimize() -> None:
            with self.ctx.autocast(self.spec):
                self.model.optimize_parameters(self.it)

        self.profiled = profile_iterations(optimize, self.ctx.device, iters)

    def step(self, record_losses: bool = False, timed: bool = False) -> float:
        """One optimize_parameters (feed_data outside the timing); returns its wall seconds (CUDA
        events after a synchronisation on a GPU), kept with the host seconds when ``timed``."""
        self.it += 1
        self.model.feed_data(self.batches[self.it % len(self.batches)])
        backbone = self.backbone()
        before = backbone.num_image_forwards if backbone is not None else 0

        def optimize() -> None:
            with self.ctx.autocast(self.spec):
                self.model.optimize_parameters(self.it)

        elapsed, host = self.timer(optimize)
        if timed:
            self.times.append(elapsed)
            self.host_times.append(host)
        if backbone is not None:
            self.forwards.append(backbone.num_image_forwards - before)
        if record_losses:
            for key, value in self.model.log_dict.items():
                if key.startswith("l_"):
                    self.losses.setdefault(key, []).append(float(value))
        return elapsed


def _build(spec: StepSpec, ctx: BenchContext):
    from basicsr.models import build_model

    seed_all(ctx.profile.seed)  # same initial weights for every precision variant of a model
    with cuda_calls_stay_on_cpu(ctx.device):
        return build_model(ctx.options(spec))


def run_steps(
    specs: list[StepSpec],
    ctx: BenchContext,
    warmup: int,
    count_flops_too: bool = True,
    loss_iters: int = 0,
    repeats: int | None = None,
) -> list[_Entry]:
    """Build and warm up each spec (peak memory, FLOPs), then time them round-robin
    (``repeats`` rounds, default the profile's)."""
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
        entry.gflops = entry.step_gflops() if count_flops_too else None
        entries.append(entry)
    time_interleaved(entries, ctx.profile, ctx.profile.repeats if repeats is None else repeats)
    if ctx.profile.profile_iters:
        for entry in entries:
            entry.profile_pass(ctx.profile.profile_iters)
    return entries


def time_interleaved(entries: list[_Entry], profile: Profile, repeats: int) -> None:
    """``repeats`` timed steps of every entry, interleaved over the entries in blocks of
    ``profile.timing_block`` (each block after ``profile.timing_reentry`` untimed steps, which take
    the switch from the previous configuration: caches, allocator blocks), garbage collector off;
    the CUDA allocator's calls to the driver during each entry's timed steps are counted."""
    block = max(1, profile.timing_block)
    with no_gc():
        for r in range(-(-repeats // block)):
            for entry in entries:
                for _ in range(profile.timing_reentry):
                    entry.step()
                before = allocator_counts(entry.ctx.device)
                for _ in range(min(block, repeats - r * block)):
                    entry.step(timed=True)
                delta = count_difference(allocator_counts(entry.ctx.device), before)
                if delta is not None:
                    entry.allocator = {k: (entry.allocator or {}).get(k, 0) + v for k, v in delta.items()}


def entry_row(entry: _Entry) -> dict:
    spec = entry.spec
    forwards = sorted(set(entry.forwards))
    return {
        "name": spec.name,
        "model": spec.model_type,
        "network_d": None if spec.network_d is None else spec.network_d["type"],
        "clip": spec.clip,
        "precision": spec.precision
        + (f" (autocast {entry.ctx.profile.amp})" if spec.stock and entry.ctx.profile.amp else ""),
        **time_stats(entry.times),
        "host_median_s": statistics.median(entry.host_times) if entry.host_times else None,
        "allocator_events_in_timed_loop": entry.allocator,
        **profiled_columns(entry.profiled, time_stats(entry.times)["median_s"] if entry.times else None),
        "peak_mem_mb": entry.peak_mb,
        "frozen_clip_mb": entry.frozen_mb(),
        "frozen_clip_dtype": entry.frozen_dtype(),
        "gflops_per_iter": entry.gflops,
        "clip_forwards_per_iter": (forwards[0] if len(forwards) == 1 else forwards) if forwards else None,
    }


def profiled_columns(profiled: dict, median_s: float | None) -> dict:
    """A step's profiler figures (per iteration) and its verdict from the timed median."""
    if not profiled:
        return {}
    gpu_ms = profiled.get("gpu_ms")
    return {
        "gpu_s": None if gpu_ms is None else gpu_ms / 1e3,
        "launches": profiled.get("launches"),
        "graph_launches": profiled.get("graph_launches"),
        "host_syncs": profiled.get("host_syncs"),
        "verdict": verdict(None if median_s is None else 1e3 * median_s, gpu_ms),
    }


def free_entries(entries: list[_Entry]) -> None:
    for entry in entries:
        entry.model = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def is_vit(clip: str) -> bool:
    return "vit" in clip.lower()


# -- row 1: GAN step ------------------------------------------------------------------------------
