"""network_d.fast_path: the discriminator's static-shape regions as CUDA graphs (sfd_arch/cuda_graphs.py).

On CPU the graphs run emulated (``emulated_graphs``: the captured body re-executes into the same
static tensors), which exercises every rule of the graphed path (static buffers, copies in and
out, pending backwards, slots, recomputes, new signatures, moved modules) with the kernels of eager
mode, so the results are compared with eager bit for bit. Real captures run in tests/test_cuda.py.
The plain CPU path (``auto`` without CUDA) must be eager itself: bitwise equal to ``off``.
"""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
import torch
import torch.nn.functional as F
from bite_reference import feat_stats, normalised
from conftest import CLIP_CONFIGS, photo_tensor

from sfd_arch import cuda_graphs
from sfd_arch.cuda_graphs import emulated_graphs
from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_lab.bench.host_cost import HOSTS, TRAINNER, build_host, count_passes, photo_batch


def make_disc(clip_file, fast_path="auto", **extra) -> SFDDiscriminator:
    torch.manual_seed(0)
    kw = {"n_ctx": 4, "feat_mid_channels": 16, "clip_config": CLIP_CONFIGS, **extra}
    return SFDDiscriminator("tiny-rn", clip_file, fast_path=fast_path, **kw).train()


def grads_and_state(disc) -> dict[str, torch.Tensor]:
    out = {f"grad.{k}": p.grad.clone() for k, p in disc.named_parameters() if p.grad is not None}
    out.update({k: v.clone() for k, v in disc.state_dict().items() if k != "_extra_state"})
    return out


def assert_same(a: dict, b: dict, exact: bool = True, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    if exact:
        assert [k for k in a if not torch.equal(a[k], b[k])] == []
    for k in a:  # up to rounding (float sums in another order), ``atol`` relative to the tensor's largest value
        scale = float(a[k].abs().max()) if a[k].is_floating_point() else 0.0
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=atol * scale, msg=k)


def host_iteration(disc, real, fake, order: str) -> list[torch.Tensor]:
    """One discriminator iteration in a host's call order; returns the outputs and the image gradient."""
    outs = []
    f = fake.clone().requires_grad_(True)
    disc.requires_grad_(False)  # generator step: D frozen, gradient to the image
    if order == "esrgan":
        outs.append(disc(real).detach())
    g_out = disc(f)
    (g_out.mean() - (outs[0].mean() if outs else 0)).backward()
    outs += [g_out.detach(), f.grad.clone()]
    disc.requires_grad_(True)
    disc.zero_grad(set_to_none=True)
    if order == "srgan":  # separate backwards
        F.softplus(-(o1 := disc(real))).mean().backward()
        F.softplus(o2 := disc(f.detach().clone())).mean().backward()
    elif order == "trainner":  # two forwards, one backward
        o1, o2 = disc(real), disc(f.detach())
        (F.softplus(-o1).mean() + F.softplus(o2).mean()).backward()
    else:  # esrgan: relativistic, three passes
        o1, o2 = disc(real), disc(f.detach())
        (o1 - o2.detach().mean()).mean().backward()
        o2 = disc(f.detach())
        (o2 - o1.detach().mean()).mean().backward()
    return outs + [o1.detach(), o2.detach()]


