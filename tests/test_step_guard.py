"""SFDModel's step without host reads (issue 31, sfd_model/step_guard.py): nothing is read back to the host
outside the iterations BasicSR logs; the non-finite guard skips steps on the device (fused Adam's
``found_inf``) with the warnings, the count and the stop of before; fused Adam equals foreach; a training
state saved by a foreach optimizer resumes into a fused one."""

from __future__ import annotations

import pytest
import torch
from basicsr.models import build_model
from conftest import lr_hr_batch, sfd_opt
from test_faults import Records, nan_loss, weights

from sfd_lab.timing import count_dispatched_ops
from sfd_model.step_guard import DeferredLog, steps_on_device, with_fused_default
from sfd_utils.resume import NonFiniteLossError


def build(clip_file, tmp_path, print_freq: int = 1, **train):
    opt = sfd_opt(clip_file, str(tmp_path), **train)
    opt["logger"]["print_freq"] = print_freq
    torch.manual_seed(0)
    return build_model(opt)


def test_no_host_read_outside_logged_iterations(tiny_clip_files, tmp_path):
    """The target of issue 31: 0 values read back per iteration that is not logged (with EMA too); the
    logged one reads its losses once. With an optimizer that cannot skip on the device: one read."""
    model = build(tiny_clip_files["tiny-rn"], tmp_path / "fused", print_freq=10, ema_decay=0.9)
    assert all(steps_on_device(o) for o in model.optimizers)
    batch = lr_hr_batch()
    reads = {}
    for it in (1, 2, 10):
        model.feed_data(batch)
        counted = count_dispatched_ops(lambda it=it: model.optimize_parameters(it))
        reads[it] = (counted["host_reads"], counted["host_copy_reads"], counted["host_read_sites"])
    assert reads[1][0] == 0 and reads[2][0] == 0, reads
    assert reads[1][1] > 0  # the guard's values, read from their host copy (no sync on a GPU)
    assert reads[10][0] == 1 and "reduce_loss_dict" in reads[10][2][0]["site"], reads[10]
    assert isinstance(model.log_dict, dict) and "acc_d_feat" in model.log_dict  # logged: the statistics too
    foreach = build(
        tiny_clip_files["tiny-rn"],
        tmp_path / "foreach",
        print_freq=10,
        optim_d={"type": "Adam", "lr": 1e-3, "fused": False},
    )
    assert not steps_on_device(foreach.optimizer_d)
    foreach.feed_data(batch)
    counted = count_dispatched_ops(lambda: foreach.optimize_parameters(1))
    assert counted["host_reads"] == 1 and "optimize_parameters" in counted["host_read_sites"][0]["site"]


def test_unlogged_iterations_read_their_losses_only_when_asked(tiny_clip_files, tmp_path):
    model = build(tiny_clip_files["tiny-rn"], tmp_path, print_freq=100)
    model.feed_data(lr_hr_batch())
    model.optimize_parameters(1)
    logs = model.log_dict
    assert isinstance(logs, DeferredLog) and logs._values is None  # nothing read yet
    assert set(logs) == {"l_g_pix", "l_g_feat", "l_g_text", "l_d_feat", "l_d_text"}  # no statistics computed
    values = dict(logs)
    assert all(isinstance(v, float) for v in values.values()) and logs._values is not None


