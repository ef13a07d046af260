"""Benchmark harness: SFD's cost side by side with the discriminators BasicSR users pick today.

Every comparison runs in ONE process, side by side: each configuration is built and warmed up
(its peak memory is taken then), then the timed iterations run round-robin over the row's
configurations (so a machine whose speed drifts hurts them alike; on the GPU profile in blocks of
5 per configuration, each block after one untimed re-entry step), Python's garbage collector off;
on a GPU each timed call is measured by CUDA events after a synchronisation (``sfd_lab.timing``).
Profiles with ``profile_iters`` (gpu, smoke) add a torch.profiler pass per configuration: GPU
time, kernel launches, host synchronisations and a verdict GPU-bound / launch-bound. Reported:
median and min of the repeats, host time, peak memory, and ratios to the row's baseline. Rows:

1. ``gan_step``: one ``optimize_parameters`` of SFDModel (CLIP RN50 / ViT-B-16, random weights)
   vs BasicSR's RealESRGANModel (baseline) and ESRGANModel with UNetDiscriminatorSN, and SRModel
   (generator + losses only, so "step - SRModel step" is each discriminator's share). Same RRDBNet,
   batch, crop, L1 and VGG19 perceptual loss. FLOPs of one step counted by ``FlopCounterMode``.
2. ``clip_cost``: CLIP image forwards per iteration (counted by ``FrozenCLIP.num_image_forwards``)
   and step time of SFDModel vs the naive drop-in (SFDDiscriminator inside stock ESRGANModel,
   which calls ``net_d(img)`` and so CLIP once per call), both with a 1-block generator and no VGG
   loss so the step is the discriminator's cost.
3. ``precision``: SFDModel in fp32, bf16/fp16 autocast (fp16 on CUDA only) and channels_last;
   the losses of the first (seeded, same-batch) iterations against fp32's, within a stated tolerance.
4. ``iqa``: SFD-IQA images/s on 512² images (four 256² tiles each, the method's formula) vs BasicSR's NIQE
   on the same images and the bare CLIP forward the score needs (the floor), over a batch sweep.
5. ``csud``: delegated to ``sfd_lab.bench.csud.run_csud_benchmark`` (CSUDModel vs the released order of forwards).
6. ``components``: the SFD step and the baseline step piece by piece (G, VGG, CLIP HR, CLIP SR
   fwd/bwd, Feat-D heads, text tower, UNet-D, Adam) with the FLOPs of each (``sfd_lab.bench.components``).

Noise: every time is reported as median, min, max and spread = (max - min) / median of the
interleaved repeats; every ratio as the ratio of medians and the range of the per-pair ratios
(repeat i of a configuration over repeat i of the baseline). A time target one of whose sides
spread more than the profile's ``max_spread`` (0.15; 0.05 on the GPU profile, where a larger
spread is a harness defect to find) reads "unstable", not met / missed, and row ``gan_step``
judges every configuration's spread against it; the CUDA allocator's calls to the driver during
a configuration's timed repeats are counted (allocator churn between configurations shows there);
the load average is recorded before and after each row.

Nothing downloads: CLIP and VGG19 have random weights (fine for timing), VGG19 read from a file
written here. CPU peak memory is the resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) above the resident set measured before the configuration was built,
after ``malloc_trim`` has returned freed heap pages; CUDA peak memory is
``torch.cuda.max_memory_allocated`` above the allocation before the build.
"""

import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, replace

import torch

from sfd_lab.bench.components import row_components
from sfd_lab.bench.core import StopRequested, _load, _slug, _version, device_name, quiet_basicsr, stop_on_sigterm
from sfd_lab.bench.csud import row_csud
from sfd_lab.bench.gan_step import row_clip_cost, row_gan_step
from sfd_lab.bench.iqa import row_iqa
from sfd_lab.bench.precision import row_precision
from sfd_lab.bench.profiles import SCHEMA, Profile, parse_rows, profile_device, resolve_profile
from sfd_lab.bench.report import to_markdown
from sfd_lab.bench.steps import BenchContext

ROW_FUNCTIONS = {
    "gan_step": row_gan_step,
    "clip_cost": row_clip_cost,
    "precision": row_precision,
    "iqa": row_iqa,
    "csud": row_csud,
    "components": row_components,
}


# -- the run --------------------------------------------------------------------------------------