@pytest.mark.parametrize("order", ["srgan", "trainner", "esrgan"])
def test_emulated_graphs_equal_eager_bitwise(order, tiny_clip_files):
    """Three iterations (with a D update between) in each host's call order: every output, the
    image gradient, the heads' and prompts' gradients and every buffer (spectral-norm u, v; running
    RMS) equal eager bit for bit; every region replays. traiNNer's order (two passes, then one
    backward) sums the two passes' weight gradients in another order: equal up to one rounding."""
    real, fake = photo_tensor("astronaut", 64, 2), photo_tensor("coffee", 64, 2)
    eager, fast = make_disc(tiny_clip_files["tiny-rn"], "off"), make_disc(tiny_clip_files["tiny-rn"])
    with emulated_graphs():
        for _ in range(3):
            results = [host_iteration(d, real, fake, order) for d in (eager, fast)]
            assert_same(dict(enumerate(results[0])), dict(enumerate(results[1])), exact=order != "trainner")
            state = [grads_and_state(d) for d in (eager, fast)]
            assert_same(*state, exact=order != "trainner")
            for d in (eager, fast):
                with torch.no_grad():
                    for p in d.parameters():
                        p.sub_(1e-2 * p.grad)
    stats = fast.fast_path.status()
    assert stats["captures"] >= 4 and stats["replays"] > 10 * 3 and stats["recomputes"] == 0
    assert {s.split(":")[0] for s in stats["said"]} == {
        "CLIP tiny-rn image tower",
        "Feat-D spectral norms",
        "prompt pair text path",
    }
    assert eager.fast_path.status()["replays"] == 0


@pytest.mark.parametrize("host", HOSTS)
def test_every_host_trains_the_same_with_graphs(host, tiny_clip_files, tmp_path):
    """Stock hosts and SFDModel/SFDRealModel: two iterations with emulated graphs give the losses,
    weights and buffers of eager mode bitwise, and the same CLIP passes per iteration."""
    batches = [photo_batch(2, 64, seed=s) for s in (0, 1)]
    runs = {}
    for mode in ("off", "auto"):
        nd = {"clip_model": "tiny-rn", "clip_pretrained": tiny_clip_files["tiny-rn"], "n_ctx": 4}
        nd.update(feat_mid_channels=16, fast_path=mode)
        with emulated_graphs():
            model = build_host(host, nd, str(tmp_path / mode))
            counts = [count_passes(host, model, b, it) for it, b in enumerate(batches, start=1)]
        disc = model.get_bare_model(model.net_d)
        nets = {"g": model.net_g, "d": disc}
        sd = {f"{n}.{k}": v.clone() for n, net in nets.items() for k, v in net.state_dict().items()}
        runs[mode] = (counts, dict(model.log_dict), sd, disc.fast_path.status())
    exact = host != TRAINNER  # traiNNer: two passes then one backward (see above)
    assert runs["auto"][0] == runs["off"][0]
    if exact:
        assert runs["auto"][1] == runs["off"][1]
    assert_same(runs["auto"][2], runs["off"][2], exact)
    assert runs["auto"][3]["replays"] > 0 and runs["off"][3]["replays"] == 0


def test_cpu_auto_is_eager_and_says_so(tiny_clip_files, caplog):
    """Without CUDA (and without the emulation) 'auto' is the eager path: bitwise 'off', logged once."""
    real, fake = photo_tensor("astronaut", 64, 2), photo_tensor("coffee", 64, 2)
    eager, auto = make_disc(tiny_clip_files["tiny-rn"], "off"), make_disc(tiny_clip_files["tiny-rn"])
    with caplog.at_level(logging.INFO, logger="basicsr"):
        for _ in range(2):
            results = [host_iteration(d, real, fake, "srgan") for d in (eager, auto)]
    assert all(torch.equal(a, b) for a, b in zip(*results))
    assert_same(grads_and_state(eager), grads_and_state(auto))
    said = [r.getMessage() for r in caplog.records if "fast path" in r.getMessage()]
    assert len(said) == 3 and all("eager (tensors not on CUDA)" in m for m in said)
    assert auto.fast_path.status()["replays"] == 0


def test_fast_path_off_and_on_read_as_yaml_booleans_are_accepted():
    import yaml

    from sfd_arch.cuda_graphs import FastPath

    assert FastPath(yaml.safe_load("off")).mode == "off" and FastPath(yaml.safe_load("on")).mode == "auto"


def test_fast_path_option_is_checked():
    with pytest.raises(ValueError, match="network_d.fast_path: must be auto | off"):
        SFDDiscriminator("tiny-rn", None, fast_path="yes", clip_config=CLIP_CONFIGS)


