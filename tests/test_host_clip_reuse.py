"""CLIP feature reuse in stock GAN hosts: passes per iteration, exactness, staleness, memory, and the
packed output under ESRGAN's relativistic loss."""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from conftest import CLIP_CONFIGS, photo_tensor

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_lab.bench.host_cost import HOSTS, TRAINNER, build_host, count_passes, photo_batch

# Passes per iteration of each host without reuse (image tower, text tower): one per net_d call.
STOCK_PASSES = {"SRGANModel": 3, "ESRGANModel": 5, "RealESRGANModel": 3, TRAINNER: 3}


def network_d(clip_file: str, **extra) -> dict:
    return {"clip_model": "tiny-rn", "clip_pretrained": clip_file, "n_ctx": 4, "feat_mid_channels": 16, **extra}


def state(model) -> dict[str, torch.Tensor]:
    nets = {"g": model.net_g, "d": model.get_bare_model(model.net_d)}
    return {f"{n}.{k}": v.detach().clone() for n, net in nets.items() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("host", HOSTS)
def test_passes_per_iteration_and_same_training(host, tiny_clip_files, tmp_path):
    """Every host: image tower <= 2 and text tower 1 per iteration with reuse; losses, weights and
    discriminator buffers after two iterations are bitwise those without reuse. RealESRGANModel is
    basicsr's stock class with its .cuda() calls made no-ops and pairs fed as they are; TRAINNER
    emulates traiNNer-redux SRModel's call order on SRGANModel's parts."""
    batches = [photo_batch(2, 64, seed=s) for s in (0, 1)]
    runs = {}
    for reuse in (True, False):
        nd = network_d(tiny_clip_files["tiny-rn"], reuse_features=reuse)
        model = build_host(host, nd, str(tmp_path / str(reuse)))
        counts = [count_passes(host, model, b, it) for it, b in enumerate(batches, start=1)]
        runs[reuse] = (counts, dict(model.log_dict), state(model))
    counts_on, logs_on, state_on = runs[True]
    counts_off, logs_off, state_off = runs[False]
    assert counts_on == [{"image": 2, "text": 1}] * 2
    if host in STOCK_PASSES:  # stock: CLIP once per net_d call
        n = STOCK_PASSES[host]
        assert counts_off == [{"image": n, "text": n}] * 2
    assert logs_on == logs_off  # bitwise: the same values, the same gradients, the same updates
    assert state_on.keys() == state_off.keys()
    assert [k for k in state_on if not torch.equal(state_on[k], state_off[k])] == []


@pytest.fixture
def disc(tiny_clip_files):
    torch.manual_seed(0)
    d = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=16, clip_config=CLIP_CONFIGS)
    return d.train()


def passes(d: SFDDiscriminator) -> tuple[int, int]:
    return d.backbone.num_image_forwards, d.backbone.num_text_forwards


def without_reuse(d: SFDDiscriminator) -> SFDDiscriminator:
    """A copy in the same state (running RMS, spectral-norm vectors) that computes everything afresh."""
    clone = copy.deepcopy(d)
    clone.clip_reuse = None
    return clone


def test_cache_serves_only_the_same_image(disc):
    x = photo_tensor("astronaut", 64, batch=2)
    disc(x)
    img0, txt0 = passes(disc)
    disc(x.detach())  # same memory, unchanged
    disc(x.clone())  # equal values (Real-ESRGAN's output.detach().clone())
    assert passes(disc) == (img0, txt0)
    assert disc.clip_reuse.hits == 2
    cases = {
        "in place": lambda: x.mul_(0.5),
        "new batch, same shape": lambda: photo_tensor("coffee", 64, batch=2),
        "another size": lambda: photo_tensor("astronaut", 96, batch=2),
        "another dtype": lambda: photo_tensor("astronaut", 64, batch=2).double(),
        "channels_last": lambda: photo_tensor("astronaut", 64, batch=2).contiguous(memory_format=torch.channels_last),
    }
    for what, make in cases.items():
        y = make()
        ref = without_reuse(disc)
        before = passes(disc)[0]
        out = disc(y)
        assert passes(disc)[0] == before + 1, what
        torch.testing.assert_close(out, ref(y), msg=what)
    before = passes(disc)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        disc(x)  # features under autocast differ: recomputed
    assert passes(disc)[0] == before + 1