@pytest.mark.parametrize("fused", [True, False])
def test_nonfinite_guard_on_the_device_keeps_its_behaviour(tiny_clip_files, tmp_path, fused):
    """Unlogged iterations (print_freq 10): a NaN generator loss skips the G step (G and EMA untouched) while
    the finite D step runs; the warning names the iteration and the term; two such iterations in a row stop
    the training with the state saved (as before; fused: decided on the device, foreach: one read)."""
    optim = {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99], "fused": fused}
    model = build(
        tiny_clip_files["tiny-rn"], tmp_path, print_freq=10, ema_decay=0.9, nonfinite_max_skips=2, optim_g=optim
    )
    assert steps_on_device(model.optimizer_g) == fused
    batch = lr_hr_batch()
    model.feed_data(batch)
    model.optimize_parameters(1)
    g0, ema0, d0 = weights(model.net_g), weights(model.net_g_ema), weights(model.net_d)
    step_g0 = {id(p): float(s["step"]) for p, s in model.optimizer_g.state.items()}
    real_pix = model.cri_pix
    model.cri_pix = nan_loss
    with Records() as logs:
        model.optimize_parameters(2)
    assert "iter 2: non-finite loss (l_g_pix=nan); generator step skipped (1 iteration(s) in a row" in logs.text
    assert all(torch.equal(v, weights(model.net_g)[k]) for k, v in g0.items())
    assert all(torch.equal(v, weights(model.net_g_ema)[k]) for k, v in ema0.items())
    assert any(not torch.equal(v, weights(model.net_d)[k]) for k, v in d0.items())
    assert {id(p): float(s["step"]) for p, s in model.optimizer_g.state.items()} == step_g0  # Adam's count too
    model.cri_pix = real_pix
    model.optimize_parameters(3)
    assert model._nonfinite_run == 0 and any(not torch.equal(v, weights(model.net_g)[k]) for k, v in g0.items())
    model.cri_pix = nan_loss
    model.optimize_parameters(4)
    with pytest.raises(NonFiniteLossError, match="2 iterations in a row .* saved as iteration 5"):
        model.optimize_parameters(5)
    for net in (model.net_g, model.net_d):
        assert all(torch.isfinite(v).all() for v in weights(net).values())


def test_a_nonfinite_gradient_with_finite_losses_is_skipped_too(tiny_clip_files, tmp_path):
    model = build(tiny_clip_files["tiny-rn"], tmp_path, print_freq=10)
    model.feed_data(lr_hr_batch())
    model.optimize_parameters(1)
    d0 = weights(model.net_d)
    ctx = model.get_bare_model(model.net_d).prompt_pair.ctx  # its gradient exists in the D step only
    hook = ctx.register_hook(lambda g: torch.full_like(g, float("inf")))
    with Records() as logs:
        model.optimize_parameters(2)
    hook.remove()
    assert "iter 2: non-finite gradient; discriminator step skipped" in logs.text
    assert all(torch.equal(v, weights(model.net_d)[k]) for k, v in d0.items())


def test_fused_adam_is_the_default_and_equals_foreach(tiny_clip_files, tmp_path):
    """Adam without fused/foreach gets fused where torch has the kernels (CPU here); three iterations with
    fused and with foreach give the same losses and weights within float rounding."""
    assert with_fused_default({"type": "Adam", "lr": 1}, torch.device("cpu"))["fused"] is True
    assert "fused" not in with_fused_default({"type": "Adam", "lr": 1, "foreach": True}, torch.device("cpu"))
    assert with_fused_default({"type": "SGD", "lr": 1}, torch.device("cpu")) == {"type": "SGD", "lr": 1}
    runs = {}
    for fused in (True, False):
        optim = {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99], "fused": fused, "foreach": None if fused else True}
        model = build(tiny_clip_files["tiny-rn"], tmp_path / str(fused), optim_g=optim, optim_d=dict(optim))
        logs = []
        for it in (1, 2, 3):
            model.feed_data(lr_hr_batch(name=("astronaut", "coffee", "rocket")[it - 1]))
            model.optimize_parameters(it)
            logs.append(dict(model.log_dict))
        runs[fused] = (logs, {**weights(model.net_g), **weights(model.net_d)})
    for a, b in zip(runs[True][0], runs[False][0]):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
    for k, v in runs[True][1].items():
        torch.testing.assert_close(v, runs[False][1][k], rtol=1e-4, atol=1e-6, msg=k)


def test_a_foreach_training_state_resumes_fused(tiny_clip_files, tmp_path):
    optim = {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99], "fused": False}
    old = build(tiny_clip_files["tiny-rn"], tmp_path / "old", optim_g=optim, optim_d=dict(optim))
    old.feed_data(lr_hr_batch())
    old.optimize_parameters(1)
    old.save(0, 1)
    new = build(tiny_clip_files["tiny-rn"], tmp_path / "new")
    new.resume_training(torch.load(tmp_path / "old" / "training_states" / "1.state", weights_only=True))
    assert all(steps_on_device(o) for o in new.optimizers)
    new.feed_data(lr_hr_batch())
    new.optimize_parameters(2)
    assert all(float(s["step"]) == 2 for s in new.optimizer_d.state.values())