def test_gradient_penalty_recomputes_the_graphed_pass(tiny_clip_files):
    """create_graph through graphed CLIP and spectral-norm passes: the backward recomputes eagerly
    and the penalty's gradients equal eager's (Feat-D only, as test_host_clip_reuse). The last
    convs' biases, which the penalty does not reach, get a zero gradient instead of none (the
    graphed spectral-norm pass hands weights and biases over as one tensor)."""
    grads = []
    for mode in ("off", "auto"):
        disc = make_disc(tiny_clip_files["tiny-rn"], mode, use_text=False)
        with emulated_graphs():
            x = photo_tensor("astronaut", 64).requires_grad_(True)
            (g,) = torch.autograd.grad(disc(x).sum(), x, create_graph=True)
            g.pow(2).sum().backward()
        grads.append(grads_and_state(disc))
        if mode == "auto":
            assert disc.fast_path.status()["recomputes"] == 2  # CLIP and spectral norms
    unreached = sorted(set(grads[1]) - set(grads[0]))
    assert unreached == [f"grad.feat_disc.heads.{i}.body.6.bias" for i in range(3)]
    assert all(not grads[1][k].any() for k in unreached)
    assert_same(grads[0], {k: v for k, v in grads[1].items() if k not in unreached}, exact=False)


def test_second_backward_after_another_replay_recomputes(tiny_clip_files):
    """retain_graph: a forward differentiated again after its pool replayed another forward is
    recomputed (its graph memory was overwritten), with eager's gradients."""
    real, fake = photo_tensor("astronaut", 64, 2), photo_tensor("coffee", 64, 2)
    grads = []
    for mode in ("off", "auto"):
        disc = make_disc(tiny_clip_files["tiny-rn"], mode, use_text=False)
        with emulated_graphs():
            x = fake.clone().requires_grad_(True)
            loss = disc(x).mean()
            loss.backward(retain_graph=True)
            disc(real.clone().requires_grad_(True)).mean().backward()  # the pools replay again
            loss.backward()
        grads.append({**grads_and_state(disc), "x": x.grad.clone()})
        if mode == "auto":
            assert disc.fast_path.status()["recomputes"] == 2
    assert_same(*grads, exact=False)


def test_pending_forwards_use_slots_then_eager(tiny_clip_files):
    """Forwards awaiting their backward keep their graph memory: the spectral norms have two slots,
    the CLIP tower one; further forwards run eager; every gradient equals eager's."""
    imgs = [photo_tensor(n, 64) for n in ("astronaut", "coffee", "chelsea")]
    results = []
    for mode in ("off", "auto"):
        disc = make_disc(tiny_clip_files["tiny-rn"], mode, reuse_features=False)
        with emulated_graphs():
            xs = [i.clone().requires_grad_(True) for i in imgs]
            sum(disc(x).mean() for x in xs).backward()
        results.append({**grads_and_state(disc), **{f"x{i}": x.grad for i, x in enumerate(xs)}})
    assert_same(*results, exact=False)  # pending passes' weight gradients summed in another order
    stats = disc.fast_path.status()
    # CLIP: 1 graphed + 2 eager; spectral: 2 graphed + 1 eager; text: 1 graphed + 2 eager
    assert stats["eager"] == 5 and stats["recomputes"] == 0


def test_new_shapes_are_captured_up_to_a_limit(tiny_clip_files, caplog):
    disc, ref = (
        make_disc(tiny_clip_files["tiny-rn"], use_text=False),
        make_disc(tiny_clip_files["tiny-rn"], "off", use_text=False),
    )
    for d in (disc, ref):
        d.requires_grad_(False)
    with emulated_graphs(), caplog.at_level(logging.INFO, logger="basicsr"):
        for size in (64, 96, 128, 160, 192, 64):
            x = photo_tensor("astronaut", size)
            assert torch.equal(disc(x), ref(x))
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"eager for new input signatures after {cuda_graphs.MAX_CAPTURES}" in said
    assert disc.fast_path.status()["captures"] == cuda_graphs.MAX_CAPTURES + 1  # CLIP tower; spectral norms: one


