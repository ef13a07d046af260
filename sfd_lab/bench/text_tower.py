"""Cost of the frozen-CLIP options: truncated vs full text tower, CLIP input size, frozen-weight dtype.

Rows (CPU or CUDA, random CLIP weights: cost does not depend on the weights' values):

- ``text_tower``: prompt-pair features + backward to the context vectors, all 77 tokens vs the
  tokens up to the end-of-text token (``FrozenCLIP.truncate_text``); also the largest difference
  of the features and of the context gradients between the two.
- ``sfd_step``: one ``SFDModel.optimize_parameters`` (G and D step) with the text tower full vs
  truncated.
- ``clip_input``: CLIP forward + backward to the image at the crop size vs resized to
  ``clip_input_size`` (e.g. 128² crops vs 224², RN50's native attention-pool grid).
- ``frozen_weights``: bytes and dtype of the hidden CLIP as loaded, cast to bf16, and without the
  text tower (``FrozenCLIP.frozen_weight_info``).

Each row also counts the FLOPs of one call per variant (load-independent). Variants of one row
are timed interleaved (A, B, A, B, ...) after a warm-up each, so load on a
shared machine hits both alike; report ratios, not absolute times.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from sfd_arch.clip_backbone import FrozenCLIP
from sfd_arch.text_discriminator_arch import LearnablePromptPair


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved(variants: dict[str, Callable[[], None]], repeats: int, device: str = "cpu") -> dict:
    """Seconds per call of each variant, timed in turn ``repeats`` times after one warm-up each.

    Returns {name: {'min', 'median', 'max', 'times'}}.
    """
    for fn in variants.values():
        fn()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return {
        name: {"min": min(ts), "median": statistics.median(ts), "max": max(ts), "times": ts}
        for name, ts in times.items()
    }


def count_flops(variants: dict[str, Callable[[], None]]) -> dict[str, int]:
    """FLOPs of one call of each variant (matmuls, convolutions, attention; forward and backward),
    counted by torch's FlopCounterMode: a load-independent measure of the work."""
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    for name, fn in variants.items():
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        out[name] = int(counter.get_total_flops())
    return out


def ratios(timing: dict, base: str, other: str) -> dict:
    """``other`` relative to ``base``: ratio of medians, of minima, and the median of the per-repeat
    ratios (each pair was timed back to back, so it saw about the same machine load)."""
    a, b = timing[base], timing[other]
    return {
        "ratio_median": b["median"] / a["median"],
        "ratio_min": b["min"] / a["min"],
        "ratio_paired_median": statistics.median(y / x for x, y in zip(a["times"], b["times"])),
    }


def text_tower_row(clip_model: str, n_ctx: int, repeats: int, device: str) -> dict:
    """Prompt-pair forward + backward to the contexts, full vs truncated, and their differences."""
    backbone = FrozenCLIP(clip_model, None).to(device)
    torch.manual_seed(0)
    pair = LearnablePromptPair(backbone, n_ctx=n_ctx).to(device)
    weight = torch.randn(2, backbone.embed_dim, device=device)

    def run(truncate: bool) -> tuple[torch.Tensor, torch.Tensor]:
        backbone.truncate_text = truncate
        pair.ctx.grad = None
        feats = pair(backbone)
        (feats * weight).sum().backward()
        return feats.detach(), pair.ctx.grad.detach().clone()

    (f_full, g_full), (f_trunc, g_trunc) = run(False), run(True)
    variants = {"full": lambda: run(False), "truncated": lambda: run(True)}
    flops = count_flops(variants)
    timing = interleaved(variants, repeats, device)
    backbone.truncate_text = True
    return {
        "row": "text_tower",
        "clip_model": clip_model,
        "n_ctx": n_ctx,
        "tokens_full": backbone.context_length,
        "tokens_truncated": int(pair.tokens.argmax(dim=-1).max()) + 1,
        "max_abs_diff_features": float((f_full - f_trunc).abs().max()),
        "max_rel_diff_ctx_grad": float((g_full - g_trunc).abs().max() / g_full.abs().max()),
        "flops": flops,
        "timing": timing,
        **ratios(timing, "full", "truncated"),
    }