def run_benchmark(
    profile: str | Profile = "auto",
    rows: tuple[str, ...] | str | None = None,
    out_dir: str | None = "benchmarks/results",
    command: str | None = None,
    trace: bool = True,
    notes: str | None = None,
    threads: int | None = None,
    max_spread: float | None = None,
    tag: str | None = None,
    overrides: dict | None = None,
) -> dict:
    """Run the chosen rows of ``profile`` side by side in this process; write JSON + Markdown.

    Returns the results dict (schema SCHEMA) with ``files`` naming what was written (none when
    ``out_dir`` is None). ``trace``: profile (torch.profiler) the configurations that miss a time
    target. ``notes``: Markdown appended to the table file (findings).
    """
    from sfd_utils.compat import install

    install()  # basicsr 1.4.2 needs the torchvision shim before it is imported
    import open_clip

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS

    open_clip.add_model_config(TINY_CLIP_CONFIGS)  # tiny-rn / tiny-vit for the smoke profile
    prof = resolve_profile(profile) if isinstance(profile, str) else profile
    chosen = parse_rows(rows) if rows is None or isinstance(rows, str) else tuple(rows)
    device = profile_device(prof)
    if threads or prof.threads:
        prof = replace(prof, threads=threads or prof.threads)
    if overrides:
        prof = replace(prof, **{k: v for k, v in overrides.items() if v is not None})
    if max_spread is not None:
        if max_spread <= 0:
            raise ValueError(f"--max-spread must be positive, got {max_spread}")
        prof = replace(prof, max_spread=max_spread)
    saved_threads = torch.get_num_threads()
    if prof.threads:
        torch.set_num_threads(prof.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as basicsr/train.py sets it
    started = time.time()
    meta = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "profile": asdict(prof),
        "rows": list(chosen),
        "device": device_name(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": _version("torchvision"),
            "basicsr": _version("basicsr"),
            "open_clip": _version("open_clip_torch"),
            "sfd-basicsr": _version("sfd-basicsr"),
        },
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "load_avg_before": _load(),
        "memory_method": "torch.cuda.max_memory_allocated above the pre-build allocation"
        if device.type == "cuda"
        else "VmHWM (reset via /proc/self/clear_refs) above the pre-build VmRSS, after malloc_trim",
    }
    if tag:
        meta["tag"] = _slug(tag)
    results: dict = {"schema": SCHEMA, "meta": meta, "rows": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="sfd-bench-") as workdir, quiet_basicsr():
            ctx = BenchContext(prof, workdir)
            stop = None
            for name in chosen:
                if stop is not None:
                    results["rows"][name] = {"status": "not run", "reason": f"an earlier row was stopped ({stop})"}
                    continue
                t0 = time.time()
                print(f"[benchmark] row {name} ({prof.name} profile, {device.type}) ...", flush=True)
                load_before = _load()
                try:
                    results["rows"][name] = ROW_FUNCTIONS[name](ctx, trace)
                except StopRequested as err:
                    stop = err
                    results["rows"][name] = {
                        "status": "stopped",
                        "reason": f"stopped after {time.time() - t0:.0f} s ({err})",
                    }
                results["rows"][name]["wall_s"] = time.time() - t0
                # 1-minute load average around the row: a row run under load says so next to its numbers
                results["rows"][name]["load_avg"] = {"before": load_before, "after": _load()}
    finally:
        torch.set_num_threads(saved_threads)
    meta["load_avg_after"] = _load()
    meta["wall_s"] = time.time() - started
    results["pending"] = [n for n, r in results["rows"].items() if r.get("status") != "ok"]
    results["notes"] = notes
    if out_dir:
        results["files"] = write_results(results, out_dir)
    return results


def result_stem(results: dict) -> str:
    """``<device>-<date>`` (``-<profile>`` appended for the smoke and cpu-real profiles)."""
    meta = results["meta"]
    device = "cpu" if meta["device_type"] == "cpu" else _slug(meta["device"])
    stem = f"{device}-{meta['date'][:10]}"
    name = meta["profile"]["name"]
    stem += f"-{name}" if name in ("smoke", "cpu-real") else ""
    return stem + (f"-{meta['tag']}" if meta.get("tag") else "")


def write_results(results: dict, out_dir: str) -> dict:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir``; returns their paths."""
    import json

    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, result_stem(results))
    files = {"json": stem + ".json", "markdown": stem + ".md"}
    results["files"] = files
    with open(files["json"], "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(files["markdown"], "w") as f:
        f.write(to_markdown(results))
    return files


def run_benchmark_cli(args) -> int:
    """``scripts/benchmark.py``: the namespace of :func:`sfd_lab.bench.cli.benchmark_parser`."""
    import shlex
    import sys

    notes = open(args.notes).read() if args.notes else None
    command = " ".join(shlex.quote(a) for a in ["python", "scripts/benchmark.py", *sys.argv[1:]])
    stop_on_sigterm()
    clips = getattr(args, "clip_models", None)
    overrides = {
        "clip_models": tuple(c.strip() for c in clips.split(",") if c.strip()) if clips else None,
        "repeats": getattr(args, "repeats", None),
        "warmup": getattr(args, "warmup", None),
    }
    results = run_benchmark(
        args.profile,
        args.rows,
        args.out,
        command=command,
        trace=not args.no_trace,
        notes=notes,
        threads=args.threads,
        max_spread=getattr(args, "max_spread", None),
        tag=getattr(args, "tag", None),
        overrides=overrides,
    )
    print(open(results["files"]["markdown"]).read())
    print(f"wrote {results['files']['json']} and {results['files']['markdown']}")
    return 3 if any(r.get("status") == "stopped" for r in results["rows"].values()) else 0
