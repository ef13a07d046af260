"""The Feat-D design study's program (``scripts/featd_study.py``) as tasks kept on disk (sfd_lab.bakeoff.plan):
the photos, the CLIP, the bake-off's stage-1 generator, the validation references, every variant x config x
seed run, the realism test of every variant (seeds pooled), then the report (sfd_lab.bakeoff.featd_report).
An interrupted study loses only the tasks in flight; a rerun with other settings into the same ``--out`` is
refused."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from sfd_lab.bakeoff import featd_study as fs
from sfd_lab.bakeoff import jobs
from sfd_lab.bakeoff.plan import BakeoffInterrupted, Store, Task, check_plan, load_average, run_tasks

# --quick: every phase at toy size on scikit-image's photos (a rehearsal; the numbers mean nothing)
QUICK = {
    "seeds": (0, 1),
    "iters": 2,
    "batch": 2,
    "gt_size": 64,
    "stage1_iters": 2,
    "feat_mid": 8,
    "n_ctx": 4,
    "realism": (("patch", 32), ("patches_per_image", 4), ("folds", 2), ("steps", 2), ("width", 8)),
    "variants": ("default", "norm_channel", "g_feature_matching"),
}
QUICK_PHOTOS = {"fallback": "--quick rehearses on scikit-image's small photos, never the prepared ones"}
S_PER_RUN = {"feat": 110, "sfd": 130}  # CPU seconds per run measured on 2026-12-07 (ordering only)


def job_clip(clip_pretrained: str | None) -> dict:
    """The quality-aware tiny CLIP the bake-off's SFD uses (given, or trained once and cached)."""
    from sfd_lab.checks.quality_clip import cached_quality_clip, register_quality_clip
    from sfd_utils.downloads import sha256_file

    register_quality_clip()
    path = clip_pretrained or cached_quality_clip()
    return {"quality": path, "sha256": sha256_file(path)}


def build_tasks(s: fs.StudySettings, photos: dict, out_dir: str, clip_pretrained: str | None) -> list[Task]:
    """The whole study as tasks."""
    where = {"photos": photos, "cache_dir": os.path.join(out_dir, "lr_cache")}
    stage1 = {**where, "out_dir": out_dir, "iters": s.stage1_iters, "seed": s.stage1_seed}
    tasks = [
        Task("prepare", jobs.job_prepare, dict(where), cost=30),
        Task("clip", job_clip, {"clip_pretrained": clip_pretrained}, cost=300),
        Task("stage1", jobs.job_stage1, stage1, ("prepare",), cost=150),
    ]
    for row in fs.REFERENCES:
        if row == "stage1":

            def ref_kwargs(r: dict) -> dict:
                return {"row": "stage1", **where, "out_dir": out_dir, "checkpoint": r["stage1"]["checkpoint"]}

            tasks.append(Task("ref-stage1", fs.job_reference, ref_kwargs, ("stage1",), 40))
        else:
            kwargs = {"row": row, **where, "out_dir": out_dir}
            tasks.append(Task(f"ref-{row}", fs.job_reference, kwargs, ("prepare",), 20))
        if row != "hr":

            def ref_realism(r: dict, row: str = row) -> dict:
                return {"name": row, "sr_dirs": [r[f"ref-{row}"]["sr_dir"]], **where, "settings": dict(s.realism)}

            tasks.append(Task(f"realism-{row}", fs.job_realism, ref_realism, (f"ref-{row}",), 60))
    for control in fs.CONTROLS:
        deps = []
        for seed in s.seeds:

            def control_kwargs(r: dict, control: str = control, seed: int = seed) -> dict:
                return {
                    "control": control, "seed": seed, "settings": s, "clip": r["clip"]["quality"],
                    "stage1": r["stage1"]["checkpoint"], **where, "out_dir": out_dir,
                }  # fmt: skip

            tasks.append(Task(f"control-{control}-s{seed}", fs.job_control, control_kwargs, ("clip", "stage1"), 100))
            deps.append(f"control-{control}-s{seed}")

        def control_realism(r: dict, deps: tuple = tuple(deps), name: str = f"control-{control}") -> dict:
            return {"name": name, "sr_dirs": [r[d]["sr_dir"] for d in deps], **where, "settings": dict(s.realism)}

        tasks.append(Task(f"realism-control-{control}", fs.job_realism, control_realism, tuple(deps), 80))
    for variant in s.variants:
        for config in s.configs:
            deps = []
            for seed in s.seeds:
                key = fs.run_key(variant, config, seed)

                def run_kwargs(r, variant=variant, config=config, seed=seed):
                    return {
                        "variant": variant, "config": config, "seed": seed, "settings": s, "clip": r["clip"]["quality"],
                        "stage1": r["stage1"]["checkpoint"], **where, "out_dir": out_dir,
                    }  # fmt: skip

                tasks.append(Task(f"run-{key}", fs.job_run, run_kwargs, ("clip", "stage1"), S_PER_RUN[config]))
                deps.append(f"run-{key}")

            def realism_kwargs(r, deps=tuple(deps), name=f"{variant}-{config}"):
                return {"name": name, "sr_dirs": [r[d]["sr_dir"] for d in deps], **where, "settings": dict(s.realism)}

            tasks.append(Task(f"realism-{variant}-{config}", fs.job_realism, realism_kwargs, tuple(deps), 80))
    return tasks


