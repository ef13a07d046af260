"""CLIP passes and time of one training iteration of each GAN host with the SFD discriminator.

Hosts: BasicSR's SRGANModel, ESRGANModel and RealESRGANModel (stock code; its ``.cuda()`` calls
are made no-ops on a CPU-only machine and its degradation synthesis is off, pairs are fed as they
are), an emulation of traiNNer-redux's ``SRModel.optimize_parameters`` call order
(:func:`trainner_srmodel_step`), and our SFDModel / SFDRealModel. ``host_cost`` measures one
iteration of stock ESRGANModel + SFDDiscriminator with feature reuse off and on against SFDModel,
side by side in one process over interleaved repeats, and counts image/text tower passes per
iteration for every host. Writes JSON + Markdown; reports ratios and counts, judges no speed target.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import tempfile
import time
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from sfd_lab.bench.core import cuda_calls_stay_on_cpu

HOSTS = ("SRGANModel", "ESRGANModel", "RealESRGANModel", "traiNNer-SRModel", "SFDModel", "SFDRealModel")
TRAINNER = "traiNNer-SRModel"


def trainner_srmodel_step(model, current_iter: int) -> None:
    """One iteration in the call order of traiNNer-redux's ``SRModel.optimize_parameters`` (commit
    6862931, no accumulation, AMP off), on a BasicSR SRGANModel's networks, losses and optimizers:
    G step ``net_d(output)`` with D frozen; D step ``net_d(gt)``, ``net_d(output.detach())`` and one
    backward of their sum. Emulated: traiNNer itself is not a dependency of this package."""
    net_d = model.net_d
    for p in net_d.parameters():
        p.requires_grad = False
    loss_dict = OrderedDict()
    with torch.autocast(device_type=model.device.type, dtype=torch.bfloat16, enabled=False):
        model.output = model.net_g(model.lq)
        l_g_total = 0
        if model.cri_pix:
            loss_dict["l_g_pix"] = model.cri_pix(model.output, model.gt)
            l_g_total = l_g_total + loss_dict["l_g_pix"]
        loss_dict["l_g_gan"] = model.cri_gan(net_d(model.output), True, is_disc=False)
        l_g_total = l_g_total + loss_dict["l_g_gan"]
    l_g_total.backward()
    model.optimizer_g.step()
    model.optimizer_g.zero_grad()
    for p in net_d.parameters():
        p.requires_grad = True
    with torch.autocast(device_type=model.device.type, dtype=torch.bfloat16, enabled=False):
        real_d_pred = net_d(model.gt)
        loss_dict["l_d_real"] = model.cri_gan(real_d_pred, True, is_disc=True)
        fake_d_pred = net_d(model.output.detach())
        loss_dict["l_d_fake"] = model.cri_gan(fake_d_pred, False, is_disc=True)
    (loss_dict["l_d_real"] + loss_dict["l_d_fake"]).backward()
    model.optimizer_d.step()
    model.optimizer_d.zero_grad()
    model.log_dict = model.reduce_loss_dict(loss_dict)


def host_options(
    host: str,
    network_d: dict,
    exp_dir: str,
    network_g: dict | None = None,
    relativistic_sfd: bool = False,
    device: str = "cpu",
) -> dict:
    """BasicSR options for ``host`` with the SFDDiscriminator kwargs ``network_d`` (no VGG loss)."""
    from sfd_utils.presets import sfd_options

    model_type = "SRGANModel" if host == TRAINNER else host
    opt = sfd_options(exp_dir, network_d, network_g=network_g, model_type=model_type, device=device)
    train = opt["train"]
    if host in ("SFDModel", "SFDRealModel"):
        for key in ("feat_gan_opt", "text_gan_opt"):
            train[key] = {**train[key], "relativistic": relativistic_sfd}
    else:
        train.pop("feat_gan_opt"), train.pop("text_gan_opt")
        train["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 5e-3}
    if host in ("RealESRGANModel", "SFDRealModel"):
        # Pairs fed as they are (no second-order synthesis): the GAN step is what is measured.
        opt.update({"high_order_degradation": False, "l1_gt_usm": False, "percep_gt_usm": False, "gan_gt_usm": False})
    return opt


def build_host(host: str, network_d: dict, exp_dir: str, seed: int = 0, **kwargs):
    """A BasicSR model for ``host`` (see HOSTS), seeded so equal arguments give equal networks."""
    from basicsr.models import build_model

    opt = host_options(host, network_d, exp_dir, **kwargs)
    torch.manual_seed(seed)
    with cuda_calls_stay_on_cpu(torch.device(opt["num_gpu"] and "cuda" or "cpu")):
        return build_model(opt)


def run_iteration(host: str, model, batch: dict, current_iter: int) -> None:
    """feed_data + one optimize_parameters of ``host`` (traiNNer's order for TRAINNER)."""
    model.feed_data(batch)
    if host == TRAINNER:
        trainner_srmodel_step(model, current_iter)
    else:
        model.optimize_parameters(current_iter)


def backbone_of(model):
    return model.get_bare_model(model.net_d).backbone


def count_passes(host: str, model, batch: dict, current_iter: int) -> dict:
    """{'image': CLIP image-tower passes, 'text': text-tower passes} in one iteration."""
    bb = backbone_of(model)
    image0, text0 = bb.num_image_forwards, bb.num_text_forwards
    run_iteration(host, model, batch, current_iter)
    return {"image": bb.num_image_forwards - image0, "text": bb.num_text_forwards - text0}


def photo_batch(batch: int, size: int, device: str = "cpu", seed: int = 0) -> dict:
    """{'lq', 'gt'}: seeded crops of scikit-image photos (HR) and their bicubic x4 downscaling."""
    from sfd_utils.photos import TRAIN_PHOTOS, load_photo

    gen = torch.Generator().manual_seed(seed)
    crops = []
    for i in range(batch):
        img = torch.from_numpy(load_photo(TRAIN_PHOTOS[i % len(TRAIN_PHOTOS)])).permute(2, 0, 1).float() / 255
        if min(img.shape[-2:]) < size:
            img = F.interpolate(img[None], size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)
        top = int(torch.randint(0, img.shape[1] - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, img.shape[2] - size + 1, (1,), generator=gen))
        crops.append(img[:, top : top + size, left : left + size])
    gt = torch.stack(crops).to(device)
    lq = F.interpolate(gt, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    return {"lq": lq, "gt": gt}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def host_cost(
    clip_model: str = "tiny-rn",
    batch: int = 2,
    size: int = 128,
    repeats: int = 5,
    device: str = "cpu",
    feat_mid_channels: int = 64,
    n_ctx: int = 16,
) -> dict:
    """Per-host pass counts, and one iteration of ESRGANModel + SFDDiscriminator with reuse off and
    on vs SFDModel (relativistic SFDGANLoss, like ESRGAN's loss), timed over interleaved repeats.

    ``clip_model`` (timing only; counts use the tiny CLIP): 'tiny-rn' (shipped tiny config) or any
    open_clip name with random weights (e.g. 'RN50'). Returns a dict with 'counts' (per host:
    image/text passes per iteration, reuse on and off), 'timing' (per row: FLOPs of one iteration,
    seconds per iteration min/median/max, per-repeat time ratios to SFDModel) and 'meta'.
    """
    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS
    from sfd_utils.presets import TINY_RRDB

    network_d = {"clip_model": clip_model, "clip_pretrained": None, "n_ctx": n_ctx}
    network_d["feat_mid_channels"] = feat_mid_channels
    if clip_model.startswith("tiny-"):
        network_d["clip_config"] = TINY_CLIP_CONFIGS
    batches = [photo_batch(batch, size, device, seed) for seed in range(3)]
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Counts depend on the host's call order only: the tiny CLIP on 64² crops keeps them quick.
        tiny_d = {"clip_model": "tiny-rn", "clip_pretrained": None, "n_ctx": 4, "feat_mid_channels": 16}
        tiny_d["clip_config"] = TINY_CLIP_CONFIGS
        small = [photo_batch(2, 64, device, seed) for seed in range(3)]
        for host in HOSTS:
            for reuse in (True, False):
                nd = {**tiny_d, "reuse_features": reuse}
                model = build_host(host, nd, os.path.join(tmp, f"{host}-{reuse}"), device=device)
                per_iter = [count_passes(host, model, b, it) for it, b in enumerate(small, start=1)]
                counts[f"{host}{'' if reuse else ' (reuse off)'}"] = per_iter
                del model
        rows = {
            "ESRGANModel, reuse off": ("ESRGANModel", False, {}),
            "ESRGANModel, reuse on": ("ESRGANModel", True, {}),
            "SFDModel": ("SFDModel", True, {"relativistic_sfd": True}),
        }
        models = {}
        for name, (host, reuse, kw) in rows.items():
            nd = {**network_d, "reuse_features": reuse}
            models[name] = build_host(host, nd, os.path.join(tmp, name), network_g=TINY_RRDB, device=device, **kw)
        times = {name: [] for name in rows}
        it = 0
        gflops = {}
        for name, model in models.items():  # load-independent cost: FLOPs of one iteration
            it += 1
            model.feed_data(batches[0])
            with FlopCounterMode(display=False) as counter:
                model.optimize_parameters(it)
            gflops[name] = counter.get_total_flops() / 1e9
        for r in range(repeats + 1):  # repeat 0 is warm-up
            for name, model in models.items():
                it += 1
                b = batches[it % len(batches)]
                model.feed_data(b)
                _sync(device)
                t0 = time.perf_counter()
                model.optimize_parameters(it)
                _sync(device)
                if r:
                    times[name].append(time.perf_counter() - t0)
    ref = times["SFDModel"]
    timing = {
        name: {
            **_stats(ts),
            "ratio_to_sfd": _stats([t / s for t, s in zip(ts, ref)]),
            "gflops": gflops[name],
            "gflop_ratio_to_sfd": gflops[name] / gflops["SFDModel"],
        }
        for name, ts in times.items()
    }
    meta = {
        "clip_model": clip_model,
        "clip_weights": "random",
        "batch": batch,
        "hr_size": size,
        "generator": f"RRDBNet {TINY_RRDB['num_block']} block, {TINY_RRDB['num_feat']} ch (tiny)",
        "repeats": repeats,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    return {"meta": meta, "counts": counts, "timing": timing}


def write_report(result: dict, out_dir: str, command: str = "") -> str:
    """Write ``host_cost-<clip>-<device>-<date>.json`` and ``.md`` into ``out_dir``; returns the stem."""
    meta = result["meta"]
    os.makedirs(out_dir, exist_ok=True)
    device = "cuda" if "cuda" in str(meta["device"]).lower() or "nvidia" in str(meta["device"]).lower() else "cpu"
    stem = os.path.join(out_dir, f"host_cost-{meta['clip_model']}-{device}-{meta['date']}")
    with open(stem + ".json", "w") as f:
        json.dump({**copy.deepcopy(result), "command": command}, f, indent=2)
    lines = [
        f"# CLIP passes per iteration by host, and drop-in vs SFDModel ({meta['date']})",
        "",
        f"Timing: CLIP `{meta['clip_model']}` (random weights), batch {meta['batch']} of {meta['hr_size']}² HR, "
        f"{meta['device']}, {meta['threads']} threads, torch {meta['torch']}. `{command}`",
        "",
        "## Passes per iteration (iterations 1, 2, 3; tiny CLIP, 2 × 64²)",
        "",
        "| host | image tower | text tower |",
        "|---|---|---|",
    ]
    for host, per_iter in result["counts"].items():
        img = ", ".join(str(c["image"]) for c in per_iter)
        txt = ", ".join(str(c["text"]) for c in per_iter)
        lines.append(f"| {host} | {img} | {txt} |")
    lines += [
        "",
        f"## One iteration: drop-in vs SFDModel ({meta['generator']}, no VGG loss; {meta['repeats']} interleaved "
        "repeats after a warm-up)",
        "",
        "| row | GFLOP / iteration (ratio to SFDModel) | s / iteration min / median / max "
        "| time ratio to SFDModel min / median / max |",
        "|---|---|---|---|",
    ]
    for name, t in result["timing"].items():
        r = t["ratio_to_sfd"]
        lines.append(
            f"| {name} | {t['gflops']:.2f} ({t['gflop_ratio_to_sfd']:.2f}×) | "
            f"{t['min']:.3f} / {t['median']:.3f} / {t['max']:.3f} | "
            f"{r['min']:.2f} / {r['median']:.2f} / {r['max']:.2f} |"
        )
    lines += [
        "",
        "FLOPs: torch's FlopCounterMode over one whole iteration (matmuls and convolutions, forward and "
        "backward). Time ratios are per repeat (row time / SFDModel time of the same repeat). Timings on a "
        "shared machine are noisy; no speed target is judged here.",
        "",
    ]
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines))
    return stem


def run_hosts(a) -> int:
    """``scripts/bench_hosts.py``: the namespace of :func:`sfd_lab.bench.cli.hosts_parser`."""
    import sys

    import torch

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = host_cost(a.clip, a.batch, a.size, a.repeats, device)
    stem = write_report(result, a.out, "python " + " ".join(sys.argv))
    print(open(stem + ".md").read())
    print(f"wrote {stem}.json / .md")
    return 0
