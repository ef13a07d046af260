"""CUDA paths (issue 18): bf16 autocast and fp16 GradScaler SFD steps, SFDRealModel next to basicsr's
CUDA-only RealESRGANModel. Marked ``cuda``: skipped without a GPU; ``scripts/gpu_check.sh`` runs them."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, lr_hr_batch, sfd_opt

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _build(opt: dict):
    from basicsr.models import build_model

    opt["num_gpu"] = 1
    torch.manual_seed(0)
    return build_model(opt)


def _cuda_batch(batch: int = 2, size: int = 64) -> dict:
    return {k: v.cuda() for k, v in lr_hr_batch(batch, size).items()}


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_sfd_step_under_autocast(amp, tmp_path):
    model = _build(sfd_opt(None, str(tmp_path), amp=amp))
    disc = model.get_bare_model(model.net_d)
    heads0 = {k: v.detach().clone() for k, v in disc.named_parameters()}
    clip0 = {k: v.detach().clone() for k, v in disc.backbone.clip.state_dict().items()}
    batch = _cuda_batch()
    # fp16: GradScaler skips the D steps whose prompt-context gradient overflows at its initial scale
    # (halving the D scale each time; found on the H200 and reproduced on CPU), so train until the D
    # step has stepped; bf16 has no scaler and trains from the first iteration.
    iters = 2 if amp == "bf16" else 8
    for it in range(1, iters + 1):
        model.feed_data(batch)
        model.optimize_parameters(it)
        if amp == "fp16" and all(not torch.equal(heads0[k], v) for k, v in disc.named_parameters()):
            break
    assert model.output.is_cuda and model.output.shape == (2, 3, 64, 64)
    assert all(np.isfinite(float(v)) for v in model.log_dict.values()), model.log_dict
    assert disc.backbone.num_image_forwards == 2 * it  # two CLIP image forwards per iteration
    assert all(not torch.equal(heads0[k], v) for k, v in disc.named_parameters())  # heads trained
    assert all(torch.equal(clip0[k], v) for k, v in disc.backbone.clip.state_dict().items())  # CLIP frozen
    if amp == "fp16":
        assert set(model.grad_scalers) == {"g", "d"}  # one scaler per optimizer
        assert model.grad_scalers["g"].get_scale() >= model.grad_scalers["d"].get_scale() > 0
    else:
        assert model.grad_scalers == {} and it == 2


def _real_opt(tmp_path, model_type: str) -> dict:
    """A tiny SFDRealModel / RealESRGANModel with the Real-ESRGAN recipe's degradation keys."""
    recipe = yaml.safe_load(open(os.path.join(ROOT, "options", "train_SFD_RealRRDB_x4.yml")))
    opt = sfd_opt(None, str(tmp_path / model_type), model_type=model_type)
    skip = {"name", "model_type", "scale", "num_gpu", "manual_seed", "datasets", "network_g", "network_d", "path"}
    skip |= {"train", "val", "logger", "dist_params"}
    opt.update({k: v for k, v in recipe.items() if k not in skip})
    opt.update(gt_size=64, queue_size=4)
    if model_type == "RealESRGANModel":
        opt["train"].pop("feat_gan_opt"), opt["train"].pop("text_gan_opt")
        opt["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 5e-3}
    return opt


def _synthesis_batch() -> dict:
    delta = torch.zeros(21, 21)
    delta[10, 10] = 1.0
    gt = lr_hr_batch(2, 64)["gt"].cuda()
    return {
        "gt": gt,
        "kernel1": delta.expand(2, 21, 21).cuda(),
        "kernel2": delta.expand(2, 21, 21).cuda(),
        "sinc_kernel": delta.expand(2, 21, 21).cuda(),
    }


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def test_sfd_real_model_next_to_realesrgan_model(tmp_path):
    batch = _synthesis_batch()
    lq = {}
    for model_type in ("RealESRGANModel", "SFDRealModel"):
        model = _build(_real_opt(tmp_path, model_type))
        _seed(1)
        model.feed_data({k: v.clone() for k, v in batch.items()})
        assert model.lq.is_cuda and model.lq.shape == (2, 3, 16, 16) and model.gt.shape == (2, 3, 64, 64)
        lq[model_type] = model.lq.detach().clone()
        model.optimize_parameters(1)
        assert all(np.isfinite(float(v)) for v in model.log_dict.values()), (model_type, model.log_dict)
    # SFDRealModel runs basicsr's synthesis unchanged: same seed, same degraded inputs (up to one
    # 8-bit level where a GPU kernel rounds differently)
    diff = (lq["SFDRealModel"] - lq["RealESRGANModel"]).abs()
    assert float(diff.max()) <= 1.5 / 255 and float(diff.mean()) < 1e-3


# -- network_d.fast_path (issue 21): real CUDA graphs against eager ---------------------------------
def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Equal within bf16 rounding: the graphs replay eager's kernels (only atomics may reorder sums)."""
    scale = float(a.detach().abs().max()) or 1.0
    torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2 * scale, msg=what)