def test_cached_features_written_in_place_are_dropped(disc):
    x = photo_tensor("astronaut", 64)
    disc(x)
    disc.clip_reuse._images[0].feats.middle[0].add_(1.0)  # a consumer corrupting the cache
    ref = without_reuse(disc)
    before = passes(disc)[0]
    torch.testing.assert_close(disc(x), ref(x))
    assert passes(disc)[0] == before + 1


def test_eval_mode_and_inference_mode_do_not_cache(disc):
    x = photo_tensor("astronaut", 64)
    disc.eval()
    disc(x), disc(x)
    assert disc.clip_reuse.empty and passes(disc)[0] == 2
    disc.train()
    with torch.inference_mode():
        disc(x), disc(x)
    assert disc.clip_reuse.empty and passes(disc)[0] == 4


def test_grad_to_the_image_through_a_cached_pass(disc):
    """A second pass on an image that requires grad is served from the cache; its backward
    recomputes CLIP and gives the gradient of a fresh pass."""
    for p in disc.parameters():
        p.requires_grad = False
    ref = without_reuse(disc)
    x = photo_tensor("astronaut", 64).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    disc(x).mean().backward()  # first pass: its own graph
    x.grad = None
    before = passes(disc)[0]
    out = disc(x)  # cached values, lazy graph
    assert passes(disc)[0] == before
    out.mean().backward()
    assert passes(disc)[0] == before + 1  # the replay
    ref(x_ref)  # the same two calls (spectral-norm and RMS updates in step)
    ref(x_ref).mean().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_gradient_penalty_through_a_cached_pass(tiny_clip_files):
    """R1-style penalty (grad of D wrt the real image, create_graph) on a pass served from the
    cache: the heads' gradients equal those of fresh passes. Feat-D only: CLIP's attention pool
    (TG-D) has no double backward on CPU (scaled_dot_product_attention), with or without reuse."""
    torch.manual_seed(0)
    disc = SFDDiscriminator(
        "tiny-rn", tiny_clip_files["tiny-rn"], feat_mid_channels=16, use_text=False, clip_config=CLIP_CONFIGS
    ).train()
    ref = without_reuse(disc)
    grads = []
    for net in (disc, ref):
        x = photo_tensor("astronaut", 64).requires_grad_(True)
        net(x)  # first pass on x
        (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)  # second pass: cached for disc
        g.pow(2).sum().backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(k.startswith("feat_disc") for k in grads[0])
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], msg=k)


def test_prompt_features_follow_the_contexts(disc):
    x = photo_tensor("astronaut", 64)
    ctx = disc.prompt_pair.ctx
    with torch.no_grad():
        ctx.requires_grad_(False)
        disc(x), disc(x)
    assert passes(disc)[1] == 1
    with torch.no_grad():
        ctx.add_(0.01)  # in place: version counter moves
    ref = without_reuse(disc)
    out = disc(x)
    assert passes(disc)[1] == 2
    torch.testing.assert_close(out, ref(x))


