"""Gradient equality of ``network_d.fast_path: auto`` against eager, in the hosts' call orders (issue 31).

The decision to make ``auto`` the default rests on this comparison (``make gpu-decide``, and
``tests/test_cuda.py`` at the same sizes). Per case (CLIP model x autocast dtype x host order x
``reuse_features``) two discriminators start from one set of weights, eager (``fast_path: off``)
and graphed (``auto``); each host iteration starts both from the same state (the eager one's, loaded
into the graphed one in place, so its captures stay valid) and compares, tensor by tensor, the
relative L2 error ``|a - b| / |a|``:

* the gradient of every discriminator parameter (Feat-D heads, prompt contexts) and the gradient
  reaching the SR image in the generator step: the criterion, <= ``TOLERANCE`` (1e-3);
* the discriminator's outputs and buffers (spectral-norm u, v; running RMS): reported and judged
  with the same tolerance.

The eager reference runs with autocast's weight-cast cache off. With the cache on (the default), two
forwards inside one autocast block share one bf16 copy of each bias, so eager sums the two passes'
bias gradients in bf16 before the cast back to float32 (one bf16 rounding, ~1e-3 relative); a graphed
pass hands each forward its own copy (the spectral-norm region's output), so its sum is in float32,
as eager's is without the cache. Both are eager executions; the graphed one is compared with the one
that rounds the same way, and its difference from the cached one (the hosts' default) is reported
(``vs_cached_eager``), with the eager cache's own rounding (``cache_rounding``) beside it.

and, per graphed region (CLIP image tower, prompt/text path, spectral norms), that it replayed
(replays > 0) and never recomputed its backward eagerly (recomputes = 0).

Host orders, one iteration each (a generator step with the discriminator frozen and the gradient
to the SR image, then a discriminator step):
    srgan     BasicSR SRGANModel: D(real) backward, then D(fake) backward;
    esrgan    relativistic (ESRGANModel), with ``retain_graph``: D(fake) and D(real), then
              ``l_real.backward(retain_graph=True)`` and ``l_fake.backward()`` through both graphs;
    trainner  traiNNer-redux: D(real) and D(fake), one backward.
Losses are multiplied by ``LOSS_SCALE`` under fp16 (as a GradScaler would) so no gradient flushes to 0.

On a GPU: cuDNN deterministic, cuBLAS with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``), CLIP
with random weights in the real layout (no download; ResNet BatchNorms calibrated on photos so every
residual branch carries signal). On a CPU (the rehearsal, the tests) the graphs run through the
emulation (``emulated_graphs``): the comparison machinery runs, the numbers decide nothing.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

TOLERANCE = 1e-3  # relative L2 error per tensor
ORDERS = ("srgan", "esrgan", "trainner")
LOSS_SCALE = {"bf16": 1.0, "fp16": 1024.0, "fp32": 1.0}
AMP = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
REGIONS = ("image tower", "prompt pair text path", "Feat-D spectral norms")


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[dict]:
    """Inside: cuDNN deterministic and without autotuning; cuBLAS with a fixed workspace (effective when
    set before the process's first cuBLAS call: the step programs set it first). Not
    ``torch.use_deterministic_algorithms``: it adds fills and fallbacks inside the captured regions that
    the hosts do not run. Yields what was set; restores cuDNN's settings after."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield {
            "cudnn_deterministic": True,
            "cudnn_benchmark": False,
            "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        }
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a - b| / |a| in float64 (0 when both are zero; inf when only ``a`` is)."""
    if a.dtype == torch.bool or not a.is_floating_point():
        return 0.0 if torch.equal(a, b) else float("inf")
    a, b = a.detach().double(), b.detach().double()
    diff, ref = float(torch.linalg.vector_norm(a - b)), float(torch.linalg.vector_norm(a))
    if ref == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / ref


# -- the discriminators --------------------------------------------------------------------------------
def build_template(clip: str, tiny: bool, seed: int = 0):
    """An SFDDiscriminator (``fast_path: off``) with random CLIP weights in ``clip``'s layout (tiny
    configs: small heads and contexts), on the CPU; random ResNet BatchNorms calibrated on photos."""
    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, calibrate_random_clip
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
    from sfd_lab.bench.steps import photo_crops

    torch.manual_seed(seed)
    kw = {"clip_config": TINY_CLIP_CONFIGS, "feat_mid_channels": 16, "n_ctx": 4} if tiny else {}
    disc = SFDDiscriminator(clip, None, fast_path="off", **kw)
    calibrate_random_clip(disc.backbone.clip, photo_crops(8, 64 if tiny else 128, seed))
    return disc


def set_fast_path(disc, mode: str) -> None:
    """Give ``disc`` (and its graphed parts) a new fast-path policy ``mode``."""
    from sfd_arch.cuda_graphs import FastPath

    disc.fast_path = FastPath(mode)
    for part in (disc.backbone, disc.feat_disc, disc.prompt_pair):
        if part is not None:
            part.graphs.policy = disc.fast_path


def set_reuse(disc, on: bool) -> None:
    from sfd_arch.clip_reuse import CLIPReuse

    disc.clip_reuse = CLIPReuse() if on else None


# -- one host iteration ----------------------------------------------------------------------------------
def _g_loss(order: str, disc, real, f):
    if order == "esrgan":
        real_pred = disc(real).detach()
        fake_pred = disc(f)
        return (F.softplus(real_pred - fake_pred.mean()) + F.softplus(-(fake_pred - real_pred.mean()))).mean() / 2, [
            real_pred,
            fake_pred,
        ]
    fake_pred = disc(f)
    return F.softplus(-fake_pred).mean(), [fake_pred]


def host_iteration(disc, real, fake, order: str, amp: str, cache: bool = True) -> dict[str, torch.Tensor]:
    """One iteration in ``order`` under ``amp`` autocast (``cache``: autocast's weight-cast cache):
    {name: tensor} of the outputs, the SR image's gradient, every parameter's gradient and every
    buffer afterwards (parameters are not updated)."""
    dtype, scale = AMP[amp], LOSS_SCALE[amp]
    device = real.device.type

    def autocast():
        return torch.autocast(device, dtype=dtype, enabled=dtype is not None, cache_enabled=cache)

    f = fake.clone().requires_grad_(True)
    disc.requires_grad_(False)  # the generator step: D frozen, gradient to the image
    with autocast():
        loss_g, preds = _g_loss(order, disc, real, f)
    (scale * loss_g).backward()
    out = {f"g_pred{i}": p.detach().float() for i, p in enumerate(preds)}
    out["sr_image_grad"] = f.grad.detach() / scale
    disc.requires_grad_(True)
    disc.zero_grad(set_to_none=True)
    sr = f.detach()
    if order == "srgan":  # separate backwards
        with autocast():
            real_pred = disc(real)
            l_real = F.softplus(-real_pred).mean()
        (scale * l_real).backward()
        with autocast():
            fake_pred = disc(sr.clone())
            l_fake = F.softplus(fake_pred).mean()
        (scale * l_fake).backward()
    elif order == "trainner":  # two forwards, one backward
        with autocast():
            real_pred, fake_pred = disc(real), disc(sr)
            loss = F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()
        (scale * loss).backward()
    else:  # esrgan, relativistic: both losses through both graphs, the first with retain_graph
        with autocast():
            fake_pred, real_pred = disc(sr), disc(real)
            l_real = F.softplus(-(real_pred - fake_pred.mean())).mean()
            l_fake = F.softplus(fake_pred - real_pred.mean()).mean()
        (scale * l_real).backward(retain_graph=True)
        (scale * l_fake).backward()
    out.update(d_real=real_pred.detach().float(), d_fake=fake_pred.detach().float())
    for name, p in disc.named_parameters():
        out[f"grad.{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach() / scale
    for name, b in disc.state_dict().items():
        if name != "_extra_state":
            out[f"buffer.{name}"] = b.detach().clone()
    return out


def _kind(name: str) -> str:
    if name == "sr_image_grad" or name.startswith("grad."):
        return "gradient"
    return "state" if name.startswith("buffer.") else "output"


def compare(ref: dict, got: dict) -> dict:
    """Per tensor the relative L2 error; the worst per kind (gradient / output / buffer)."""
    errors = {k: rel_l2(ref[k], got[k]) for k in ref}
    worst: dict = {}
    for k, e in errors.items():
        kind = _kind(k)
        if kind not in worst or e > worst[kind][1]:
            worst[kind] = (k, e)
    return {"errors": errors, "worst": {kind: {"tensor": k, "rel_l2": e} for kind, (k, e) in worst.items()}}


def _region_delta(after: dict, before: dict) -> dict:
    out = {}
    for name, counts in after.items():
        prev = before.get(name, {})
        out[name] = {k: v - prev.get(k, 0) for k, v in counts.items()}
    return out


def _regions_ok(regions: dict, use_text: bool = True) -> list[str]:
    """What is wrong with a case's per-region counters (empty: every region replayed, none recomputed)."""
    problems = []
    for wanted in REGIONS:
        if wanted == "prompt pair text path" and not use_text:
            continue
        found = [n for n in regions if wanted in n]
        if not found or sum(regions[n]["replays"] for n in found) == 0:
            problems.append(f"{wanted}: no replay")
        for n in found:
            if regions[n]["recomputes"]:
                problems.append(f"{n}: {regions[n]['recomputes']} eager recompute(s) of the backward")
    return problems


def run_case(eager, fast, real, fake, order: str, amp: str, reuse: bool, iterations: int, lr: float = 1e-2) -> dict:
    """One case: ``iterations`` host iterations compared (eager with and without autocast's cache, the
    graphed one as the hosts run it), the eager weights updated by SGD between them; returns the case
    record with ``passed``."""
    for d in (eager, fast):
        set_reuse(d, reuse)
    before = copy.deepcopy(fast.fast_path.status()["regions"])
    started = time.time()
    iters = []
    for _ in range(iterations):
        state = {k: v.detach().clone() for k, v in eager.state_dict().items()}
        cached = host_iteration(eager, real, fake, order, amp)
        eager.load_state_dict(state)
        ref = host_iteration(eager, real, fake, order, amp, cache=False)
        fast.load_state_dict(state)  # in place: the captures stay valid
        got = host_iteration(fast, real, fake, order, amp)
        iters.append(
            {
                "vs_eager": compare(ref, got),
                "vs_cached_eager": compare(cached, got)["worst"],
                "cache_rounding": compare(ref, cached)["worst"],
            }
        )
        with torch.no_grad():
            for p in eager.parameters():
                p.sub_(lr * p.grad)  # the next iteration starts from moved weights (and moved u, v, RMS)
    regions = _region_delta(fast.fast_path.status()["regions"], before)
    problems = _regions_ok(regions, fast.use_text)
    worst = {}
    for it in iters:
        for kind, w in it["vs_eager"]["worst"].items():
            if kind not in worst or w["rel_l2"] > worst[kind]["rel_l2"]:
                worst[kind] = w
    over = sorted(
        {k for it in iters for k, e in it["vs_eager"]["errors"].items() if not e <= TOLERANCE}  # NaN fails too
    )
    if over:
        problems.append(f"{len(over)} tensor(s) above {TOLERANCE:g}: {', '.join(over[:4])}")
    return {
        "order": order,
        "amp": amp,
        "reuse_features": reuse,
        "iterations": iterations,
        "worst": worst,
        "vs_cached_eager_worst": max((w["rel_l2"] for it in iters for w in it["vs_cached_eager"].values()), default=0),
        "cache_rounding_worst": max((w["rel_l2"] for it in iters for w in it["cache_rounding"].values()), default=0),
        "errors_last": iters[-1]["vs_eager"]["errors"],
        "regions": regions,
        "problems": problems,
        "passed": not problems,
        "seconds": time.time() - started,
    }


def run_equality(
    models: list[str],
    batch: int,
    size: int,
    amps: list[str],
    orders: tuple[str, ...] = ORDERS,
    reuses: tuple[bool, ...] = (True, False),
    iterations: int = 2,
    emulate: bool | None = None,
    on_case: Callable[[dict], None] | None = None,
) -> dict:
    """Every case of ``models`` x ``amps`` x ``reuses`` x ``orders``; ``on_case(result so far)`` after each
    (a step writes its JSON there). ``emulate``: graphs through the CPU emulation (default: without CUDA)."""
    from sfd_lab.bench.steps import photo_crops

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    emulate = device.type != "cuda" if emulate is None else emulate
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "graphs": "emulated (CPU rehearsal: decides nothing)" if emulate else "CUDA",
        "weights": "random CLIP weights in the real layout (no download); ResNet BatchNorms calibrated on photos",
        "tolerance": TOLERANCE,
        "sizes": {"batch": batch, "size": size, "amps": list(amps), "orders": list(orders), "reuse": list(reuses)},
        "cases": [],
        "models_done": [],
    }
    real = photo_crops(batch, size, seed=1).to(device)
    low = F.interpolate(real, scale_factor=0.25, mode="bicubic", antialias=True)
    fake = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)  # an SR-like fake
    with deterministic(device) as settings:
        result["settings"] = settings
        for clip in models:
            _run_model(result, clip, device, real, fake, amps, orders, reuses, iterations, emulate, on_case)
    result["passed"] = bool(result["cases"]) and all(c["passed"] for c in result["cases"])
    return result


def _run_model(result, clip, device, real, fake, amps, orders, reuses, iterations, emulate, on_case) -> None:
    from sfd_arch.cuda_graphs import emulated_graphs

    template = build_template(clip, tiny=clip.startswith("tiny"))
    for amp in amps:
        eager = copy.deepcopy(template).to(device).train()
        fast = copy.deepcopy(template).to(device).train()
        set_fast_path(fast, "auto")
        with emulated_graphs() if emulate else contextlib.nullcontext():
            for reuse in reuses:
                for order in orders:
                    case = run_case(eager, fast, real, fake, order, amp, reuse, iterations)
                    case["model"] = clip
                    case["said"] = fast.fast_path.status()["said"]
                    result["cases"].append(case)
                    if on_case is not None:
                        on_case(result)
        del eager, fast
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result["models_done"].append(clip)