def sfd_step_row(clip_model: str, n_ctx: int, batch: int, size: int, repeats: int, device: str) -> dict:
    """One SFDModel iteration (tiny RRDBNet, ``clip_model`` with random weights), text tower full vs
    truncated."""
    import torch.nn.functional as F
    from basicsr.models import build_model

    from sfd_utils.presets import sfd_options

    with tempfile.TemporaryDirectory() as tmp:
        network_d = {"clip_model": clip_model, "clip_pretrained": None, "n_ctx": n_ctx}
        model = build_model(sfd_options(tmp, network_d, device=device))
    disc = model.get_bare_model(model.net_d)
    torch.manual_seed(0)
    gt = torch.rand(batch, 3, size, size, device=device)
    model.feed_data({"lq": F.interpolate(gt, scale_factor=0.25, mode="bicubic", antialias=True), "gt": gt})
    it = iter(range(1, 10**6))

    def step(truncate: bool) -> None:
        disc.backbone.truncate_text = truncate
        model.optimize_parameters(next(it))

    variants = {"full": lambda: step(False), "truncated": lambda: step(True)}
    step(True)  # the first iteration also runs the text tower without grad (no cached prompt features yet)
    flops = count_flops(variants)
    timing = interleaved(variants, repeats, device)
    disc.backbone.truncate_text = True
    return {
        "row": "sfd_step",
        "clip_model": clip_model,
        "n_ctx": n_ctx,
        "batch": batch,
        "size": size,
        "flops": flops,
        "timing": timing,
        **ratios(timing, "full", "truncated"),
    }


def clip_input_row(clip_model: str, crop: int, input_size: int, batch: int, repeats: int, device: str) -> dict:
    """CLIP forward (middle maps + embedding) + backward to the image: at the crop size vs resized
    to ``input_size`` inside FrozenCLIP (the resize is part of the timed call)."""
    as_given = FrozenCLIP(clip_model, None).to(device)
    resized = FrozenCLIP(clip_model, None, input_size=input_size).to(device)
    x = torch.rand(batch, 3, crop, crop, device=device)

    def run(backbone: FrozenCLIP) -> None:
        img = x.clone().requires_grad_(True)
        out = backbone(img)
        (sum(m.float().mean() for m in out.middle) + out.embedding.float().sum()).backward()

    variants = {f"{crop}": lambda: run(as_given), f"{input_size}": lambda: run(resized)}
    flops = count_flops(variants)
    timing = interleaved(variants, repeats, device)
    with torch.no_grad():
        grids = {
            f"{crop}": [tuple(m.shape[-2:]) for m in as_given(x).middle],
            f"{input_size}": [tuple(m.shape[-2:]) for m in resized(x).middle],
        }
    return {
        "row": "clip_input",
        "clip_model": clip_model,
        "crop": crop,
        "input_size": input_size,
        "batch": batch,
        "middle_grids": grids,
        "flops": flops,
        "timing": timing,
        **ratios(timing, f"{crop}", f"{input_size}"),
    }


def frozen_weights_row(clip_model: str) -> dict:
    """Bytes and dtype of the hidden CLIP: as loaded, in bf16, and without the text tower."""
    rows = {}
    for name, kwargs in (
        ("fp32", {}),
        ("bf16", {"dtype": torch.bfloat16}),
        ("fp32_no_text", {"text_tower": False}),
        ("bf16_no_text", {"dtype": torch.bfloat16, "text_tower": False}),
    ):
        rows[name] = FrozenCLIP(clip_model, None, **kwargs).frozen_weight_info()
    return {"row": "frozen_weights", "clip_model": clip_model, "variants": rows}