def test_moving_or_recasting_drops_the_captures(tiny_clip_files):
    disc = make_disc(tiny_clip_files["tiny-rn"], use_text=False)
    disc.requires_grad_(False)
    x = photo_tensor("astronaut", 64)
    with emulated_graphs():
        disc(x)
        assert disc.backbone.graphs.regions and disc.feat_disc.graphs.regions
        disc.double()
        assert not disc.backbone.graphs.regions and not disc.feat_disc.graphs.regions
        out = disc(x.double())
        assert out.dtype == torch.float64 and disc.fast_path.status()["captures"] == 4
        disc.backbone.set_weight_dtype(torch.float32)
        assert not disc.backbone.graphs.regions


def test_copies_start_without_captures(tiny_clip_files):
    """A deep copy shares no capture (parametrized modules cannot be pickled, only state_dicts)."""
    disc = make_disc(tiny_clip_files["tiny-rn"], use_text=False)
    with emulated_graphs():
        disc(photo_tensor("astronaut", 64)).mean().backward()
    clone = copy.deepcopy(disc)
    assert clone.fast_path.mode == "auto" and clone.fast_path is not disc.fast_path
    assert clone.backbone.graphs.policy is clone.fast_path and clone.feat_disc.graphs.policy is clone.fast_path
    assert not clone.backbone.graphs.regions and not clone.feat_disc.graphs.regions
    slot = pickle.loads(pickle.dumps(disc.backbone.graphs))
    assert slot.policy.mode == "auto" and not slot.regions


def test_eval_inference_and_dispatch_modes_run_eager(tiny_clip_files):
    from torch.utils.flop_counter import FlopCounterMode

    disc = make_disc(tiny_clip_files["tiny-rn"])
    x = photo_tensor("astronaut", 64)
    with emulated_graphs():
        with torch.inference_mode():
            disc(x)
        with FlopCounterMode(display=False) as flops:
            disc(x)
        assert flops.get_total_flops() > 0
        disc.eval()
        with torch.no_grad():
            disc(x)
    assert disc.fast_path.status()["captures"] == 0


def test_no_host_sync_in_the_heads_and_text_path(tiny_clip_files):
    """The running-RMS update and the text path read nothing back to the host (a sync drains the
    GPU's queue mid-step): no aten op that produces a Python scalar is dispatched."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Syncs(TorchDispatchMode):
        found: list = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten._local_scalar_dense, torch.ops.aten.is_nonzero):
                self.found.append(str(func))
            return func(*args, **(kwargs or {}))

    disc = make_disc(tiny_clip_files["tiny-rn"], "off", reuse_features=False)
    feats = disc.extract(photo_tensor("astronaut", 64, 2))
    with Syncs() as mode:
        for _ in range(2):  # the first call sets the running RMS, the second moves it
            logits = disc.logits(feats)
        (sum(m.mean() for m in logits.feat) + logits.text.mean()).backward()
    assert mode.found == []
    assert bool(disc.feat_disc.feat_stats_initialised)  # feat_norm channel, the default


def test_eval_scoring_normalises_the_heads_once(tiny_clip_files):
    """Eval mode without autograd (validation, SFD-IQA): the spectral-normalised weights are computed
    once, reused for every batch while nothing changes (no mv/vdot dispatched), recomputed after a
    parameter or u/v change; scores equal the parametrized convs' bit for bit."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    disc = make_disc(tiny_clip_files["tiny-rn"], "off").eval()
    feats = disc.extract(photo_tensor("astronaut", 64, 2))
    with torch.no_grad():
        first = disc.feat_disc(feats.middle)
        with Ops() as ops:
            again = disc.feat_disc(feats.middle)
    assert "mv" not in ops.names and "vdot" not in ops.names
    stats = feat_stats(disc.feat_disc)
    heads = disc.feat_disc.heads
    reference = [head.body(normalised(stats, m, f)) for m, (head, f) in enumerate(zip(heads, feats.middle))]
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(first, again, reference))
    with torch.no_grad():
        disc.feat_disc.heads[0].body[0].parametrizations.weight.original.add_(0.05)  # an optimizer step
        moved = disc.feat_disc(feats.middle)
        reference = disc.feat_disc.heads[0].body(normalised(stats, 0, feats.middle[0]))
    assert torch.equal(moved[0], reference) and not torch.equal(moved[0], first[0])
    disc.train()
    with torch.no_grad(), Ops() as ops:
        disc.feat_disc(feats.middle)  # training mode: the power iteration runs (u, v move)
    assert ops.names.count("mv") == 3 * 4 * 3


