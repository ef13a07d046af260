"""CSUD: which images reach which loss, and every logged loss by value (docs/method.md, CSUD).

One CSUDModel iteration on tiny networks. Its images are recomputed independently, one network call
each, from copies of the networks taken before the step (R~ = T(B, A), B^ = Dr(R~), A^ = Dr(A),
A1~ = T(A^, A), A2~ = T(A^, R~), R2~ = T(B^, R~), S1 = T(B, B), S2 = T(B, A^), S3 = T(B, B^)).
Spies on the loss modules and on D record what the model hands them.
"""

from __future__ import annotations

import copy

import pytest
import torch
from basicsr.models import build_model
from test_csud_model import rainy_batch

from sfd_model.csud_model import csud_options

REL = 2e-5  # relative tolerance of logged losses (float32 means)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float noise (batched vs single network calls, ~1e-7)."""
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6))


class Recorder:
    """Wraps a loss module: records the arguments of every call, returns the module's value."""

    def __init__(self, module):
        self.module, self.calls = module, []

    def __call__(self, *args, **kwargs):
        self.calls.append(args)
        return self.module(*args, **kwargs)


@pytest.fixture(scope="module")
def iteration(tmp_path_factory):
    """One CSUDModel.optimize_parameters call with spies, and the images recomputed by hand."""
    torch.manual_seed(0)
    model = build_model(csud_options(str(tmp_path_factory.mktemp("bite_csud"))))
    model.net_t.eval()  # no spectral-norm power iteration per call: T(x, y) is one function
    batch = rainy_batch()
    a, b = batch["rain"], batch["clean"]
    t0, dr0, d0 = (copy.deepcopy(n) for n in (model.net_t, model.net_g, model.net_d))
    with torch.no_grad():
        r = t0(b, a)
        b_hat, a_hat = dr0(r), dr0(a)
        want = {
            "R~": r,
            "B^": b_hat,
            "A^": a_hat,
            "A1~": t0(a_hat, a),
            "A2~": t0(a_hat, r),
            "R2~": t0(b_hat, r),
            "S1": t0(b, b),
            "S2": t0(b, a_hat),
            "S3": t0(b, b_hat),
        }
        d_of = {k: d0(v) for k, v in want.items()}
        d_rain = d0(a)
    # The wrong answers differ from the right ones far above float noise (T starts with a weak
    # dependence on its rain reference: ~4e-4 mean change from A^ to A).
    assert (want["S2"] - t0(b, a)).abs().mean() > 1e-4 and (a - b).abs().mean() > 0.05
    spies = {}
    for name in ("cri_cc", "cri_sr_t", "cri_sr_dr", "cri_pix"):
        spies[name] = Recorder(getattr(model, name))
        setattr(model, name, spies[name])
    d_inputs = []
    hook = model.net_d.register_forward_pre_hook(lambda _m, args: d_inputs.append(args[0].detach().clone()))
    model.feed_data(batch)
    model.optimize_parameters(1)
    hook.remove()
    logs = dict(model.log_dict)
    return {"model": model, "A": a, "B": b, "want": want, "d_of": d_of, "d_rain": d_rain}, spies, d_inputs, logs


def test_channel_consistency_gets_clean_b_and_pseudo_rainy(iteration):
    ctx, spies, _, logs = iteration
    (call,) = spies["cri_cc"].calls
    pseudo_rainy, clean = call
    assert close(pseudo_rainy, ctx["want"]["R~"])  # R~ = T(B, A)
    assert close(clean, ctx["B"]) and not close(clean, ctx["A"])  # B, not the rainy A
    delta = ctx["B"] - ctx["want"]["R~"]  # SPEC: delta = B - R~, L1 means of channel differences
    dr, dg, db = delta[:, 0], delta[:, 1], delta[:, 2]
    want = 10.0 * ((dr - dg).abs().mean() + (dg - db).abs().mean() + (db - dr).abs().mean())
    assert logs["l_t_cc"] == pytest.approx(float(want), rel=REL)


def test_self_reconstruction_pairs(iteration):
    """L_sr,T = |S1 - B| + |S2 - B| (x5), L_sr,Dr = |S3 - B| + |S2 - B| (x0.5)."""
    ctx, spies, _, logs = iteration
    w, b = ctx["want"], ctx["B"]
    (call_t,) = spies["cri_sr_t"].calls
    (call_dr,) = spies["cri_sr_dr"].calls
    recons_t, target_t = call_t
    recons_dr, target_dr = call_dr
    assert len(recons_t) == 2 and close(recons_t[0], w["S1"]) and close(recons_t[1], w["S2"])
    assert len(recons_dr) == 2 and close(recons_dr[0], w["S3"]) and close(recons_dr[1], w["S2"])
    assert close(target_t, b) and close(target_dr, b)

    def l1(x):
        return (x - b).abs().mean()

    assert logs["l_t_self_recon"] == pytest.approx(float(5.0 * (l1(w["S1"]) + l1(w["S2"]))), rel=REL)
    assert logs["l_dr_self_recon"] == pytest.approx(float(0.5 * (l1(w["S3"]) + l1(w["S2"]))), rel=REL)


def test_derainer_pair_and_adversarial_terms(iteration):
    """Dr learns on (B^, B); T's LSGAN terms judge R~, A2~, A1~, R2~ as real; D: A real, R~ fake."""
    ctx, spies, d_inputs, logs = iteration
    w, b = ctx["want"], ctx["B"]
    (call,) = spies["cri_pix"].calls
    assert close(call[0], w["B^"]) and close(call[1], b)
    assert logs["l_dr_pix"] == pytest.approx(float((w["B^"] - b).abs().mean()), rel=REL)
    g_input, d_input = d_inputs  # one batched D call per step
    assert close(g_input, torch.cat([w["R~"], w["A2~"], w["A1~"], w["R2~"]]))
    assert close(d_input, torch.cat([ctx["A"], w["R~"]]))
    d_of = ctx["d_of"]
    for key, name in (("pseudo", "R~"), ("a2", "A2~"), ("a1", "A1~"), ("r2", "R2~")):
        assert logs[f"l_t_gan_{key}"] == pytest.approx(float((d_of[name] - 1).pow(2).mean()), rel=REL), key
    assert logs["l_d_real"] == pytest.approx(float((ctx["d_rain"] - 1).pow(2).mean()), rel=REL)
    assert logs["l_d_fake"] == pytest.approx(float(d_of["R~"].pow(2).mean()), rel=REL)