@pytest.mark.parametrize("order", ["srgan", "trainner"])
def test_fast_path_graphs_match_eager(order, tiny_clip_files):
    """A directly built discriminator under bf16 autocast (clip_dtype auto: the frozen weights follow
    autocast once), in a stock host's call order, then a new batch shape: outputs, the image
    gradient, every parameter gradient and buffer equal eager's; the regions really replay."""
    from test_fast_path import grads_and_state, host_iteration, make_disc

    eager = make_disc(tiny_clip_files["tiny-rn"], "off").cuda()
    fast = make_disc(tiny_clip_files["tiny-rn"], "cuda_graphs").cuda()
    for batch, size in ((2, 64), (2, 64), (3, 96)):
        real, fake = torch.rand(2, batch, 3, size, size, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            results = [host_iteration(d, real, fake, order) for d in (eager, fast)]
        for i, (a, b) in enumerate(zip(*results)):
            _close(a, b, f"output {i} at {batch}x{size}")
        ref, got = grads_and_state(eager), grads_and_state(fast)
        assert ref.keys() == got.keys()
        for k in ref:
            if ref[k].is_floating_point():
                _close(ref[k], got[k], k)
            else:
                assert torch.equal(ref[k], got[k]), k
        for d in (eager, fast):
            with torch.no_grad():
                for p in d.parameters():
                    p.sub_(1e-2 * p.grad)
    assert fast.backbone.weight_dtype is torch.bfloat16 and eager.backbone.weight_dtype is torch.bfloat16
    stats = fast.fast_path.status()
    assert stats["captures"] >= 6 and stats["replays"] >= 30, stats
    assert not any("failed" in s or "not on CUDA" in s for s in stats["said"]), stats
    assert any(s.endswith(": CUDA graphs") for s in stats["said"]), stats


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_fast_path_sfd_model_matches_eager(amp, tmp_path):
    """SFDModel (one GradScaler per network under fp16) with fast_path auto and off: the same losses
    and weights after three iterations within amp rounding; every region replays, none recomputes."""
    runs = {}
    for mode in ("off", "auto"):
        opt = sfd_opt(None, str(tmp_path / mode), amp=amp)
        opt["network_d"]["fast_path"] = mode
        model = _build(opt)
        logs = []
        for it in range(1, 4):
            model.feed_data(_cuda_batch())
            model.optimize_parameters(it)
            logs.append(dict(model.log_dict))
        disc = model.get_bare_model(model.net_d)
        runs[mode] = (logs, {k: v.detach().clone() for k, v in disc.state_dict().items()}, disc.fast_path.status())
    (logs_off, sd_off, _), (logs_on, sd_on, stats) = runs["off"], runs["auto"]
    for a, b in zip(logs_off, logs_on):
        assert a.keys() == b.keys()
        for k in a:
            assert abs(a[k] - b[k]) <= 3e-2 * max(1.0, abs(a[k])), (k, a[k], b[k])
    for k in sd_off:
        if sd_off[k].is_floating_point():
            _close(sd_off[k], sd_on[k], k)
    assert stats["replays"] >= 3 * 6 and stats["recomputes"] == 0, stats
    assert any(s.endswith(": CUDA graphs") for s in stats["said"]), stats


# -- issue 31: the evidence for making fast_path auto the default ----------------------------------------
@pytest.mark.parametrize("clip", ["RN50", "ViT-B-16"])
def test_fast_path_gradients_equal_eager_at_real_size(clip):
    """RN50 / ViT-B-16 (random weights in the real layout), batch 16, 256², bf16 and fp16, the SRGAN, ESRGAN
    (retain_graph) and traiNNer orders, reuse_features on and off, deterministic cuDNN: every discriminator
    parameter's gradient and the SR image's gradient within 1e-3 (relative L2) of eager's, and every graphed
    region replayed without an eager recompute (sfd_lab/gpu_check/equality.py; `make gpu-decide` runs the same)."""
    from sfd_lab.gpu_check.equality import TOLERANCE, run_equality

    result = run_equality([clip], 16, 256, ["bf16", "fp16"], iterations=2, emulate=False)
    assert result["graphs"] == "CUDA" and len(result["cases"]) == 2 * 3 * 2
    failed = [
        f"{c['amp']} {c['order']} reuse {c['reuse_features']}: {c['problems']}"
        for c in result["cases"]
        if not c["passed"]
    ]
    assert result["passed"] and not failed, failed
    for c in result["cases"]:
        assert c["worst"]["gradient"]["rel_l2"] <= TOLERANCE
        assert all(r["replays"] > 0 and r["recomputes"] == 0 for r in c["regions"].values()), c["regions"]
        assert not any("failed" in s for s in c["said"]), c["said"]


def test_fast_path_sfd_model_ab_200_iterations():
    """Same seed, 200 SFDModel iterations (bf16, tiny data), fast_path off vs auto: the first iteration's
    losses within 1e-3 and every 20-iteration window mean within 2 % (sfd_lab/gpu_check/ab_training.py)."""
    from sfd_lab.gpu_check.ab_training import run_ab

    result = run_ab("RN50", 64, 2, 200, "bf16", emulate=False)
    assert result["graphs"] == "CUDA"
    assert result["passed"], (result["problems"], result["terms"])
