"""CSUDModel: where gradients go in each step, stop-gradients, exact resume, validation, saving."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from basicsr.models import build_model
from basicsr.utils.misc import check_resume
from conftest import photo, photo_tensor
from torch.utils.data import DataLoader

from sfd_lab.bench.csud import released_order_iteration
from sfd_model.csud_model import IMAGE_NAMES, csud_options
from sfd_tools.csud.synthetic_rain import add_rain

SIZE = 32


def rainy_batch(seed: int = 0, batch: int = 2) -> dict:
    """Rainy crops of one photo and clean crops of another (unpaired), (batch, 3, SIZE, SIZE)."""
    rng = np.random.default_rng(seed)
    clean_src = photo_tensor("coffee", SIZE, batch)
    img = photo("astronaut")
    rain = []
    for i in range(batch):
        top, left = 40 * i + 7 * seed, 30 * i + 5 * seed
        rain.append(torch.from_numpy(add_rain(img[top : top + SIZE, left : left + SIZE], rng)).permute(2, 0, 1))
    return {"rain": torch.stack(rain).float() / 255.0, "clean": clean_src}


def make_model(tmp_path, name="m", **train):
    torch.manual_seed(0)
    opt = csud_options(str(tmp_path / name), train=train)
    return build_model(opt), opt


def params(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_generator_step_grads_reach_t_and_dr_only(tmp_path):
    model, _ = make_model(tmp_path)
    model.feed_data(rainy_batch())
    d_before = params(model.net_d)
    imgs, losses = model.generator_step()
    assert set(imgs) == set(IMAGE_NAMES)
    for net in (model.net_t, model.net_g):
        # Every parameter is in the graph (NAFNet's inner convs get exact zeros while beta = gamma = 0).
        assert all(p.grad is not None for p in net.parameters())
        assert sum(p.grad.abs().sum() for p in net.parameters()) > 0
    assert all(p.grad.abs().sum() > 0 for p in model.net_t.parameters())
    assert all(p.grad is None for p in model.net_d.parameters())
    assert same(d_before, params(model.net_d))
    for key in ("l_t_cc", "l_t_self_recon", "l_t_gan", "l_dr_pix", "l_dr_ssim", "l_dr_self_recon"):
        assert torch.is_tensor(losses[key]) and torch.isfinite(losses[key])


def grads(loss, net) -> list:
    return torch.autograd.grad(loss, list(net.parameters()), retain_graph=True, allow_unused=True)


def test_stop_gradients_and_which_terms_reach_which_network(tmp_path):
    model, _ = make_model(tmp_path)
    b = rainy_batch()
    model.feed_data(b)
    model.set_d_trainable(False)
    imgs = model.forward_images()
    # B^ = Dr(sg(R~)): the pseudo-pair loss trains Dr only.
    l_pair = model.cri_pix(imgs["derained_pseudo"], b["clean"])
    assert all(g is None for g in grads(l_pair, model.net_t))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(l_pair, model.net_g))
    # CCLoss on R~ = T(B, A): T only.
    l_cc = model.cri_cc(imgs["pseudo_rainy"], b["clean"])
    assert all(g is None for g in grads(l_cc, model.net_g))
    assert any(g is not None for g in grads(l_cc, model.net_t))
    # S2 = T(B, A^) reaches both (the authors' joint objective), S1 = T(B, B) only T.
    assert any(g is not None for g in grads(imgs["s2"].mean(), model.net_g))
    assert all(g is None for g in grads(imgs["s1"].mean(), model.net_g))


def test_discriminator_step_changes_d_only(tmp_path):
    model, _ = make_model(tmp_path)
    model.feed_data(rainy_batch())
    imgs, losses = model.generator_step()
    t_before, g_before, d_before = params(model.net_t), params(model.net_g), params(model.net_d)
    model.optimizer_t.zero_grad(set_to_none=True)
    model.optimizer_g.zero_grad(set_to_none=True)
    model.discriminator_step(imgs["pseudo_rainy"], losses)
    assert same(t_before, params(model.net_t)) and same(g_before, params(model.net_g))
    assert all(p.grad is None for p in model.net_t.parameters())
    assert all(p.grad is None for p in model.net_g.parameters())
    assert not same(d_before, params(model.net_d))
    assert all(p.requires_grad for p in model.net_d.parameters())
    for key in ("l_d_real", "l_d_fake", "out_d_real", "out_d_fake"):
        assert key in losses


def test_released_order_gives_the_same_gradients(tmp_path):
    """The benchmark's re-run of the authors' order must do the same maths as ours."""
    batch = rainy_batch()
    results = []
    for name, batched in (("ours", True), ("released", False)):
        model, _ = make_model(tmp_path, name)
        model.net_t.eval()  # spectral-norm power iteration per call would differ between the two orders
        model.feed_data(batch)
        model.set_d_trainable(False)
        imgs = model.forward_images(batched=batched)
        _, l_t, l_dr = model.generator_losses(imgs, batched=batched)
        if batched:
            (l_t + l_dr).backward()
        else:
            l_t.backward(retain_graph=True)
            l_dr.backward()
        results.append([p.grad.clone() for net in (model.net_t, model.net_g) for p in net.parameters()])
    for ours, released in zip(*results):  # equal up to float summation order
        assert (ours - released).norm() <= 1e-4 * ours.norm() + 1e-8


@pytest.mark.parametrize("joint", [True, False])
def test_generator_step_follows_the_objective_option(tmp_path, joint):
    """joint (authors'): T and Dr both get d(l_t + l_dr); split: T gets d(l_t), Dr gets d(l_dr)."""
    model, _ = make_model(tmp_path, joint_objective=joint)
    model.net_t.eval()  # freeze spectral-norm power iteration: both forwards below are identical
    model.feed_data(rainy_batch())
    model.set_d_trainable(False)
    _, l_t, l_dr = model.generator_losses(model.forward_images())
    nets = {"t": list(model.net_t.parameters()), "g": list(model.net_g.parameters())}
    loss_of = {"t": l_t + l_dr, "g": l_t + l_dr} if joint else {"t": l_t, "g": l_dr}
    want = {k: torch.autograd.grad(loss_of[k], nets[k], retain_graph=True, allow_unused=True) for k in nets}
    model.generator_step()
    for k, ps in nets.items():
        for p, w in zip(ps, want[k]):
            zero = torch.zeros_like(p)
            got, w = zero if p.grad is None else p.grad, zero if w is None else w
            torch.testing.assert_close(got, w, rtol=1e-4, atol=1e-7)


def test_released_order_iteration_runs(tmp_path):
    model, _ = make_model(tmp_path)
    model.feed_data(rainy_batch())
    losses = released_order_iteration(model)
    assert {"l_t_gan", "l_dr_pix", "l_d_real"} <= set(losses)


def run_iters(model, iters, batches):
    logs = []
    for it in iters:
        model.update_learning_rate(it, warmup_iter=-1)
        model.feed_data(batches(it))
        model.optimize_parameters(it)
        logs.append(dict(model.get_current_log()))
    return logs


def test_resume_reproduces_the_next_iteration(tmp_path):
    train = {"ema_decay": 0.9, "scheduler": {"type": "MultiStepLR", "milestones": [2, 3], "gamma": 0.5}}
    fixed = {i: rainy_batch(seed=i) for i in (1, 2)}

    def batches(it):  # iteration 3 draws its batch from the global RNG: the RNG must be resumed too
        return (
            fixed[it] if it in fixed else {"rain": torch.rand(2, 3, SIZE, SIZE), "clean": torch.rand(2, 3, SIZE, SIZE)}
        )

    model, opt = make_model(tmp_path, "run", **train)
    run_iters(model, [1, 2], batches)
    model.save(epoch=0, current_iter=2)
    expected = run_iters(model, [3], batches)[0]

    torch.manual_seed(123)  # a fresh process would start from other random numbers
    state_path = os.path.join(opt["path"]["training_states"], "2.state")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    _, fresh_opt = make_model(tmp_path, "unused", **train)
    fresh_opt["path"].update({k: opt["path"][k] for k in ("models", "training_states")})
    fresh_opt["path"]["resume_state"] = state_path
    check_resume(fresh_opt, state["iter"])  # BasicSR's rule: pretrain_network_<x> = net_<x>_<iter>.pth
    for x in ("g", "t", "d"):
        assert fresh_opt["path"][f"pretrain_network_{x}"].endswith(f"net_{x}_2.pth")
    resumed = build_model(fresh_opt)
    resumed.resume_training(state)
    got = run_iters(resumed, [3], batches)[0]
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-7), key
    for net in ("net_g", "net_t", "net_d", "net_g_ema"):
        torch.testing.assert_close(params(getattr(resumed, net)), params(getattr(model, net)), rtol=0, atol=1e-7)


