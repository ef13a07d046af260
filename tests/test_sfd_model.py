"""SFDModel: cost rule, gradient routing, frozen CLIP, checkpoints, exact resume, options."""

from __future__ import annotations

import copy

import pytest
import torch
from basicsr.models import build_model
from conftest import lr_hr_batch, sfd_opt

from sfd_model.sfd_model import SFDModel
from sfd_utils.checkpoint import CheckpointError


def build(clip_file, tmp_path, **train):
    return build_model(sfd_opt(clip_file, str(tmp_path), **train))


def disc_of(model):
    return model.get_bare_model(model.net_d)


def params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module):
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def step(model, it, batch=None):
    model.feed_data(batch or lr_hr_batch())
    model.optimize_parameters(it)
    return {k: float(v) for k, v in model.log_dict.items()}


@pytest.mark.parametrize("init_iters", [0, 5])  # with and without a generator step
def test_two_clip_forwards_per_iteration(tiny_clip_files, tmp_path, init_iters):
    model = build(tiny_clip_files["tiny-rn"], tmp_path, net_d_init_iters=init_iters)
    assert isinstance(model, SFDModel)
    backbone = disc_of(model).backbone
    for it in (1, 2, 3):
        before = backbone.num_image_forwards
        logs = step(model, it)
        assert backbone.num_image_forwards - before == 2
        assert ("l_g_feat" in logs) == (init_iters == 0)


def test_text_tower_runs_once_per_iteration(tiny_clip_files, tmp_path):
    """SPEC: prompt features once per D step, cached (no grad) for the next G step."""
    model = build(tiny_clip_files["tiny-rn"], tmp_path)
    disc = disc_of(model)
    passes = []
    disc.prompt_pair.register_forward_hook(lambda *_: passes.append(torch.is_grad_enabled()))
    step(model, 1)
    assert passes == [True]  # no cache yet: the G step's pass, reused by the D step (same contexts)
    for it in (2, 3):
        passes.clear()
        step(model, it)
        assert passes == [True]  # the D step's only; the G step used the cache
    assert model.text_cache.requires_grad is False and model.text_cache.shape[0] == 2


def test_d_step_updates_only_heads_and_prompts(tiny_clip_files, tmp_path):
    model = build(tiny_clip_files["tiny-rn"], tmp_path, net_d_init_iters=10)
    disc = disc_of(model)
    g0, d0 = params(model.net_g), params(disc)
    clip0 = copy.deepcopy(disc.backbone.clip.state_dict())
    step(model, 1)
    assert not changed(g0, model.net_g)
    assert changed(d0, disc) == set(d0)  # every head weight and the prompt contexts
    assert all(torch.equal(clip0[k], v) for k, v in disc.backbone.clip.state_dict().items())


@pytest.mark.parametrize("use", ["feat", "text"])
def test_generator_learns_through_clip_only(tiny_clip_files, tmp_path, use):
    """No pixel loss: the generator's only gradient comes through frozen CLIP and a D head."""
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), pixel_opt=None)
    opt["network_d"]["use_feat"], opt["network_d"]["use_text"] = use == "feat", use == "text"
    opt["train"]["optim_d"]["lr"] = 0.0  # keep D fixed so only the G step moves anything
    model = build_model(opt)
    disc = disc_of(model)
    g0, clip0 = params(model.net_g), copy.deepcopy(disc.backbone.clip.state_dict())
    step(model, 1)
    assert changed(g0, model.net_g) == set(g0)
    assert all(torch.equal(clip0[k], v) for k, v in disc.backbone.clip.state_dict().items())


def test_generator_adversarial_loss_falls_against_fixed_discriminator(tiny_clip_files, tmp_path):
    """Train D alone until it spots the tiny generator, freeze it, then train G alone: G's
    adversarial loss (Feat-D + TG-D) must fall, i.e. G learns to fool a fixed SFD discriminator."""
    torch.manual_seed(0)  # networks start from the global RNG: independent of the tests run before
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), pixel_opt=None)
    opt["train"]["feat_gan_opt"]["loss_weight"] = opt["train"]["text_gan_opt"]["loss_weight"] = 1.0
    model = build_model(opt)
    batch = lr_hr_batch(2)
    for group in model.optimizer_g.param_groups:
        group["lr"] = 0.0
    for it in range(1, 41):
        logs = step(model, it, batch)
    assert logs["acc_d_feat"] > 0.9 and logs["acc_d_text"] > 0.9
    for group in model.optimizer_d.param_groups:
        group["lr"] = 0.0
    for group in model.optimizer_g.param_groups:
        group["lr"] = 1e-3
    disc_of(model).feat_disc.momentum = 0.0  # running RMS frozen too: D is fixed
    losses = [
        sum(v for k, v in step(model, it, batch).items() if k in ("l_g_feat", "l_g_text")) for it in range(41, 66)
    ]
    assert losses[-1] < 0.2 * losses[0], losses


