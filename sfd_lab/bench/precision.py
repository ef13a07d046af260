"""Row ``precision``: SFDModel in fp32 vs bf16/fp16 autocast and channels_last (time and losses)."""

from sfd_lab.bench.core import paired_ratio, ratio_of
from sfd_lab.bench.profiles import LOSS_TOLERANCE
from sfd_lab.bench.steps import BenchContext, StepSpec, entry_row, free_entries, run_steps, sfd_config_name


def _max_rel_dev(losses: dict[str, list[float]], ref: dict[str, list[float]]) -> tuple[float | None, str | None]:
    worst, worst_key = None, None
    for key, values in losses.items():
        for a, b in zip(values, ref.get(key, [])):
            dev = abs(a - b) / max(abs(b), 1e-8)
            if worst is None or dev > worst:
                worst, worst_key = dev, key
    return worst, worst_key


def row_precision(ctx: BenchContext, trace: bool) -> dict:
    p = ctx.profile
    clip = p.clip_models[0]
    variants = [v for v in p.precisions if ctx.device.type == "cuda" or "fp16" not in v]  # fp16 autocast: CUDA only
    skipped = [v for v in p.precisions if v not in variants]
    name = sfd_config_name(clip)
    specs = [
        StepSpec(f"{name}_{v}", "SFDModel", ctx.sfd_network_d(clip), p.generator, clip, p.perceptual, precision=v)
        for v in variants
    ]
    repeats = p.precision_repeats or p.repeats
    entries = run_steps(specs, ctx, p.warmup, count_flops_too=False, loss_iters=p.loss_iters, repeats=repeats)
    rows = [entry_row(e) for e in entries]
    ref = entries[0].losses
    targets = []
    for entry, r in zip(entries, rows):
        r["precision"] = entry.spec.precision
        pairs = paired_ratio(r["times_s"], rows[0]["times_s"])
        r["time_ratio"], r["time_ratio_min"], r["time_ratio_max"] = (
            pairs["ratio"],
            pairs["ratio_min"],
            pairs["ratio_max"],
        )
        r["mem_ratio"] = ratio_of(r["peak_mem_mb"], rows[0]["peak_mem_mb"])
        r["losses_first_iters"] = entry.losses
        dev, key = _max_rel_dev(entry.losses, ref)
        r["max_loss_rel_dev"], r["worst_loss"] = dev, key
        tol = LOSS_TOLERANCE.get(entry.spec.precision)
        r["loss_tolerance"] = tol
        if tol is not None:
            met = None if dev is None else bool(dev <= tol)
            targets.append(
                {
                    "what": f"{r['name']}: losses vs fp32",
                    "value": dev,
                    "target": f"<= {tol:g}",
                    "met": met,
                    "verdict": {True: "met", False: "missed", None: "not judged"}[met],
                }
            )
    free_entries(entries)
    return {
        "status": "ok",
        "clip": clip,
        "loss_iters": p.loss_iters,
        "rounds": repeats,
        "skipped": {v: "fp16 autocast is CUDA only" for v in skipped},
        "configs": rows,
        "targets": targets,
    }


# -- row 4: SFD-IQA throughput --------------------------------------------------------------------