def test_save_writes_three_networks_and_full_state(tmp_path):
    model, opt = make_model(tmp_path)
    model.feed_data(rainy_batch())
    model.optimize_parameters(1)
    model.save(epoch=0, current_iter=1)
    models = opt["path"]["models"]
    for x in ("g", "t", "d"):
        assert os.path.isfile(os.path.join(models, f"net_{x}_1.pth"))
    d = torch.load(os.path.join(models, "net_d_1.pth"), weights_only=True)["params"]
    assert not any("blur_kernel" in k for k in d)
    state = torch.load(os.path.join(opt["path"]["training_states"], "1.state"), weights_only=True)
    assert len(state["optimizers"]) == 3 and len(state["schedulers"]) == 3 and "rng" in state


@pytest.mark.parametrize("missing", ["optim_t", "gan_opt"])
def test_missing_option_named(tmp_path, missing):
    opt = csud_options(str(tmp_path / "x"), train={missing: None})
    with pytest.raises(KeyError, match=f"train.{missing}"):
        build_model(opt)


class TBRecorder:
    def __init__(self):
        self.images, self.scalars = {}, {}

    def add_image(self, tag, img, step):
        self.images[tag] = img

    def add_scalar(self, tag, value, step):
        self.scalars[tag] = value


def val_loader(tmp_path, with_gt: bool) -> DataLoader:
    import cv2
    from basicsr.data import build_dataset

    rain_dir, clean_dir = tmp_path / "val_rain", tmp_path / "val_clean"
    rain_dir.mkdir(exist_ok=True)
    clean_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    img = photo("chelsea")
    for i, (h, w) in enumerate([(40, 52), (37, 33)]):
        crop = img[50 * i : 50 * i + h, 60 * i : 60 * i + w]
        cv2.imwrite(str(clean_dir / f"c{i}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(rain_dir / f"c{i}.png"), cv2.cvtColor(add_rain(crop, rng), cv2.COLOR_RGB2BGR))
    io = {"type": "disk"}
    if with_gt:
        dopt = {"name": "val_gt", "type": "PairedImageDataset", "dataroot_gt": str(clean_dir), "scale": 1}
        dopt.update({"dataroot_lq": str(rain_dir), "io_backend": io, "phase": "val"})
    else:
        dopt = {"name": "val_nogt", "type": "SingleImageDataset", "dataroot_lq": str(rain_dir), "io_backend": io}
        dopt["phase"] = "val"
    return DataLoader(build_dataset(dopt), batch_size=1)


def test_validation_rgb_and_y_with_gt_and_no_crash_without(tmp_path):
    model, opt = make_model(tmp_path)
    model.feed_data(rainy_batch())
    model.optimize_parameters(1)
    metrics = {
        "psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False},
        "psnr_y": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": True},
        "ssim": {"type": "calculate_ssim", "crop_border": 0, "test_y_channel": False},
        "ssim_y": {"type": "calculate_ssim", "crop_border": 0, "test_y_channel": True},
    }
    model.opt["val"] = {"metrics": metrics, "tb_images": 1}
    tb = TBRecorder()
    model.validation(val_loader(tmp_path, with_gt=True), 1, tb, save_img=True)
    assert set(model.metric_results) == set(metrics)
    assert all(np.isfinite(v) for v in model.metric_results.values())
    assert model.metric_results["psnr"] != model.metric_results["psnr_y"]
    assert tb.images["val_val_gt/c0"].shape == (3, 40, 3 * 52)  # rainy | derained | GT
    assert tb.images["train/samples"].shape == (3, SIZE, 4 * SIZE)
    assert os.path.isfile(os.path.join(opt["path"]["visualization"], "c1", "c1_1.png"))
    model.metric_results = {}
    tb = TBRecorder()
    model.validation(val_loader(tmp_path, with_gt=False), 2, tb, save_img=False)
    assert model.metric_results == {} and tb.images["val_val_nogt/c0"].shape == (3, 40, 2 * 52)