def machine() -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def markdown(rows: list[dict], meta: dict) -> str:
    """The rows as a Markdown report (times in seconds: min / median / max)."""

    def t(s: dict) -> str:
        return f"{s['min']:.3f} / {s['median']:.3f} / {s['max']:.3f}"

    def g(r: dict, name: str) -> str:
        return f"{r['flops'][name] / 1e9:.2f}"

    def q(r: dict) -> str:
        return f"{r['ratio_median']:.2f} / {r['ratio_min']:.2f} / {r['ratio_paired_median']:.2f}"

    out = [
        f"Frozen-CLIP options, {meta['device']}, {meta['threads']} threads, torch {meta['torch']} "
        f"({meta['date']}). Random CLIP weights; variants timed interleaved; times in s (min / median / max "
        f"over the repeats); ratios against the first variant: of the medians, of the minima, and the median "
        f"of the per-repeat ratios. The machine was shared: read the ratios, not the absolute times.",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    for r in rows:
        if r["row"] == "text_tower":
            out += [
                f"### Text tower: prompt pair forward + backward to the contexts "
                f"({r['clip_model']}, n_ctx {r['n_ctx']})",
                "",
                "| tokens | GFLOP | time | ratio (medians / minima / paired) |",
                "|---|---|---|---|",
                f"| {r['tokens_full']} (full) | {g(r, 'full')} | {t(r['timing']['full'])} | 1 |",
                f"| {r['tokens_truncated']} (to end-of-text) | {g(r, 'truncated')} | {t(r['timing']['truncated'])} "
                f"| {q(r)} |",
                "",
                f"Largest difference: features {r['max_abs_diff_features']:.1e} (absolute), context gradients "
                f"{r['max_rel_diff_ctx_grad']:.1e} (relative to the largest).",
                "",
            ]
        elif r["row"] == "sfd_step":
            out += [
                f"### One SFDModel step ({r['clip_model']}, tiny RRDBNet, {r['batch']}x{r['size']}², "
                f"n_ctx {r['n_ctx']})",
                "",
                "| text tower | GFLOP | time | ratio (medians / minima / paired) |",
                "|---|---|---|---|",
                f"| full | {g(r, 'full')} | {t(r['timing']['full'])} | 1 |",
                f"| truncated | {g(r, 'truncated')} | {t(r['timing']['truncated'])} | {q(r)} |",
                "",
            ]
        elif r["row"] == "clip_input":
            a, b = f"{r['crop']}", f"{r['input_size']}"
            out += [
                f"### CLIP forward + backward to the image ({r['clip_model']}, {r['batch']}x{r['crop']}² crops)",
                "",
                "| CLIP input | middle-map grids | GFLOP | time | ratio (medians / minima / paired) |",
                "|---|---|---|---|---|",
                f"| {a}² (as given) | {r['middle_grids'][a]} | {g(r, a)} | {t(r['timing'][a])} | 1 |",
                f"| {b}² (clip_input_size: {b}) | {r['middle_grids'][b]} | {g(r, b)} | {t(r['timing'][b])} | {q(r)} |",
                "",
            ]
        elif r["row"] == "frozen_weights":
            out += [
                f"### Frozen CLIP weights ({r['clip_model']})",
                "",
                "| variant | dtype | MiB | parameters + buffers |",
                "|---|---|---|---|",
            ]
            out += [
                f"| {name} | {v['dtype']} | {v['bytes'] / 2**20:.1f} | {v['numel']:,} |"
                for name, v in r["variants"].items()
            ]
            out.append("")
    return "\n".join(out)


def run_text_tower(a) -> int:
    """``scripts/bench_text_tower.py``: the namespace of :func:`sfd_lab.bench.cli.text_tower_parser`."""
    import json
    import os
    import sys

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config

    device = "cuda" if torch.cuda.is_available() else "cpu"
    register_clip_config(TINY_CLIP_CONFIGS)  # --clip-model tiny-rn / tiny-vit for a quick run
    meta = {**machine(), "command": "python " + " ".join(sys.argv)}
    rows = []
    if "frozen_weights" not in a.skip:
        rows.append(frozen_weights_row(a.clip_model))
    if "text_tower" not in a.skip:
        rows.append(text_tower_row(a.clip_model, a.n_ctx, a.repeats, device))
    if "clip_input" not in a.skip:
        rows.append(clip_input_row(a.clip_model, a.crop, a.input_size, a.batch, a.repeats, device))
    if "sfd_step" not in a.skip:
        rows.append(sfd_step_row(a.clip_model, a.n_ctx, a.batch, a.crop, a.repeats, device))
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"text_tower-{device}-{meta['date']}")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    report = markdown(rows, meta)
    with open(stem + ".md", "w") as f:
        f.write(report + "\n")
    print(report)
    print(f"wrote {stem}.json / .md")
    return 0