@pytest.mark.parametrize("feat_norm", ["channel", "rms"])
def test_compiled_spectral_norms_match_eager(feat_norm):
    """fast_path 'compile' (torch.compile, inductor, on CPU): the Feat-D spectral-norm region over
    three D steps gives eager's outputs, gradients and u, v / running-statistics buffers up to float
    reordering (measured: gradients within 3.3e-6 of their largest value after three steps). Only this
    region, one shape: compiling on two shared CPU cores takes about a minute
    (about 90 s measured under load); the whole discriminator compiled took ~10 minutes there."""
    from sfd_arch.cuda_graphs import FastPath
    from sfd_arch.feat_discriminator_arch import FeatDiscriminator

    torch.manual_seed(0)
    eager, compiled = (FeatDiscriminator([8, 16, 32], 16, feat_norm=feat_norm) for _ in range(2))
    compiled.load_state_dict(eager.state_dict())
    compiled.graphs.policy = FastPath("compile")
    feats = [torch.randn(2, c, s, s) for c, s in ((8, 16), (16, 8), (32, 4))]
    for _ in range(3):
        results = []
        for d in (eager, compiled):
            d.zero_grad(set_to_none=True)
            out = d(feats)
            sum(o.square().mean() for o in out).backward()
            grads = {f"grad.{k}": p.grad.clone() for k, p in d.named_parameters()}
            results.append({**{f"out{i}": o.detach() for i, o in enumerate(out)}, **grads, **d.state_dict()})
            with torch.no_grad():
                for p in d.parameters():
                    p.sub_(0.1 * p.grad)
        assert_same(*results, exact=False, atol=1e-5)
    assert compiled.graphs.policy.status()["said"] == ["Feat-D spectral norms: torch.compile"]


def test_eval_scores_after_graph_replays_are_not_stale(tiny_clip_files):
    """Iterations without a discriminator step (the non-finite guard skips it) still move the spectral
    norms' u, v in the generator step's pass. A graph replay writes them without bumping their version
    counters (a CUDA graph runs no Python; the emulation leaves them too), so the eval-mode cache of the
    normalised head weights (validation, SFD-IQA) must see the replays: scores equal eager's."""
    real = photo_tensor("astronaut", 64, 2)
    scores = {}
    for mode in ("off", "auto"):
        disc = make_disc(tiny_clip_files["tiny-rn"], mode)
        disc.requires_grad_(False)  # the generator step: D frozen, gradient to the image
        scores[mode] = []
        with emulated_graphs():
            for _ in range(3):
                disc.train()
                disc(real.clone().requires_grad_(True)).mean().backward()
                disc.eval()
                with torch.no_grad():
                    scores[mode].append(disc(real))
        if mode == "auto":
            assert disc.fast_path.status()["regions"]["Feat-D spectral norms"]["replays"] >= 3
    assert not torch.equal(scores["off"][0], scores["off"][1])  # u, v moved between the evaluations
    assert all(torch.equal(a, b) for a, b in zip(scores["off"], scores["auto"]))


def _storages(tensors) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors if isinstance(t, torch.Tensor)}


