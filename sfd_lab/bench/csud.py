"""CSUD training-step cost: our CSUDModel iteration vs a re-run of the released code's order.

Both run side by side in one process on the same networks, optimizers, losses and batch:

- **ours** (``CSUDModel.generator_step`` + ``discriminator_step``): T runs twice (batched calls),
  Dr once, D once per step; one backward over the joint objective; D judges real and fake in
  one pass.
- **released order** (:func:`released_order_iteration`): every network call separately, in the
  authors' order (R~, B^, A^, A1~, A2~, R2~, S1, S2, S3); T's loss backward with
  ``retain_graph=True``, then Dr's loss backward on the kept graph; D on real and fake separately.
  (The authors' code is not available here: this order is docs/method.md, CSUD's description of it.) The
  two produce the same gradients (tested), so the comparison is of cost only.

Peak memory on CPU: the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``) during one iteration, minus the resident set just before it, with glibc
told to return large blocks to the OS at once (``mallopt``), so freed tensors leave the resident set.
"""

from __future__ import annotations

import ctypes
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from collections import OrderedDict

import torch

from sfd_lab.bench.core import paired_ratio, ratio_of, time_stats
from sfd_lab.bench.gan_step import judge_target
from sfd_lab.bench.steps import BenchContext

# Profiles: networks, batch per domain, square crop, timed iterations per method.
PROFILES = {
    "tiny": {"networks": "tiny", "batch": 2, "size": 32, "iters": 2},
    "cpu": {"networks": "authors", "batch": 2, "size": 64, "iters": 7},
    "full": {"networks": "authors", "batch": 2, "size": 256, "iters": 3},
}


def released_order_iteration(model) -> OrderedDict:
    """One CSUD iteration in the released code's order of forwards and backwards (same maths)."""
    model.set_d_trainable(False)
    model.optimizer_t.zero_grad(set_to_none=True)
    model.optimizer_g.zero_grad(set_to_none=True)
    imgs = model.forward_images(batched=False)
    loss_dict, l_t, l_dr = model.generator_losses(imgs, batched=False)
    l_t.backward(retain_graph=True)  # the shared graph (S2, S3, A1~, ...) is kept for Dr's backward
    l_dr.backward()
    model.optimizer_t.step()
    model.optimizer_g.step()
    model.discriminator_step(imgs["pseudo_rainy"], loss_dict, batched=False)
    return loss_dict


def our_iteration(model) -> OrderedDict:
    """One CSUDModel iteration (without logging and EMA)."""
    imgs, loss_dict = model.generator_step()
    model.discriminator_step(imgs["pseudo_rainy"], loss_dict)
    return loss_dict


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_free_memory() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def peak_rss_during(fn) -> dict:
    """Run ``fn()``; return its peak resident set above the starting one (MiB) and the absolute peak."""
    _release_free_memory()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    before = _rss_kib("VmRSS")
    fn()
    peak = _rss_kib("VmHWM")
    return {"peak_above_start_mib": (peak - before) / 1024, "peak_rss_mib": peak / 1024}