def test_discriminator_only_with_bicubic_generator(tiny_clip_files, tmp_path):
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path))
    opt["network_g"] = {"type": "SFDBicubicUpsampler", "scale": 4}
    model = build_model(opt)
    assert model.optimizer_g is None and len(model.optimizers) == 1
    names = ("astronaut", "coffee", "rocket", "hubble_deep_field")
    logs = [step(model, it, lr_hr_batch(4, name=names[it % 4])) for it in range(1, 61)]
    mean = lambda key, part: sum(log[key] for log in part) / len(part)  # noqa: E731
    assert mean("l_d_feat", logs[-10:]) < mean("l_d_feat", logs[:10]) - 0.1
    assert mean("l_d_text", logs[-10:]) < mean("l_d_text", logs[:10])
    assert mean("acc_d_feat", logs[-10:]) > 0.6


def test_checkpoint_holds_no_clip(tiny_clip_files, tmp_path):
    model = build(tiny_clip_files["tiny-rn"], tmp_path)
    step(model, 1)
    model.save(0, 1)
    saved = torch.load(tmp_path / "models" / "net_d_1.pth", weights_only=True)["params"]
    clip_keys = set(disc_of(model).backbone.clip.state_dict())
    assert not clip_keys & set(saved)
    assert all(k.startswith(("feat_disc.", "prompt_pair.", "_extra_state")) for k in saved)
    assert (tmp_path / "training_states" / "1.state").is_file()


def test_resume_reproduces_next_iteration(tiny_clip_files, tmp_path):
    clip = tiny_clip_files["tiny-rn"]
    torch.manual_seed(0)
    a = build(clip, tmp_path / "a", ema_decay=0.9)
    batches = [lr_hr_batch(2, name=n) for n in ("astronaut", "coffee", "rocket", "chelsea")]
    for it in (1, 2, 3):
        step(a, it, batches[it - 1])
    a.save(0, 3)
    torch.manual_seed(123)  # RNG must come from the state, not from the process
    reference = step(a, 4, batches[3])

    torch.manual_seed(999)
    b = build(clip, tmp_path / "b", ema_decay=0.9)
    models = tmp_path / "a" / "models"
    b.load_network(b.net_g, str(models / "net_g_3.pth"), True, "params")
    b.load_network(b.net_g_ema, str(models / "net_g_3.pth"), True, "params_ema")
    b.load_network(b.net_d, str(models / "net_d_3.pth"), True, "params")
    b.resume_training(torch.load(tmp_path / "a" / "training_states" / "3.state", weights_only=True))
    resumed = step(b, 4, batches[3])
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert resumed[k] == pytest.approx(reference[k], rel=1e-5, abs=1e-7), k


def test_options_are_validated(tiny_clip_files, tmp_path):
    clip = tiny_clip_files["tiny-rn"]
    with pytest.raises(ValueError, match="train.amp"):
        build(clip, tmp_path, amp="fp8")
    with pytest.raises(KeyError, match="train.text_gan_opt"):
        build(clip, tmp_path, text_gan_opt=None)
    with pytest.raises(ValueError, match="feat_gan_opt"):
        build(clip, tmp_path, gan_opt={"type": "GANLoss", "gan_type": "vanilla"})
    opt = sfd_opt(clip, str(tmp_path))
    opt["path"]["pretrain_network_g"] = str(tmp_path / "missing_g.pth")
    with pytest.raises(FileNotFoundError, match="path.pretrain_network_g"):
        build_model(opt)
    model = build(clip, tmp_path)
    g_file = tmp_path / "net_g_1.pth"
    torch.save({"params": model.net_g.state_dict()}, g_file)
    opt = sfd_opt(clip, str(tmp_path))
    opt["path"]["pretrain_network_d"] = str(g_file)  # a generator where the discriminator belongs
    with pytest.raises(CheckpointError, match=r"net_g_1.pth does not fit SFDDiscriminator \(missing keys"):
        build_model(opt)
    opt = sfd_opt(clip, str(tmp_path))
    opt["network_d"] = {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 8, "input_size": 128}
    with pytest.raises(ValueError, match="SFDDiscriminator"):
        build_model(opt)


