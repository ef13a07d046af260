"""Same-seed A/B of SFDModel training with ``network_d.fast_path`` off and auto (issue 31).

Two SFDModels are built from one seed (so with one set of initial weights: a tiny RRDBNet, the SFD
discriminator on a random CLIP in the real layout with its BatchNorms calibrated on photos) and
trained on the same tiny data (photo crops and their bicubic x4 downscaling, the same batch at the
same iteration) for ``iterations`` iterations each, under bf16 autocast, with cuDNN deterministic.
Their loss curves must agree:

* the first iteration (same weights: only kernel rounding differs): every loss term within
  ``TOL_FIRST`` (1e-3) of eager's, relative;
* every window of ``WINDOW`` (20) iterations: each term's mean within ``TOL_WINDOW`` (2 %) of eager's,
  relative to the term's mean magnitude over the run. Later iterations may drift apart by rounding
  (a GAN amplifies differences), so the curves are compared by windows, and the final weights' relative
  L2 difference is reported beside them;
* the graphed run replayed every region and never recomputed a backward eagerly.

A wrong gradient (a factor, a missing term, stale state) moves the curves by far more than 2 % within a
few windows; rounding does not. On a CPU the graphs run through the emulation (the machinery only).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

TOL_FIRST = 1e-3
TOL_WINDOW = 0.02
WINDOW = 20


def _options(workdir: str, clip: str, mode: str, amp: str | None, device: str) -> dict:
    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS
    from sfd_utils.presets import sfd_options

    network_d = {"clip_model": clip, "clip_pretrained": None, "fast_path": mode, "clip_dtype": "fp32"}
    if clip.startswith("tiny"):
        network_d.update(clip_config=TINY_CLIP_CONFIGS, feat_mid_channels=16, n_ctx=4)
    opt = sfd_options(f"{workdir}/{mode}", network_d, train={"amp": amp}, device=device)
    opt["logger"]["print_freq"] = 10  # logged and unlogged iterations both run
    return opt


def _batches(size: int, batch: int, device: torch.device, count: int = 4) -> list[dict]:
    from sfd_lab.bench.steps import photo_crops

    gt = photo_crops(count * batch, size, seed=3)
    lq = F.interpolate(gt, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    return [{"lq": lq[i : i + batch].to(device), "gt": gt[i : i + batch].to(device)} for i in range(0, len(gt), batch)]


def train_curve(
    clip: str, mode: str, size: int, batch: int, iterations: int, amp: str | None, workdir: str, seed: int = 0
) -> tuple[dict[str, list[float]], torch.Tensor, dict]:
    """Train one SFDModel; returns ({loss term: per-iteration values}, its final weights flattened,
    its discriminator's fast-path status)."""
    from basicsr.models import build_model

    from sfd_arch.clip_backbone import calibrate_random_clip
    from sfd_lab.bench.core import seed_all
    from sfd_lab.bench.steps import photo_crops

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seed_all(seed)
    model = build_model(_options(workdir, clip, mode, amp, device.type))
    disc = model.get_bare_model(model.net_d)
    # built with float32 CLIP weights so the BatchNorms are calibrated in float32; then clip_dtype
    # 'auto' (the default) as SFDModel applies it: the frozen weights in the amp dtype on CUDA
    calibrate_random_clip(disc.backbone.clip, photo_crops(8, 64, seed))
    disc.clip_dtype, disc.backbone.follow_autocast = "auto", True
    disc.apply_clip_dtype(model.amp_dtype, device.type)
    batches = _batches(size, batch, device)
    curves: dict[str, list[float]] = {}
    for it in range(1, iterations + 1):
        model.feed_data(batches[it % len(batches)])
        model.optimize_parameters(it)
        for k, v in model.log_dict.items():
            if k.startswith("l_"):
                curves.setdefault(k, []).append(float(v))
    weights = torch.cat([p.detach().float().reshape(-1).cpu() for net in (model.net_g, disc) for p in net.parameters()])
    return curves, weights, disc.fast_path.status()


def compare_curves(eager: dict[str, list[float]], auto: dict[str, list[float]]) -> dict:
    """The criteria of the module docstring, per loss term."""
    terms = {}
    for k, a in eager.items():
        b = auto.get(k, [])
        if len(b) != len(a):
            terms[k] = {"passed": False, "problem": f"{len(b)} values with auto, {len(a)} eager"}
            continue
        scale = statistics.fmean(abs(x) for x in a) or 1e-12
        first = abs(a[0] - b[0]) / max(abs(a[0]), 1e-12)
        windows = [
            abs(statistics.fmean(a[i : i + WINDOW]) - statistics.fmean(b[i : i + WINDOW])) / scale
            for i in range(0, len(a), WINDOW)
        ]
        worst = max(windows)
        terms[k] = {
            "first_rel": first,
            "worst_window_rel": worst,
            "worst_window": windows.index(worst),
            "max_step_rel": max(abs(x - y) / scale for x, y in zip(a, b)),
            "passed": bool(first <= TOL_FIRST and worst <= TOL_WINDOW),
        }
    return terms


def run_ab(
    clip: str,
    size: int,
    batch: int,
    iterations: int,
    amp: str | None = "bf16",
    emulate: bool | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> dict:
    """The A/B (see the module docstring); ``on_progress(result so far)`` after each run."""
    from sfd_arch.cuda_graphs import emulated_graphs
    from sfd_lab.gpu_check.equality import deterministic

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    emulate = device.type != "cuda" if emulate is None else emulate
    result: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "graphs": "emulated (CPU rehearsal: decides nothing)" if emulate else "CUDA",
        "sizes": {"clip": clip, "size": size, "batch": batch, "iterations": iterations, "amp": amp or "fp32"},
        "tolerance": {"first_iteration": TOL_FIRST, "window_mean": TOL_WINDOW, "window": WINDOW},
        "weights": "random CLIP weights in the real layout, BatchNorms calibrated on photos; tiny RRDBNet",
        "runs": {},
    }
    curves, weights = {}, {}
    with tempfile.TemporaryDirectory(prefix="sfd-ab-") as workdir, deterministic(device) as settings:
        result["settings"] = settings
        for mode in ("off", "auto"):
            started = time.time()
            with emulated_graphs() if emulate and mode == "auto" else contextlib.nullcontext():
                curves[mode], weights[mode], status = train_curve(clip, mode, size, batch, iterations, amp, workdir)
            result["runs"][mode] = {"seconds": time.time() - started, "fast_path": status, "curves": curves[mode]}
            if on_progress is not None:
                on_progress(result)
    terms = compare_curves(curves["off"], curves["auto"])
    problems = [f"{k}: {t.get('problem') or 'curves differ'}" for k, t in terms.items() if not t["passed"]]
    regions = result["runs"]["auto"]["fast_path"]["regions"]
    for name, counts in regions.items():
        if counts["recomputes"]:
            problems.append(f"{name}: {counts['recomputes']} eager recompute(s) of the backward")
    if len(regions) < 3 or not all(c["replays"] for c in regions.values()):
        problems.append(f"not every region replayed: {sorted(regions)}")
    diff = float(torch.linalg.vector_norm(weights["auto"] - weights["off"]))
    result.update(
        terms=terms,
        final_weights_rel_l2=diff / max(float(torch.linalg.vector_norm(weights["off"])), 1e-30),
        problems=problems,
        passed=not problems,
    )
    return result
