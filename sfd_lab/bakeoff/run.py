"""``scripts/bakeoff.py``: does SFD make better images than the discriminators users pick today?

1. Photos (sfd_lab.photos): real photographs split by scene into train / val / test (or scikit-image's
   photos as a labelled fallback; ``--quick`` always uses those); LR = bicubic ÷4.
2. CLIPs: the quality-aware tiny CLIP of the SFD contestants and random weights of its architecture.
3. One stage-1 L1 generator on the training photos; every contestant fine-tuned from it
   (sfd_lab.bakeoff.contestants): the L1-only control, the stock discriminators and SFD with its
   ablations; the frontier contestants at every GAN weight, the others at the middle one; every
   discriminator's learning rate chosen on the *validation* photos first; several seeds.
4. Held-out evaluation on the whole test photos: PSNR/SSIM-Y and NIQE (sfd_lab.bakeoff.evaluate),
   and the realism test (sfd_lab.bakeoff.realism: a from-scratch CNN telling HR from SR patches,
   cross-validated across scenes), for every run, for HR, stage 1 and the sanity rows.
5. Analysis (sfd_lab.bakeoff.analysis) and report (sfd_lab.bakeoff.report): paired intervals over
   scenes × seeds, the matched-PSNR frontier, sanity flags, who learned; ``--results-dir`` copies
   the report as ``bakeoff-<date>.*``.

Every task's result is kept on disk as it finishes (sfd_lab.bakeoff.plan): rerunning the same
command after an interruption continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from sfd_lab.bakeoff import contestants as bo
from sfd_lab.bakeoff import jobs
from sfd_lab.bakeoff.analysis import REFERENCES, choose_lr, lrsel_id, reused_run, run_id
from sfd_lab.bakeoff.data import SANITY_ROWS
from sfd_lab.bakeoff.plan import BakeoffInterrupted, Store, Task, check_plan, load_average, run_tasks

# --quick: every phase at toy size on scikit-image's photos (the `make test` rehearsal); the numbers mean nothing
QUICK = {
    "seeds": (0, 1),
    "iters": 2,
    "batch": 2,
    "d_width": 8,
    "n_ctx": 4,
    "feat_mid": 8,
    "stage1_iters": 2,
    "lr_grid": (1e-4, 1e-3),
    "realism": (("patch", 32), ("patches_per_image", 8), ("folds", 2), ("steps", 4), ("width", 8)),
}
QUICK_PHOTOS = {"fallback": "--quick rehearses on scikit-image's small photos, never the prepared ones"}
# rough CPU seconds per fine-tuning iteration at a 128² crop, batch 4, width 16, one thread (measured
# 2026-12-07): only the order in which tasks start depends on them
S_PER_ITER = {"none": 0.22, "unet": 0.8, "vgg": 0.45, "patchgan": 0.34, "sfd": 0.37}


def build_tasks(
    s: bo.BakeoffSettings, photos: dict, out_dir: str, clip_pretrained: str | None, realism: dict
) -> list[Task]:
    """The whole bake-off as tasks (see sfd_lab.bakeoff.plan)."""
    cache = os.path.join(out_dir, "lr_cache")
    where = {"photos": photos, "cache_dir": cache}
    tasks = [
        Task("prepare", jobs.job_prepare, dict(where), cost=30),
        Task("clips", jobs.job_clips, {"out_dir": out_dir, "clip_pretrained": clip_pretrained, **where}, ("prepare",)),
        Task(
            "stage1",
            jobs.job_stage1,
            {**where, "out_dir": out_dir, "iters": s.stage1_iters, "seed": s.stage1_seed},
            ("prepare",),
            cost=150,
        ),
    ]
    for row in ("hr", *SANITY_ROWS):
        kwargs = {"row": row, **where, "out_dir": out_dir}
        tasks.append(Task(f"ref-{row}", jobs.job_reference, kwargs, ("prepare",), 20))
    tasks.append(
        Task(
            "ref-stage1",
            jobs.job_reference,
            lambda r: {"row": "stage1", **where, "out_dir": out_dir, "checkpoint": r["stage1"]["checkpoint"]},
            ("stage1",),
            40,
        )
    )

    def train_kwargs(key, w, seed, lr_from=None, lr=None, validate=False):
        def make(r: dict) -> dict:
            d_lr = lr
            if lr_from:
                d_lr = choose_lr({x: r[lrsel_id(key, x)] for x in s.lr_grid})["chosen"]
            clips = {k: r["clips"][k] for k in ("quality", "random")}
            return {
                "key": key, "gan_weight": w, "d_lr": d_lr, "seed": seed, "settings": s, "clips": clips,
                "stage1": r["stage1"]["checkpoint"], **where, "out_dir": out_dir, "validate": validate,
            }  # fmt: skip

        return make

    for key in s.contestants:
        c = bo.CONTESTANTS[key]
        cost = S_PER_ITER[c.kind if c.kind in S_PER_ITER else "sfd"] * s.iters
        lrsel = [lrsel_id(key, lr) for lr in s.lr_grid] if c.has_d else []
        for lr in s.lr_grid if c.has_d else ():
            kwargs = train_kwargs(key, s.mid_weight, s.seeds[0], lr=lr, validate=True)
            tasks.append(Task(lrsel_id(key, lr), jobs.job_train, kwargs, ("clips", "stage1"), cost + 60))
        for w in s.weights_of(key):
            for seed in s.seeds:
                rid = run_id(key, w, seed)
                if reused_run(s, key, w, seed):
                    train_dep = tuple(lrsel)

                    def net_g(r, key=key):
                        return r[lrsel_id(key, choose_lr({x: r[lrsel_id(key, x)] for x in s.lr_grid})["chosen"])]
                else:
                    kwargs = train_kwargs(key, w, seed, lr_from=bool(lrsel))
                    tasks.append(Task(f"train-{rid}", jobs.job_train, kwargs, ("clips", "stage1", *lrsel), cost))
                    train_dep = (f"train-{rid}",)

                    def net_g(r, rid=rid):
                        return r[f"train-{rid}"]

                def test_kwargs(r, net_g=net_g, key=key, w=w, seed=seed):
                    method = f"{key}-w{w:g}/seed{seed}"
                    return {"method": method, "net_g": net_g(r)["net_g"], **where, "out_dir": out_dir}

                tasks.append(Task(f"test-{rid}", jobs.job_test, test_kwargs, train_dep, 60))
            deps = tuple(f"test-{run_id(key, w, seed)}" for seed in s.seeds)

            def realism_kwargs(r, deps=deps, key=key, w=w):
                dirs = [r[d]["sr_dir"] for d in deps]
                return {"method": f"{key}@{w:g}", "sr_dirs": dirs, **where, "settings": realism}

            tasks.append(Task(f"realism-{key}-w{w:g}", jobs.job_realism, realism_kwargs, deps, 60))
        if c.has_d:
            kwargs = {"key": key, "settings": s, "clips": None}
            tasks.append(
                Task(f"capacity-{key}", jobs.job_capacity, lambda r, kw=kwargs: {**kw, "clips": r["clips"]}, ("clips",))
            )
    for row in (*SANITY_ROWS, "stage1"):

        def ref_realism(r, row=row):
            return {"method": row, "sr_dirs": [r[f"ref-{row}"]["sr_dir"]], **where, "settings": realism}

        tasks.append(Task(f"realism-{row}", jobs.job_realism, ref_realism, (f"ref-{row}",), 40))
    return tasks


def _machine() -> dict:
    import platform

    import torch

    from sfd_lab.bench.core import device_name

    return {
        "cpu": device_name(torch.device("cpu")),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def run_bakeoff(
    out_dir: str = "results/bakeoff",
    settings: bo.BakeoffSettings | None = None,
    quick: bool = False,
    photos_root: str = "datasets/photos",
    clip_pretrained: str | None = None,
    results_dir: str | None = None,
    command: str | None = None,
    quiet: bool = False,
    jobs_n: int = 1,
    stop_after: int | None = None,
) -> dict:
    """The whole bake-off; writes ``out_dir/report.{md,json}``, the plot and the montage (and, with
    ``results_dir``, copies named ``bakeoff-<date>``); returns the report dict. Raises
    :class:`BakeoffInterrupted` when stopped (every finished result stays on disk)."""
    from sfd_lab.bakeoff.report import build_report, write_report

    if jobs_n < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs_n}")
    if settings is None:
        settings = bo.BakeoffSettings(**QUICK) if quick else bo.BakeoffSettings()
    photos = QUICK_PHOTOS if quick else {"root": os.path.abspath(photos_root)}
    realism = dict(settings.realism)
    plan = {"version": 1, "settings": dataclasses.asdict(settings), "photos": photos, "clip": clip_pretrained}
    check_plan(out_dir, plan, open_settings=("contestants", "frontier"))
    started, load_start = time.time(), load_average()
    tasks = build_tasks(settings, photos, out_dir, clip_pretrained, realism)

    def log(msg: str) -> None:
        if not quiet:
            print(f"[bakeoff] {msg} (load {load_average()})", flush=True)

    results, task_stats = run_tasks(
        tasks, Store(os.path.join(out_dir, "tasks")), jobs_n, jobs.worker_init, log, stop_after=stop_after
    )
    run = {
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "command": command or "python scripts/bakeoff.py" + (" --quick" if quick else ""),
        "machine": {**_machine(), "jobs": jobs_n, "torch_threads_per_task": 1},
        "load_start": load_start,
        "load_end": load_average(),
        "wall_s": round(time.time() - started, 1),
        "tasks": {"total": len(tasks), **{k: v for k, v in task_stats.items() if k != "seconds"}},
        "settings": dataclasses.asdict(settings),
        "references": list(REFERENCES),
    }
    report = build_report(run, results, settings)
    return write_report(report, out_dir, results_dir, photos)


def settings_from_args(a) -> bo.BakeoffSettings:
    """The settings a parsed command line asks for (``--quick``'s sizes first); without ``--frontier``,
    the default frontier less the contestants ``--contestants`` leaves out."""
    base = dict(QUICK) if a.quick else {}
    given = {
        "seeds": tuple(a.seeds) if a.seeds else None,
        "iters": a.iters,
        "batch": a.batch,
        "gan_weights": tuple(a.gan_weights) if a.gan_weights else None,
        "lr_grid": tuple(a.lr_grid) if a.lr_grid else None,
        "d_width": a.d_width,
        "contestants": tuple(a.contestants) if a.contestants else None,
        "frontier": tuple(a.frontier) if a.frontier else None,
    }
    if a.contestants and not a.frontier:
        given["frontier"] = tuple(k for k in bo.BakeoffSettings.frontier if k in a.contestants)
    return bo.BakeoffSettings(**{**base, **{k: v for k, v in given.items() if v is not None}})


def run_bakeoff_cli(a) -> int:
    """``scripts/bakeoff.py``: the namespace of :func:`sfd_lab.bakeoff.cli.bakeoff_parser`."""
    from sfd_lab.bakeoff.cli import bakeoff_command

    try:
        settings = settings_from_args(a)
        report = run_bakeoff(
            a.out, settings, a.quick, a.photos, a.clip_pretrained, a.results_dir, bakeoff_command(a), jobs_n=a.jobs
        )
    except BakeoffInterrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 3
    with open(report["files"]["report_md"], encoding="utf-8") as f:
        print(f.read())
    print(f"report: {report['files']['report_md']} ; plot: {report['files']['pd_plot']}")
    if a.results_dir:
        print(f"results: {os.path.join(a.results_dir, report['files']['results']['md'])}")
    return 0
