"""Row ``d_iteration``: the discriminator's share of one GAN iteration, as the hosts run it (issue 21).

Each configuration is a real BasicSR model built from its options and stepped through its own
``optimize_parameters``, with the generator replaced by a stand-in whose cost is next to nothing
(bicubic x4 upscaling times one learnable gain: an SR-shaped output that carries the generator
step's gradient back), no perceptual loss and no EMA. What remains of the iteration is the
discriminator's side exactly as the host runs it:

- ``sfd_<clip>_eager``: SFDModel (CLIP on HR without grad; CLIP on SR with the gradient to SR and
  the heads with D frozen; the D step on real + fake in one pass, backward to the heads and
  prompts; losses, logging, Adam D), SFDDiscriminator with its default options (``fast_path: off``);
  ``sfd_<clip>_auto``: the same with ``fast_path: auto`` (CUDA graphs; on a GPU, or on a CPU with
  ``--emulate-graphs``, the CPU rehearsal's re-executing emulation);
- ``sfd_<clip>_srgan_eager``: SFDDiscriminator as a drop-in in BasicSR's SRGANModel (its call order);
- ``unet_realesrgan``: UNetDiscriminatorSN in BasicSR's RealESRGANModel (G-step pass with the
  gradient to SR, D step on real, then on fake);
- ``floor``: SRModel with the same stand-in generator and L1 loss (no discriminator): the part of
  every row that is not the discriminator's.

Per configuration: wall time per iteration (CUDA events after a synchronisation on a GPU, repeats
interleaved over the configurations in blocks, each block after one untimed re-entry iteration,
the garbage collector off), host time (until ``optimize_parameters`` returns), and from separate
passes: GPU time, kernel launches issued by the host (a replayed CUDA graph counts as one), graph
replays and host synchronisations (torch.profiler), operators dispatched in eager mode (a
``TorchDispatchMode``; on a CPU the launch count a GPU would see without graphs) and values read
back to the host (each a drain on a GPU) at an iteration BasicSR does not log and at one it logs
(``logger.print_freq`` 100, as the recipes), CLIP forwards and peak memory. Verdict: GPU-bound
when wall <= 1.3 x GPU time.

SIGTERM (the GPU check's time limit) stops the measurement: the configurations measured so far are
written, with ``status: stopped``.

``--before-root`` measures the same configurations with another checkout's components (its
sfd_arch / sfd_model / sfd_loss / sfd_utils, this harness) in a child process, side by side with
this checkout's in one report.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

import torch

from sfd_lab.bench.core import PeakMemory, _load, device_name, quiet_basicsr, ratio_of, seed_all, time_stats
from sfd_lab.bench.d_profiles import (  # noqa: F401  (D_PROFILES, StandInGenerator: this row's public names)
    D_PROFILES,
    DProfile,
    StandInGenerator,
    bench_profile,
    resolve_d_profile,
    use_stand_in,
)
from sfd_lab.bench.gan_step import judge_target
from sfd_lab.bench.steps import PRINT_FREQ, BenchContext, StepSpec, _build, has_fast_path, sfd_config_name, sr_batches
from sfd_lab.bench.stop import StopRequested, stop_on_sigterm
from sfd_lab.timing import (
    LAUNCH_BOUND_FACTOR,
    IterationTimer,
    allocator_counts,
    count_difference,
    count_dispatched_ops,
    no_gc,
    profile_iterations,
    verdict,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = "sfd-basicsr-d-iteration/1"
UNET = "unet_realesrgan"
TARGET_WALL_PER_GPU = LAUNCH_BOUND_FACTOR  # wall <= 1.3 x GPU time (GPU-bound)
TARGET_VS_UNET = 0.5  # SFD D iteration wall <= 0.5 x UNet-D's
TARGET_LAUNCHES = 1000  # kernel launches issued by the host per iteration (a graph replay counts as one)
TARGET_AUTO_EXTRA_MB = 2048  # peak memory with fast_path auto <= eager's + 2 GB


def d_specs(ctx: BenchContext, dp: DProfile, graphs: bool) -> list[StepSpec]:
    """The configurations of ``dp``; ``graphs``: CUDA graphs can run (a GPU, or the CPU emulation),
    so each SFD configuration runs with ``fast_path: auto`` too."""
    amp = dp.amp or "fp32"
    gen = ctx.profile.generator
    specs = []
    if not dp.only_sfd:
        specs.append(StepSpec("floor", "SRModel", None, gen, perceptual=False, stock=True))
        specs.append(StepSpec(UNET, "RealESRGANModel_basicsr", ctx.unet_network_d(), gen, perceptual=False, stock=True))
    modes = ("off", "auto") if graphs and has_fast_path() else ("off",)
    for i, clip in enumerate(dp.clip_models):
        for mode in modes:
            net_d = ctx.sfd_network_d(clip, mode)
            specs.append(StepSpec(sfd_config_name(clip, mode), "SFDModel", net_d, gen, clip, False, precision=amp))
        if i == 0 and not dp.only_sfd:
            name = sfd_config_name(clip, host="srgan")
            specs.append(StepSpec(name, "SRGANModel", ctx.sfd_network_d(clip), gen, clip, False, stock=True))
    return specs


class _DEntry:
    def __init__(self, spec: StepSpec, ctx: BenchContext, batches: list[dict]) -> None:
        self.spec, self.ctx, self.batches = spec, ctx, batches
        mem = PeakMemory(ctx.device)
        mem.start()
        self.model = _build(spec, ctx)
        use_stand_in(self.model, ctx.profile.scale)
        mem.reset()
        self.mem = mem
        self.it = 0
        self.wall: list[float] = []
        self.host: list[float] = []
        self.allocator: dict | None = None
        self.peak_mb: float | None = None
        self.timer = IterationTimer(ctx.device)

    def disc(self):
        net_d = getattr(self.model, "net_d", None)
        return None if net_d is None else self.model.get_bare_model(net_d)

    def feed(self) -> None:
        self.it += 1
        self.model.feed_data(self.batches[self.it % len(self.batches)])

    def optimize(self) -> None:
        with self.ctx.autocast(self.spec):
            self.model.optimize_parameters(self.it)

    def step(self, timed: bool = False) -> None:
        self.feed()
        wall, host = self.timer(self.optimize)
        if timed:
            self.wall.append(wall)
            self.host.append(host)

    def count_ops(self, logged: bool) -> dict:
        """Operators and host reads of one iteration BasicSR logs (``logged``) or does not."""
        self.it = PRINT_FREQ * (self.it // PRINT_FREQ + 2) - (0 if logged else PRINT_FREQ - 1) - 1
        self.feed()
        return count_dispatched_ops(self.optimize)


def measure(dp: DProfile, workdir: str, graphs: bool, done: list[dict]) -> dict:
    """Build, warm up, time (interleaved blocks), profile and count every configuration of ``dp``;
    each finished configuration's row is appended to ``done`` (what a stop keeps)."""
    prof = bench_profile(dp)
    ctx = BenchContext(prof, workdir)
    device = ctx.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as basicsr/train.py sets it
    batches = sr_batches(prof, device)
    entries = []
    specs = d_specs(ctx, dp, graphs)
    for i, spec in enumerate(specs):
        print(f"d_iteration: measuring {spec.name} ({i + 1}/{len(specs)})", file=sys.stderr, flush=True)
        seed_all(prof.seed)
        entry = _DEntry(spec, ctx, batches)
        for _ in range(max(dp.warmup, 1)):  # past cuDNN autotuning, Adam's state, graph captures
            entry.step()
        entry.peak_mb = entry.mem.peak_mb()
        entries.append(entry)
    rounds = -(-dp.repeats // max(dp.block, 1))
    with no_gc():
        for r in range(rounds):
            for entry in entries:
                for _ in range(dp.reentry):
                    entry.step()
                before = allocator_counts(device)
                for _ in range(min(dp.block, dp.repeats - r * dp.block)):
                    entry.step(timed=True)
                delta = count_difference(allocator_counts(device), before)
                if delta is not None:
                    entry.allocator = {k: (entry.allocator or {}).get(k, 0) + v for k, v in delta.items()}
    for entry in entries:
        entry.feed()
        profiled = profile_iterations(entry.optimize, device, dp.profile_iters)
        disc = entry.disc()
        backbone = getattr(disc, "backbone", None)
        before = backbone.num_image_forwards if backbone is not None else 0
        ops = entry.count_ops(logged=False)
        forwards = backbone.num_image_forwards - before if backbone is not None else None
        done.append(config_row(entry, profiled, ops, forwards, entry.count_ops(logged=True)))
    relate_to_unet(done)
    return {"configs": done, "targets": d_targets(done, dp)}


def relate_to_unet(rows: list[dict]) -> None:
    unet = next((r for r in rows if r["name"] == UNET), None)
    for r in rows:
        r["wall_vs_unet"] = None if unet is None else ratio_of(r["wall_ms"], unet["wall_ms"])


def config_row(entry: _DEntry, profiled: dict, ops: dict, forwards: int | None, logged_ops: dict) -> dict:
    spec = entry.spec
    stats = time_stats(entry.wall)
    worst = max(range(len(entry.wall)), key=entry.wall.__getitem__)
    disc = entry.disc()
    fast = getattr(disc, "fast_path", None)
    wall_ms = 1e3 * stats["median_s"]
    return {
        "name": spec.name,
        "host_model": spec.model_type.replace("_basicsr", ""),
        "network_d": None if spec.network_d is None else spec.network_d["type"],
        "network_d_options": spec.network_d,
        "clip": spec.clip,
        "wall_ms": wall_ms,
        "wall_min_ms": 1e3 * stats["min_s"],
        "wall_max_ms": 1e3 * stats["max_s"],
        "spread": stats["spread"],
        "wall_times_ms": [1e3 * t for t in entry.wall],
        "slowest_repeat": worst,  # index: 0, block, 2 x block, ... = first of a block (re-entry effect)
        "host_ms": 1e3 * statistics.median(entry.host),
        "allocator_events_in_timed_loop": entry.allocator,
        **profiled,
        "verdict": verdict(wall_ms, profiled.get("gpu_ms")),
        "wall_per_gpu": ratio_of(wall_ms, profiled.get("gpu_ms")),
        "dispatched": ops,  # an iteration BasicSR does not log
        "host_reads_logged": logged_ops["host_reads"],  # an iteration it logs (losses read there)
        "host_read_sites_logged": logged_ops["host_read_sites"],
        "clip_forwards_per_iter": forwards,
        "peak_mem_mb": entry.peak_mb,
        "fast_path": fast.status() if hasattr(fast, "status") else None,
    }


def d_targets(rows: list[dict], dp: DProfile) -> list[dict]:
    """The issue's targets for the SFD configurations of the first CLIP model (default options)."""
    prof = bench_profile(dp)
    unet = next((r for r in rows if r["name"] == UNET), None)
    by_name = {r["name"]: r for r in rows}
    targets = []
    for r in rows:
        if r["host_model"] != "SFDModel" or r["clip"] != dp.clip_models[0]:
            continue
        name = r["name"]
        targets.append(judge_target(f"{name}: wall / GPU time", r["wall_per_gpu"], "<=", TARGET_WALL_PER_GPU, prof))
        if unet is not None:
            targets.append(
                judge_target(
                    f"{name}: wall vs {UNET}",
                    r["wall_vs_unet"],
                    "<=",
                    TARGET_VS_UNET,
                    prof,
                    spreads=(r["spread"], unet["spread"]),
                )
            )
        targets.append(
            judge_target(f"{name}: kernel launches per iteration", r["launches"], "<=", TARGET_LAUNCHES, prof)
        )
        eager = by_name.get(sfd_config_name(r["clip"])) if name.endswith("_auto") else None
        if eager is not None and r["peak_mem_mb"] is not None and eager["peak_mem_mb"] is not None:
            extra = r["peak_mem_mb"] - eager["peak_mem_mb"]
            targets.append(judge_target(f"{name}: peak memory - eager's (MB)", extra, "<=", TARGET_AUTO_EXTRA_MB, prof))
    if dp.device != "cuda":  # the targets are for a GPU: shown, not judged, on a CPU
        for t in targets:
            t.update(met=None, verdict="not judged (GPU target)")
    for r in rows:
        targets.append(judge_target(f"{r['name']}: spread of the repeats", r["spread"], "<=", dp.max_spread, prof))
    return targets


# -- one run per code checkout --------------------------------------------------------------------


def _git_commit(root: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def run_here(profile: str, label: str, overrides: dict | None = None, emulate: bool = False) -> dict:
    """Measure with the components this process imports (``label``: 'after' / 'before');
    ``overrides``: profile fields (clip_models, only_sfd); ``emulate``: graphs through the CPU
    emulation. SIGTERM (StopRequested) ends it with the configurations measured so far."""
    from sfd_utils.compat import install

    install()
    import contextlib

    import open_clip

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS

    open_clip.add_model_config(TINY_CLIP_CONFIGS)
    dp = resolve_d_profile(profile, **(overrides or {}))
    code_root = components_root()
    started = time.time()
    load = _load()
    saved_threads = torch.get_num_threads()
    if dp.threads:
        torch.set_num_threads(dp.threads)
    graphs = dp.device == "cuda" or (emulate and has_fast_path())
    done: list[dict] = []
    status = "ok"
    try:
        with contextlib.ExitStack() as stack:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sfd-d-iter-"))
            stack.enter_context(quiet_basicsr())
            if emulate and has_fast_path():
                from sfd_arch.cuda_graphs import emulated_graphs

                stack.enter_context(emulated_graphs())
            result = measure(dp, workdir, graphs, done)
    except StopRequested:
        status = "stopped"
        relate_to_unet(done)
        result = {"configs": done, "targets": d_targets(done, dp)}
    finally:
        threads = torch.get_num_threads()
        torch.set_num_threads(saved_threads)
    return {
        "code": label,
        "status": status,
        "code_root": code_root,
        "commit": _git_commit(code_root),
        "fast_path_option": has_fast_path(),
        "graphs": "none" if not graphs else "emulated (CPU)" if dp.device != "cuda" else "CUDA",
        "threads": threads,
        "wall_s": time.time() - started,
        "load_avg": {"before": load, "after": _load()},
        **result,
    }


CHILD_BOOT = (
    "import importlib.util, os, sys\n"
    "mine = sys.argv[1]\n"
    "spec = importlib.util.spec_from_file_location('sfd_lab', os.path.join(mine, 'sfd_lab', '__init__.py'),"
    " submodule_search_locations=[os.path.join(mine, 'sfd_lab')])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules['sfd_lab'] = module\n"
    "spec.loader.exec_module(module)\n"
    "from sfd_lab.bench.d_iteration import child_main\n"
    "sys.exit(child_main(sys.argv[2:]))\n"
)


def run_child(code_root: str, profile: str, label: str, workdir: str, overrides=None, emulate=False) -> dict:
    """:func:`run_here` in a child process whose components come from ``code_root`` (this harness)."""
    out = os.path.join(workdir, f"{label}.json")
    env = {**os.environ, "PYTHONPATH": code_root}
    cmd = [sys.executable, "-c", CHILD_BOOT, ROOT, "--profile", profile, "--label", label, "--json", out]
    cmd += ["--overrides", json.dumps(overrides or {})] + (["--emulate"] if emulate else [])
    proc = subprocess.run([*cmd, "--expect-root", code_root], cwd=code_root, env=env)
    if proc.returncode != 0 or not os.path.isfile(out):
        raise RuntimeError(f"the {label} run ({code_root}) failed with exit status {proc.returncode}")
    with open(out) as f:
        return json.load(f)


def components_root() -> str:
    """The checkout this process imports the components (sfd_arch, sfd_model, ...) from."""
    import sfd_arch
    import sfd_model

    roots = {os.path.dirname(os.path.dirname(os.path.abspath(m.__file__))) for m in (sfd_arch, sfd_model)}
    if len(roots) != 1:
        raise RuntimeError(f"sfd_arch and sfd_model come from different checkouts: {sorted(roots)}")
    return roots.pop()


def child_main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(allow_abbrev=False)
    p.add_argument("--profile", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--expect-root", required=True, help="the checkout the components must come from")
    p.add_argument("--overrides", default="{}", help="profile fields, as JSON")
    p.add_argument("--emulate", action="store_true")
    a = p.parse_args(argv)
    found = components_root()
    if os.path.realpath(found) != os.path.realpath(a.expect_root):
        print(
            f"d_iteration: the {a.label} run imports its components from {found}, not {a.expect_root}", file=sys.stderr
        )
        return 2
    run = run_here(a.profile, a.label, json.loads(a.overrides), a.emulate)
    with open(a.json, "w") as f:
        json.dump(run, f, indent=1, default=str)
    return 0


def run_d_iteration(
    profile: str = "auto",
    before_root: str | None = None,
    out_dir: str | None = None,
    command: str | None = None,
    after_root: str | None = None,
    tag: str | None = None,
    overrides: dict | None = None,
    emulate: bool = False,
) -> dict:
    """This checkout's D iteration (``after_root``'s instead when given), and ``before_root``'s; with
    either root, each run is a child process importing that checkout's components. Writes
    ``d_iteration-<device>-<date>[-<profile>][-<tag>].json/.md`` into ``out_dir`` (None: nothing).
    ``overrides``: profile fields (e.g. ``{"clip_models": ["RN50"]}``); ``emulate``: on a CPU, run
    the ``_auto`` configurations through the graphs' emulation (the GPU check's rehearsal)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    dp = resolve_d_profile(profile, **overrides)
    meta = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "profile": asdict(dp),
        "device": device_name(torch.device(dp.device)),
        "device_type": dp.device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_before": _load(),
    }
    if emulate:
        meta["graphs"] = "emulated on the CPU (re-executed: exercises the machinery, no speed-up)"
    runs = []
    if before_root or after_root:
        with tempfile.TemporaryDirectory(prefix="sfd-d-iter-runs-") as work:
            if before_root:
                runs.append(run_child(os.path.abspath(before_root), dp.name, "before", work, overrides, emulate))
            runs.append(run_child(os.path.abspath(after_root or ROOT), dp.name, "after", work, overrides, emulate))
    else:
        runs.append(run_here(dp.name, "after", overrides, emulate))
    meta["load_avg_after"] = _load()
    if tag:
        meta["tag"] = tag
    status = "stopped" if any(r.get("status") == "stopped" for r in runs) else "ok"
    results = {"schema": SCHEMA, "status": status, "meta": meta, "runs": runs, "comparison": compare_runs(runs)}
    if out_dir:
        results["files"] = write_results(results, out_dir)
    return results


def compare_runs(runs: list[dict]) -> list[dict]:
    """Per configuration present in both runs: after / before of ops, launches and wall time."""
    if len(runs) != 2:
        return []
    before = {c["name"]: c for c in runs[0]["configs"]}
    out = []
    for c in runs[1]["configs"]:
        b = before.get(c["name"])
        if b is None:
            continue
        out.append(
            {
                "name": c["name"],
                "compute_ops": [b["dispatched"]["compute_ops"], c["dispatched"]["compute_ops"]],
                "compute_ops_ratio": ratio_of(c["dispatched"]["compute_ops"], b["dispatched"]["compute_ops"]),
                "casts": [b["dispatched"]["casts"], c["dispatched"]["casts"]],
                "host_reads": [b["dispatched"]["host_reads"], c["dispatched"]["host_reads"]],
                "host_reads_logged": [b.get("host_reads_logged"), c.get("host_reads_logged")],
                "launches": [b.get("launches"), c.get("launches")],
                "wall_ms": [b["wall_ms"], c["wall_ms"]],
                "wall_ratio": ratio_of(c["wall_ms"], b["wall_ms"]),
            }
        )
    return out


def write_results(results: dict, out_dir: str) -> dict:
    from sfd_lab.bench.d_report import to_markdown

    meta = results["meta"]
    device = "cpu" if meta["device_type"] == "cpu" else meta["device"].lower().replace(" ", "-")
    stem = f"d_iteration-{device}-{meta['date'][:10]}"
    if meta["profile"]["name"] in ("smoke", "decide"):
        stem += "-" + meta["profile"]["name"]
    clips = list(meta["profile"]["clip_models"])
    if clips != list(D_PROFILES[meta["profile"]["name"]].clip_models):
        stem += "-" + "-".join(clips)
    if meta.get("tag"):
        stem += "-" + "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in meta["tag"])
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, stem)
    files = {"json": path + ".json", "markdown": path + ".md"}
    results["files"] = files
    with open(files["json"], "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(files["markdown"], "w") as f:
        f.write(to_markdown(results))
    return files


def run_d_iteration_cli(args) -> int:
    """``scripts/bench_d_iteration.py``: the namespace of :func:`sfd_lab.bench.cli.d_iteration_parser`.
    SIGTERM stops the measurement; the configurations measured so far are written (exit status 3)."""
    command = " ".join(shlex.quote(a) for a in ["python", "scripts/bench_d_iteration.py", *sys.argv[1:]])
    stop_on_sigterm()  # replaces the script's early handler: from here on the partial results are written
    clips = [c.strip() for c in args.clip_models.split(",") if c.strip()] if args.clip_models else None
    results = run_d_iteration(
        args.profile,
        args.before_root,
        args.out,
        command=command,
        after_root=args.after_root,
        tag=args.tag,
        overrides={"clip_models": clips, "only_sfd": True if args.only_sfd else None},
        emulate=args.emulate_graphs,
    )
    print(open(results["files"]["markdown"]).read())
    print(f"wrote {results['files']['json']} and {results['files']['markdown']}")
    return 3 if results["status"] == "stopped" else 0