@pytest.mark.parametrize("variant", ["relativistic", "bf16", "channels_last", "ema"])
def test_variants_train(tiny_clip_files, tmp_path, variant):
    clip = tiny_clip_files["tiny-rn"]
    torch.manual_seed(0)
    ref = step(build(clip, tmp_path / "ref"), 1)
    train = {}
    if variant == "relativistic":
        train = {
            "feat_gan_opt": {"type": "SFDGANLoss", "loss_weight": 5e-3, "relativistic": True},
            "text_gan_opt": {"type": "SFDGANLoss", "loss_weight": 5e-3, "relativistic": True},
        }
    elif variant == "bf16":
        train = {"amp": "bf16"}
    elif variant == "channels_last":
        train = {"channels_last": True}
    else:
        train = {"ema_decay": 0.5}
    torch.manual_seed(0)
    model = build(clip, tmp_path / variant, **train)
    logs = step(model, 1)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    if variant in ("bf16", "channels_last"):
        for k in ("l_g_pix", "l_d_feat", "l_d_text"):
            assert logs[k] == pytest.approx(ref[k], rel=0.05 if variant == "bf16" else 1e-4), k
    if variant == "ema":
        assert any(not torch.equal(a, b) for a, b in zip(model.net_g.parameters(), model.net_g_ema.parameters()))


def test_fp16_one_grad_scaler_per_network(tiny_clip_files, tmp_path):
    """fp16 autocast + GradScaler (runs on CPU too). The prompt contexts' gradient through CLIP's text
    tower overflows fp16 at GradScaler's initial scale, so the first D steps are skipped (GradScaler's
    design) until the D scale has halved enough; with one scaler per optimizer those overflows never
    lower the generator's scale, and the D step then trains every head and prompt parameter. The
    scales round-trip through the training state (and an older state's single scaler loads into both)."""
    clip = tiny_clip_files["tiny-rn"]
    torch.manual_seed(0)
    model = build(clip, tmp_path / "a", amp="fp16")
    scalers = model.grad_scalers
    assert set(scalers) == {"g", "d"} and scalers["g"] is not scalers["d"]
    disc = disc_of(model)
    heads0 = params(disc)
    g0 = params(model.net_g)
    clip0 = {k: v.clone() for k, v in disc.backbone.clip.state_dict().items()}
    d_scales = []
    for it in range(1, 9):
        logs = step(model, it)
        d_scales.append(scalers["d"].get_scale())
        if changed(heads0, disc) == set(heads0):
            break
    assert changed(heads0, disc) == set(heads0), f"D never stepped; D scales {d_scales}"
    assert changed(g0, model.net_g) == set(g0)  # the generator stepped every iteration
    assert scalers["g"].get_scale() == 65536.0  # D's overflows did not lower G's loss scale
    assert scalers["d"].get_scale() < 65536.0  # ... but did lower D's (the skipped first steps)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    assert all(torch.equal(clip0[k], v) for k, v in disc.backbone.clip.state_dict().items())

    model.save(0, it)
    state = torch.load(tmp_path / "a" / "training_states" / f"{it}.state", weights_only=True)
    b = build(clip, tmp_path / "b", amp="fp16")
    b.resume_training(state)
    assert {k: s.get_scale() for k, s in b.grad_scalers.items()} == {k: s.get_scale() for k, s in scalers.items()}
    old = {k: v for k, v in state.items() if k != "grad_scalers"}
    old["grad_scaler"] = scalers["d"].state_dict()  # a .state written before one scaler per optimizer
    c = build(clip, tmp_path / "c", amp="fp16")
    c.resume_training(old)
    assert c.grad_scalers["g"].get_scale() == c.grad_scalers["d"].get_scale() == scalers["d"].get_scale()