def test_context_gradient_over_two_backwards(disc):
    """SRGANModel's D step: two net_d calls, two backward passes, one text-tower pass."""
    ref = without_reuse(disc)
    real, fake = photo_tensor("astronaut", 64), photo_tensor("coffee", 64)
    for net in (disc, ref):
        F.softplus(-net(real)).mean().backward()
        F.softplus(net(fake)).mean().backward()
    assert passes(disc)[1] == 1 and passes(ref)[1] == 2
    for (name, p), q in zip(disc.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_memory_is_released_by_the_optimizer_step(disc):
    x = photo_tensor("astronaut", 64)
    gen_params = [torch.nn.Parameter(torch.zeros(1))]
    opt_g = torch.optim.SGD(gen_params, lr=0.1)
    opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)
    loss = disc(x).mean()
    cached = weakref.ref(disc.clip_reuse._images[0].feats.middle[0])
    graph = weakref.ref(disc.clip_reuse._text.graph)
    loss.backward()
    opt_g.step()  # the generator's optimizer holds none of the discriminator's parameters
    assert not disc.clip_reuse.empty
    opt_d.step()
    del loss
    gc.collect()
    assert disc.clip_reuse.empty and cached() is None and graph() is None


def test_a_new_generator_step_ends_the_iteration(disc):
    """Without an optimizer step (gradient accumulation) the cache still ends with the iteration:
    the first call with the discriminator frozen after calls with it trainable."""
    x = photo_tensor("astronaut", 64)
    disc(x)
    for p in disc.parameters():
        p.requires_grad = False
    disc(photo_tensor("coffee", 64))
    assert len(disc.clip_reuse._images) == 1
    assert disc.clip_reuse._text.graph is not None


def test_copies_start_empty(disc):
    x = photo_tensor("astronaut", 64)
    disc(x)
    clone = copy.deepcopy(disc)
    assert clone.clip_reuse.empty and not disc.clip_reuse.empty
    before = passes(clone)[0]
    clone(x)
    assert passes(clone)[0] == before + 1


# -- item 3: the packed tensor under ESRGANModel's relativistic loss -------------------------------


def test_relativistic_loss_on_the_packed_tensor_uses_one_pooled_mean(disc):
    """ESRGANModel's G loss ``BCE(real - mean(fake), 0) + BCE(fake - mean(real), 1)`` on packed
    outputs judges every Feat-D position and the TG-D logit against ONE pooled mean of the other
    side: 1/(2M) of each Feat-D layer's mean plus 1/2 of the TG-D mean. Pinned by value."""
    disc.eval()
    real, fake = photo_tensor("astronaut", 64, batch=2), photo_tensor("coffee", 64, batch=2)
    with torch.no_grad():
        pr, pf = disc(real), disc(fake)
        lr_, lf = disc.logits(disc.extract(real)), disc.logits(disc.extract(fake))
    m = len(lr_.feat)
    assert pr.shape == (2, 2 * m, 16, 16)  # tiny-rn layers at strides 4/8/16 of 64²: 16², 8², 4²

    def pooled(lg):
        return sum(f.mean() for f in lg.feat) / (2 * m) + lg.text.mean() / 2

    def bce(z, target):
        return F.softplus(-z) if target else F.softplus(z)

    def per_element(lg_a, mean_b, target):
        # every packed element of a head: its own logit minus the pooled mean; Feat-D maps repeated
        # nearest to 16² (factors 1/2/4 keep each layer's mean), the TG-D logit broadcast to M channels
        feat = [bce(f - mean_b, target).mean() for f in lg_a.feat]
        return (sum(feat) + m * bce(lg_a.text - mean_b, target).mean()) / (2 * m)

    stock = (bce(pr - pf.mean(), False).mean() + bce(pf - pr.mean(), True).mean()) / 2
    by_hand = (per_element(lr_, pooled(lf), False) + per_element(lf, pooled(lr_), True)) / 2
    torch.testing.assert_close(stock, by_hand)

    def own_head(lg_a, lg_b, target):
        feat = [bce(a - b.mean(), target).mean() for a, b in zip(lg_a.feat, lg_b.feat)]
        return (sum(feat) + m * bce(lg_a.text - lg_b.text.mean(), target).mean()) / (2 * m)

    per_head = (own_head(lr_, lf, False) + own_head(lf, lr_, True)) / 2
    assert not torch.allclose(stock, per_head, rtol=1e-3)  # the pooled mean is not each head's own
