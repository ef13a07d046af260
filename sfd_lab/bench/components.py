"""Row ``components``: where one training step's time goes, piece by piece, next to its FLOPs.

The SFDModel step (per CLIP model) and the baseline step (RealESRGANModel + UNetDiscriminatorSN)
are built as in row ``gan_step`` and timed whole; then each piece of the step is timed on its
own, on the same batch, sizes, weights and autocast, round-robin with the other pieces:

- ``G fwd+bwd``: RRDBNet on the LQ batch, backward to its parameters;
- ``VGG loss fwd+bwd``: the perceptual loss of SR vs GT, backward to SR;
- ``CLIP HR (no grad)``: the frozen CLIP on the GT batch (middle maps + embedding);
- ``CLIP SR fwd+bwd``: the frozen CLIP on SR with the gradient to SR (the G step's CLIP pass);
- ``Feat-D heads G``: the heads on SR's middle maps, backward to the maps (parameters frozen);
- ``Feat-D heads D``: the heads on real + fake maps (2B), backward to their parameters;
- ``text tower fwd+bwd``: the prompt pair through CLIP's text transformer, backward to the
  contexts (once per D step; the G step reuses the cached features);
- ``UNet-D D``: UNetDiscriminatorSN on GT and SR, backward to its parameters;
- ``UNet-D G``: UNetDiscriminatorSN on SR, backward to SR;
- ``Adam G`` / ``Adam D``: the optimizer steps.

FLOPs of each piece come from ``torch.utils.flop_counter`` (matmuls and convolutions), so the
table puts measured time next to the FLOP model: a piece whose share of time is far above its
share of FLOPs runs at a low GFLOP/s on this device. ``other`` is the step minus the pieces
(losses, logging, autocast casts, framework overhead).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sfd_lab.bench.core import count_flops, sync_device, time_stats
from sfd_lab.bench.profiles import BASELINE
from sfd_lab.bench.steps import BenchContext, StepSpec, entry_row, free_entries, run_steps, sfd_config_name, sr_batches


@dataclass
class Piece:
    """One piece of a step: ``fn()`` runs it once; ``configs``: the steps it belongs to."""

    name: str
    fn: Callable[[], object]
    configs: list[str]
    times: list[float] = field(default_factory=list)
    gflops: float | None = None


def _loss(x) -> torch.Tensor:
    """A scalar that depends on every element of ``x`` (a tensor or a list of tensors)."""
    if isinstance(x, torch.Tensor):
        return x.float().mean()
    return sum(t.float().mean() for t in x)


def _features_loss(feats) -> torch.Tensor:
    loss = sum(m.float().mean() for m in feats.middle)
    if feats.embedding is not None:
        loss = loss + feats.embedding.float().sum()
    return loss


def _requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def build_pieces(ctx: BenchContext, sfd_entries: list, base_entry) -> list[Piece]:
    """The pieces of the SFD steps (one set of CLIP pieces per model) and of the baseline step."""
    p, device = ctx.profile, ctx.device
    batch = sr_batches(p, device, count=1)[0]
    lq, gt = batch["lq"], batch["gt"]
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(p.amp or "")

    def autocast():
        return torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()

    first = sfd_entries[0].model if sfd_entries else base_entry.model
    net_g = first.get_bare_model(first.net_g)
    with torch.no_grad(), autocast():
        sr = net_g(lq).float().clamp(0, 1)
    all_names = [e.spec.name for e in sfd_entries] + [base_entry.spec.name]

    def g_fwd_bwd():
        net_g.zero_grad(set_to_none=True)
        with autocast():
            out = net_g(lq)
        _loss(out).backward()

    pieces = [Piece("G fwd+bwd", g_fwd_bwd, all_names)]
    if first.cri_perceptual is not None:
        vgg = first.cri_perceptual

        def vgg_fwd_bwd():
            x = sr.detach().requires_grad_(True)
            with autocast():
                percep, style = vgg(x, gt)
            (percep if style is None else percep + style).backward()

        pieces.append(Piece("VGG loss fwd+bwd", vgg_fwd_bwd, all_names))
    g_params = [q for q in net_g.parameters()]

    def adam_g():
        for q in g_params:
            if q.grad is None:
                q.grad = torch.zeros_like(q)
        first.optimizer_g.step()

    pieces.append(Piece("Adam G", adam_g, all_names))

    for entry in sfd_entries:
        model, name = entry.model, entry.spec.name
        disc = model.get_bare_model(model.net_d)
        clip = entry.spec.clip
        with torch.no_grad(), autocast():
            real = disc.extract(gt)
            fake = disc.extract(sr)
        real_mid = [m.detach() for m in real.middle]
        fake_mid = [m.detach() for m in fake.middle]
        both_mid = [torch.cat([a, b]) for a, b in zip(real_mid, fake_mid)]

        def clip_hr(disc=disc):
            with torch.no_grad(), autocast():
                disc.extract(gt)

        def clip_sr(disc=disc):
            x = sr.detach().requires_grad_(True)
            with autocast():
                feats = disc.extract(x)
            _features_loss(feats).backward()

        pieces += [
            Piece(f"CLIP HR (no grad) [{clip}]", clip_hr, [name]),
            Piece(f"CLIP SR fwd+bwd [{clip}]", clip_sr, [name]),
        ]
        if disc.use_feat:

            def heads_g(disc=disc, fake_mid=fake_mid):
                _requires_grad(disc, False)
                maps = [m.clone().requires_grad_(True) for m in fake_mid]
                with autocast():
                    out = disc.feat_disc(maps)
                _loss(out).backward()

            def heads_d(disc=disc, both_mid=both_mid):
                _requires_grad(disc, True)
                disc.zero_grad(set_to_none=True)
                with autocast():
                    out = disc.feat_disc(both_mid)
                _loss(out).backward()

            pieces += [
                Piece(f"Feat-D heads G [{clip}]", heads_g, [name]),
                Piece(f"Feat-D heads D [{clip}]", heads_d, [name]),
            ]
        if disc.use_text:

            def text_tower(disc=disc):
                _requires_grad(disc, True)
                with autocast():
                    t = disc.text_features()
                t.float().sum().backward()

            pieces.append(Piece(f"text tower fwd+bwd [{clip}]", text_tower, [name]))

        def adam_d(model=model, disc=disc):
            for q in disc.parameters():
                if q.grad is None:
                    q.grad = torch.zeros_like(q)
            model.optimizer_d.step()

        pieces.append(Piece(f"Adam D [{clip}]", adam_d, [name]))

    unet = base_entry.model.get_bare_model(base_entry.model.net_d)
    base = base_entry.spec.name

    def unet_d():
        _requires_grad(unet, True)
        unet.zero_grad(set_to_none=True)
        with autocast():
            loss = _loss(unet(gt)) + _loss(unet(sr.detach()))
        loss.backward()

    def unet_g():
        _requires_grad(unet, False)
        x = sr.detach().requires_grad_(True)
        with autocast():
            out = unet(x)
        _loss(out).backward()

    def adam_unet():
        for q in unet.parameters():
            if q.grad is None:
                q.grad = torch.zeros_like(q)
        base_entry.model.optimizer_d.step()

    pieces += [
        Piece("UNet-D D", unet_d, [base]),
        Piece("UNet-D G", unet_g, [base]),
        Piece("Adam D [UNet]", adam_unet, [base]),
    ]
    return pieces


def time_pieces(pieces: list[Piece], device: torch.device, warmup: int, repeats: int) -> None:
    """Count each piece's FLOPs (one call), warm it up, then time all pieces round-robin."""
    for piece in pieces:
        for _ in range(max(1, warmup)):
            piece.fn()
        piece.gflops = count_flops(piece.fn) / 1e9
    for _ in range(repeats):
        for piece in pieces:
            sync_device(device)
            start = time.perf_counter()
            piece.fn()
            sync_device(device)
            piece.times.append(time.perf_counter() - start)