def test_no_static_tensor_escapes_a_region(tiny_clip_files, monkeypatch):
    """The pool invariant (cuda_graphs.GraphedRegion._replay): every tensor a region hands out (outputs,
    aux outputs, gradients) is a copy, never a graph's static tensor that the next replay overwrites;
    and what a caller holds stays as it was after the next replays."""
    from sfd_arch.cuda_graphs import GraphedRegion

    handed: list[tuple[GraphedRegion, list[torch.Tensor]]] = []
    run, run_vjp, backward = GraphedRegion.run, GraphedRegion.run_vjp, GraphedRegion.backward

    def spy_run(self, *args, **kwargs):
        out = run(self, *args, **kwargs)
        handed.append((self, list(out or [])))
        return out

    def spy_run_vjp(self, *args, **kwargs):
        got = run_vjp(self, *args, **kwargs)
        if got is not None:
            handed.append((self, list(got[0])))
        return got

    def spy_backward(self, *args, **kwargs):
        grads = backward(self, *args, **kwargs)
        handed.append((self, [g for g in grads if g is not None]))
        return grads

    monkeypatch.setattr(GraphedRegion, "run", spy_run)
    monkeypatch.setattr(GraphedRegion, "run_vjp", spy_run_vjp)
    monkeypatch.setattr(GraphedRegion, "backward", spy_backward)
    real, fake = photo_tensor("astronaut", 64, 2), photo_tensor("coffee", 64, 2)
    for reuse in (True, False):
        disc = make_disc(tiny_clip_files["tiny-rn"], reuse_features=reuse)
        with emulated_graphs():
            first = [t.detach().clone() for t in host_iteration(disc, real, fake, "srgan")]
            kept = host_iteration(disc, real, fake, "srgan")
            snapshot = [t.clone() for t in kept]
            host_iteration(disc, fake, real, "srgan")  # more replays of every pool
        assert all(torch.equal(a, b) for a, b in zip(kept, snapshot))
        assert len(first) == len(kept)
    regions = {region.name for region, _ in handed}
    assert regions == {"CLIP tiny-rn image tower", "Feat-D spectral norms", "prompt pair text path"}
    for region, tensors in handed:
        statics = [
            t
            for entry in region._entries.values()
            for t in (*entry.static_in, *entry.static_out, *entry.static_aux, *entry.static_grads)
        ]
        assert not (_storages(tensors) & _storages(statics)), f"{region.name} handed out a static tensor"


def test_every_eager_fallback_is_said_once_with_its_reason(tiny_clip_files, caplog):
    """No graph memory pool free (three forwards awaiting one backward) and a backward that cannot replay
    are logged once each with their reason; the counters are kept per region."""
    disc = make_disc(tiny_clip_files["tiny-rn"], reuse_features=False, use_text=False)
    imgs = [photo_tensor(n, 64) for n in ("astronaut", "coffee", "chelsea")]
    with emulated_graphs(), caplog.at_level(logging.INFO, logger="basicsr"):
        for _ in range(2):
            xs = [i.clone().requires_grad_(True) for i in imgs]
            sum(disc(x).mean() for x in xs).backward()
        x = imgs[0].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(disc(x).sum(), x, create_graph=True)
        g.sum().backward()
    said = [r.getMessage() for r in caplog.records if "SFD fast path" in r.getMessage()]
    busy = [m for m in said if "no graph memory pool free" in m]
    assert sorted(busy) == [
        "SFD fast path, CLIP tiny-rn image tower: eager (no graph memory pool free: each holds a forward awaiting "
        "its backward)",
        "SFD fast path, Feat-D spectral norms: eager (no graph memory pool free: each holds a forward awaiting "
        "its backward)",
    ]
    assert (
        "SFD fast path, CLIP tiny-rn image tower: backward recomputed eagerly (create_graph: a gradient of the "
        "gradient)" in said
    )
    assert len(said) == len(set(said))  # each once
    regions = disc.fast_path.status()["regions"]
    # two rounds of three pending forwards: the tower has one pool, the spectral norms two
    tower, spectral = regions["CLIP tiny-rn image tower"], regions["Feat-D spectral norms"]
    assert tower["eager"] == 4 and spectral["eager"] == 2
    assert tower["recomputes"] >= 1 and spectral["recomputes"] == 0  # spectral norms: a repeatable backward
    assert all(r["replays"] > 0 for r in regions.values())