def _return_big_blocks_at_once() -> None:
    """glibc: serve blocks >= 64 KiB by mmap and never raise that threshold, so freed tensors are
    unmapped at once and the resident set follows live memory."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _build_model(profile: dict, exp_dir: str):
    from basicsr.models import build_model

    from sfd_model.csud_model import AUTHORS_NETWORKS, TINY_NETWORKS, csud_options

    nets = AUTHORS_NETWORKS if profile["networks"] == "authors" else TINY_NETWORKS
    torch.manual_seed(0)
    model = build_model(csud_options(exp_dir, nets))
    g = torch.Generator().manual_seed(1)
    shape = (profile["batch"], 3, profile["size"], profile["size"])
    model.feed_data({"rain": torch.rand(shape, generator=g), "clean": torch.rand(shape, generator=g)})
    return model


def run_csud_benchmark(
    profile: str = "cpu", out_dir: str | None = "benchmarks/results", threads: int | None = None
) -> dict:
    """Seconds per iteration and peak memory of ours vs the released order; writes JSON + Markdown.

    ``profile``: a key of PROFILES. ``out_dir``: where ``csud_train_step-<profile>-cpu-<date>.json/.md``
    go (None: write nothing). Returns the result dict (also the JSON's content).
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    from sfd_utils.compat import install, load_plugin

    install()
    load_plugin()
    prof = PROFILES[profile]
    if threads:
        torch.set_num_threads(threads)
    _return_big_blocks_at_once()
    methods = {"ours": our_iteration, "released_order": released_order_iteration}
    with tempfile.TemporaryDirectory() as tmp:
        models = {name: _build_model(prof, os.path.join(tmp, name)) for name in methods}
        for name, fn in methods.items():
            fn(models[name])  # warm-up: optimizer states, allocator, oneDNN kernels
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(prof["iters"]):
            for name, fn in methods.items():  # alternate, so load drift hits both alike
                t0 = time.perf_counter()
                fn(models[name])
                times[name].append(time.perf_counter() - t0)
        memory = {name: peak_rss_during(lambda n=name, f=fn: f(models[n])) for name, fn in methods.items()}
        params = {
            net: sum(p.numel() for p in getattr(models["ours"], f"net_{net}").parameters()) for net in ("g", "t", "d")
        }
    result = {
        "benchmark": "csud_train_step",
        "profile": profile,
        "device": "cpu",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
        "machine": platform.processor() or platform.machine(),
        "batch_per_domain": prof["batch"],
        "crop": prof["size"],
        "networks": profile_networks(prof),
        "parameters": params,
        "perceptual_term": "off (no VGG19 weights offline; identical work in both orders)",
        "timed_iterations": prof["iters"],
        "methods": {
            name: {
                "s_per_iter_median": statistics.median(times[name]),
                "s_per_iter_all": times[name],
                **memory[name],
            }
            for name in methods
        },
    }
    ours, rel = result["methods"]["ours"], result["methods"]["released_order"]
    result["speedup_released_over_ours"] = rel["s_per_iter_median"] / ours["s_per_iter_median"]
    result["memory_saved_mib"] = rel["peak_above_start_mib"] - ours["peak_above_start_mib"]
    if out_dir:
        write_results(result, out_dir)
    return result


def profile_networks(prof: dict) -> str:
    if prof["networks"] == "authors":
        return "authors' (NAFNet-32 [2,2,4,8]/12/[2,2,2,2], T 64 ch x 6 blocks, PatchGAN ndf 64)"
    return "tiny (NAFNet-8 [1,1]/1/[1,1], T 8 ch x 1 block, PatchGAN ndf 8)"


def write_results(result: dict, out_dir: str) -> tuple[str, str]:
    """Write ``<out_dir>/csud_train_step-<profile>-cpu-<date>.json`` and ``.md``; return both paths."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"csud_train_step-{result['profile']}-{result['device']}-{result['date']}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        f"# CSUD training step, profile `{result['profile']}` ({result['device']}, {result['date']})",
        "",
        f"Networks: {result['networks']}; batch {result['batch_per_domain']} per domain, "
        f"{result['crop']}² crops; torch {result['torch']}, {result['threads']} threads on "
        f"{result['cpu_count']} cores (load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in result['load_average_at_end'])}). VGG term: {result['perceptual_term']}.",
        "",
        "| method | s/iter (median of {}) | peak memory above start (MiB) | peak RSS (MiB) |".format(
            result["timed_iterations"]
        ),
        "|---|---|---|---|",
    ]
    for name, m in result["methods"].items():
        lines.append(
            f"| {name} | {m['s_per_iter_median']:.3f} | {m['peak_above_start_mib']:.0f} | {m['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        f"Released order / ours time: {result['speedup_released_over_ours']:.2f}x; "
        f"memory saved by ours: {result['memory_saved_mib']:.0f} MiB.",
        "",
    ]
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines))
    return stem + ".json", stem + ".md"


# The benchmark profile -> this module's CSUD profile (the CSUD comparison runs on CPU in every profile).
CSUD_PROFILES = {"smoke": "tiny", "cpu": "cpu", "cpu-real": "cpu", "gpu": "full"}
TARGET_CSUD = 0.8  # CSUDModel step / the released order of forwards, time and memory


def row_csud(ctx: BenchContext, trace: bool) -> dict:
    """Row ``csud``: :func:`run_csud_benchmark` for the matching CSUD profile, judged against TARGET_CSUD."""
    profile = CSUD_PROFILES.get(ctx.profile.name, ctx.profile.name)
    try:
        result = run_csud_benchmark(profile, out_dir=None)  # results go in the main benchmark's files
    except Exception as err:  # a broken neighbour row must not lose the other rows' results
        return {"status": "error", "reason": f"run_csud_benchmark raised {type(err).__name__}: {err}"}
    row = {"status": "ok", "csud_profile": profile, "result": result, "targets": []}
    methods = result.get("methods") if isinstance(result, dict) else None
    if isinstance(methods, dict) and {"ours", "released_order"} <= set(methods):
        ours, released = methods["ours"], methods["released_order"]
        spreads = []
        for m in (ours, released):  # min / max / spread of the interleaved repeats
            if m.get("s_per_iter_all"):
                stats = time_stats(m["s_per_iter_all"])
                m.update(s_per_iter_min=stats["min_s"], s_per_iter_max=stats["max_s"], spread=stats["spread"])
                spreads.append(stats["spread"])
        if ours.get("s_per_iter_all") and released.get("s_per_iter_all"):
            pairs = paired_ratio(ours["s_per_iter_all"], released["s_per_iter_all"])
            row["time_ratio_min"], row["time_ratio_max"] = pairs["ratio_min"], pairs["ratio_max"]
        for what, key in (("time", "s_per_iter_median"), ("peak memory", "peak_above_start_mib")):
            value = ratio_of(ours.get(key), released.get(key))
            row[f"{what.split()[-1]}_ratio"] = value
            row["targets"].append(
                judge_target(
                    f"CSUD step {what} vs released order",
                    value,
                    "<=",
                    TARGET_CSUD,
                    ctx.profile,
                    spreads=spreads if what == "time" else (),
                )
            )
    return row


def run_csud_benchmark_cli(args) -> int:
    """``scripts/benchmark_csud.py``: the namespace of :func:`sfd_lab.bench.cli.benchmark_csud_parser`."""
    result = run_csud_benchmark(args.profile, args.out, args.threads)
    print(json.dumps({k: result[k] for k in ("profile", "methods", "speedup_released_over_ours")}, indent=2))
    return 0