def run_study(
    out_dir: str = "results/featd_study",
    settings: fs.StudySettings | None = None,
    quick: bool = False,
    jobs_n: int = 2,
    clip_pretrained: str | None = None,
    results_dir: str | None = None,
    command: str | None = None,
    log=print,
) -> dict:
    """The whole study; returns the report dict (sfd_lab.bakeoff.featd_report.build_report), written to
    ``out_dir/report.{md,json}`` and, with ``results_dir``, as ``featd_study-<date>.{md,json}`` there."""
    import torch

    from sfd_lab.bakeoff.featd_report import build_report, write_report
    from sfd_lab.bench.core import device_name

    settings = settings or (fs.StudySettings(**QUICK) if quick else fs.StudySettings())
    photos = QUICK_PHOTOS if quick else {"root": os.path.join(fs.bo.ROOT, "datasets", "photos")}
    check_plan(
        out_dir, {"study": "featd", "settings": dataclasses.asdict(settings), "photos": photos}, ("variants", "configs")
    )
    started, load_start = time.time(), load_average()
    tasks = build_tasks(settings, photos, out_dir, clip_pretrained)
    results, stats = run_tasks(tasks, Store(os.path.join(out_dir, "tasks")), jobs_n, jobs.worker_init, log)
    facts = {
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "command": command or "python scripts/featd_study.py" + (" --quick" if quick else ""),
        "machine": {"cpu": device_name(torch.device("cpu")), "jobs": jobs_n, "worker_torch_threads": 1},
        "tasks_skipped": stats["skipped"],
        "tasks_ran": stats["ran"],
        "wall_s": round(time.time() - started, 1),
        "task_cpu_s": round(sum(r.get("cpu_seconds", 0.0) for r in results.values()), 1),
        "load_start": load_start,
        "load_end": load_average(),
        "settings": dataclasses.asdict(settings),
    }
    return write_report(build_report(settings, results, facts), out_dir, results_dir)


def run_featd_study_cli(a) -> int:
    """``scripts/featd_study.py``: the namespace of :func:`sfd_lab.bakeoff.featd_cli.featd_parser`."""
    from sfd_lab.bakeoff.featd_cli import featd_command

    base = dict(QUICK) if a.quick else {}
    given = {
        "seeds": tuple(a.seeds) if a.seeds else None,
        "iters": a.iters,
        "variants": tuple(dict.fromkeys(["default", *a.variants])) if a.variants else None,
        "configs": tuple(a.configs) if a.configs else None,
    }
    settings = fs.StudySettings(**{**base, **{k: v for k, v in given.items() if v is not None}})
    try:
        report = run_study(a.out, settings, a.quick, a.jobs, a.clip_pretrained, a.results_dir, featd_command(a))
    except BakeoffInterrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 3
    with open(report["files"]["report_md"], encoding="utf-8") as f:
        print(f.read())
    return 0