def breakdown(pieces: list[Piece], steps: list[dict]) -> list[dict]:
    """Per step configuration: its pieces with ms, share of the step, GFLOP, share of the step's
    FLOPs and GFLOP/s; then ``other`` (the step minus the pieces)."""
    tables = []
    for step in steps:
        mine = [pc for pc in pieces if step["name"] in pc.configs]
        step_s, step_gflops = step["median_s"], step["gflops_per_iter"]
        rows = []
        for pc in mine:
            stats = time_stats(pc.times)
            rows.append(
                {
                    "component": pc.name,
                    "ms": 1e3 * stats["median_s"],
                    "min_ms": 1e3 * stats["min_s"],
                    "spread": stats["spread"],
                    "share": stats["median_s"] / step_s if step_s else None,
                    "gflops": pc.gflops,
                    "flop_share": pc.gflops / step_gflops if step_gflops and pc.gflops is not None else None,
                    "gflops_per_s": pc.gflops / stats["median_s"] if pc.gflops and stats["median_s"] > 0 else None,
                }
            )
        parts_s = sum(r["ms"] for r in rows) / 1e3
        parts_gflops = sum(r["gflops"] or 0.0 for r in rows)
        rows.append(
            {
                "component": "other (step − pieces)",
                "ms": 1e3 * (step_s - parts_s),
                "min_ms": None,
                "spread": None,
                "share": (step_s - parts_s) / step_s if step_s else None,
                "gflops": (step_gflops - parts_gflops) if step_gflops is not None else None,
                "flop_share": (step_gflops - parts_gflops) / step_gflops if step_gflops else None,
                "gflops_per_s": None,
            }
        )
        tables.append(
            {
                "config": step["name"],
                "step_ms": 1e3 * step_s,
                "step_spread": step["spread"],
                "step_gflops": step_gflops,
                "step_gflops_per_s": step_gflops / step_s if step_gflops and step_s else None,
                "pieces_ms": 1e3 * parts_s,
                "rows": rows,
            }
        )
    return tables


def row_components(ctx: BenchContext, trace: bool) -> dict:
    """The SFD steps and the baseline step, whole and piece by piece (see the module docstring)."""
    p = ctx.profile
    specs = [
        StepSpec(
            BASELINE, "RealESRGANModel_basicsr", ctx.unet_network_d(), p.generator, perceptual=p.perceptual, stock=True
        )
    ]
    for clip in p.clip_models:
        specs.append(
            StepSpec(
                sfd_config_name(clip),
                "SFDModel",
                ctx.sfd_network_d(clip),
                p.generator,
                clip,
                p.perceptual,
                precision=p.amp or "fp32",
            )
        )
    entries = run_steps(specs, ctx, p.warmup, count_flops_too=True)
    steps = [entry_row(e) for e in entries]
    pieces = build_pieces(ctx, entries[1:], entries[0])
    time_pieces(pieces, ctx.device, p.warmup, p.repeats)
    tables = breakdown(pieces, steps[1:] + steps[:1])
    free_entries(entries)
    return {
        "status": "ok",
        "note": "pieces timed on their own, round-robin, same batch/sizes/weights/autocast as the whole step",
        "steps": steps,
        "tables": tables,
        "targets": [],
    }
