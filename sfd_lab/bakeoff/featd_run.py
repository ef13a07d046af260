"""The Feat-D design study's program (``scripts/featd_study.py``): the stage-1 generator, the references,
every variant x config x seed run (in worker processes; kept on disk and skipped on rerun), the realism
test of every run, and the report (sfd_lab.bakeoff.featd_report)."""

from __future__ import annotations

import dataclasses
import json
import os
import time

from sfd_lab.bakeoff import featd_study as fs
from sfd_lab.bakeoff.run import _worker_init  # one torch thread, plugin registered, BasicSR quiet

# --quick: every phase at toy size (a rehearsal; the numbers mean nothing)
QUICK = {
    "seeds": (0, 1),
    "iters": 2,
    "batch": 2,
    "gt_size": 64,
    "tile": 64,
    "tiles_per_photo": 2,
    "stage1_iters": 2,
    "feat_mid": 8,
    "n_ctx": 4,
    "variants": ("default", "norm_channel", "g_feature_matching"),
}
QUICK_REALISM = {"steps": 2, "patches_per_image": 4}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _in_pool(jobs_args: dict, fn, jobs: int, log, what) -> dict:
    """``fn(*args)`` for every key -> args of ``jobs_args``, ``jobs`` at a time in worker processes of one
    torch thread (in this process when ``jobs`` is 1); each result is on disk as soon as its call ends, so
    an interrupted study loses only the calls in flight. ``what(key, result)``: the line logged."""
    if jobs <= 1 or len(jobs_args) <= 1:
        out = {}
        for key, args in jobs_args.items():
            out[key] = fn(*args)
            log(what(key, out[key]))
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init) as pool:
        futures = {pool.submit(fn, *args): key for key, args in jobs_args.items()}
        for done in as_completed(futures):
            key = futures[done]
            out[key] = done.result()
            log(f"{what(key, out[key])} (load {_load()})")
    return out


def _run_line(key: str, r: dict) -> str:
    return f"{key}: {r['train_seconds']} s training, {r['eval_seconds']} s evaluation, {r['cpu_seconds']} s CPU"


def _realism_line(key: str, r: dict) -> str:
    return f"realism {key}: accuracy {r['accuracy']:.3f} ({r['seconds']} s, {r['cpu_seconds']} s CPU)"


def references(data: fs.StudyData, stage1: dict, out_dir: str) -> dict:
    """Per-image PSNR-Y / NIQE of HR itself, bicubic and the stage-1 generator (kept on disk)."""
    path = os.path.join(out_dir, "references.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    import copy

    from basicsr.archs import build_network

    from sfd_arch.bicubic_arch import SFDBicubicUpsampler
    from sfd_utils.checkpoint import load_generator_weights

    net = build_network(copy.deepcopy(fs.bo.read_recipe(fs.bo.STAGE1_RECIPE)["network_g"]))
    load_generator_weights(net, stage1["checkpoint"], "params_ema")
    out = {}
    for name, images in (
        ("hr", [v["hr"] for v in data.val]),
        ("bicubic", fs.upscale_images(SFDBicubicUpsampler(4), data.val)),
        ("stage1", fs.upscale_images(net, data.val)),
    ):
        rows = []
        for v, img in zip(data.val, images):
            fs.write_png(img, os.path.join(out_dir, "sr", name, f"{v['name']}.png"))
            rows.append({"name": v["name"], "scene": v["scene"], **fs.image_metrics(img, v["hr"])})
        out[name] = rows
    fs._write_json(path, out)
    return out


def run_study(
    out_dir: str = "results/featd_study",
    settings: fs.StudySettings | None = None,
    quick: bool = False,
    jobs: int = 2,
    clip_pretrained: str | None = None,
    results_dir: str | None = None,
    command: str | None = None,
    log=print,
) -> dict:
    """The whole study; returns the report dict (sfd_lab.bakeoff.featd_report.build_report), written to
    ``out_dir/report.{md,json}`` and, with ``results_dir``, as ``featd_study-<date>.{md,json}`` there."""
    import torch

    from sfd_lab.bakeoff.featd_report import build_report, write_report
    from sfd_lab.bench.core import device_name, quiet_basicsr
    from sfd_lab.checks.quality_clip import cached_quality_clip

    settings = settings or (fs.StudySettings(**QUICK) if quick else fs.StudySettings())
    os.makedirs(out_dir, exist_ok=True)
    started, cpu0, load_start = time.time(), time.process_time(), _load()
    with quiet_basicsr():
        data = fs._data(settings)
        log(f"photos: {data.photos.source}; {len(data.hr)} training tiles, {len(data.val)} validation images")
        stage1 = fs.train_stage1(data, out_dir, settings)
        refs = references(data, stage1, out_dir)
        clip = clip_pretrained or cached_quality_clip()  # the bake-off's: the photo set's train split
        runs, todo = {}, {}
        options = dict(QUICK_REALISM) if quick else {}  # the realism test's settings (its defaults)
        for seed in settings.seeds:
            for variant in settings.variants:
                for config in settings.configs:
                    key = fs.run_key(variant, config, seed)
                    stored = fs.load_run(out_dir, key, settings)
                    if stored is not None:
                        runs[key] = stored
                    else:
                        todo[key] = (variant, config, seed, settings, clip, stage1["checkpoint"], out_dir)
        log(f"{len(runs)} runs on disk, {len(todo)} to do ({jobs} at a time)")
        t_runs = time.time()
        runs.update(_in_pool(todo, fs.finetune, jobs, log, _run_line))
        runs_wall = round(time.time() - t_runs, 1)
        tests = {ref: (out_dir, ref, [ref], settings, options) for ref in ("bicubic", "stage1")}
        for variant in settings.variants:
            for config in settings.configs:
                name = f"{variant}-{config}"
                seeds = [fs.run_key(variant, config, seed) for seed in settings.seeds]
                tests[name] = (out_dir, name, seeds, settings, options)
        t_realism = time.time()
        realism = _in_pool(tests, fs.realism_of, jobs, log, _realism_line)
        realism_wall = round(time.time() - t_realism, 1)
    report = build_report(
        settings=settings,
        runs=runs,
        references=refs,
        realism=realism,
        photos={
            "source": data.photos.source,
            "manifest_sha256": data.photos.manifest_sha256,
            "train": [p.name for p in data.photos.train],
            "val": [{"name": v["name"], "scene": v["scene"], "size": list(v["hr"].shape[1::-1])} for v in data.val],
            "training_tiles": len(data.hr),
        },
        facts={
            "quick": quick,
            "date": time.strftime("%Y-%m-%d"),
            "command": command or "python scripts/featd_study.py" + (" --quick" if quick else ""),
            "machine": {"cpu": device_name(torch.device("cpu")), "jobs": jobs, "worker_torch_threads": 1},
            "clip": os.path.basename(clip),
            "stage1": stage1,
            "runs_done_now": len(todo),
            "runs_wall_s": runs_wall,
            "realism_wall_s": realism_wall,
            "wall_s": round(time.time() - started, 1),
            "main_cpu_s": round(time.process_time() - cpu0, 1),
            "load_start": load_start,
            "load_end": _load(),
            "settings": dataclasses.asdict(settings),
            "realism_options": options or "sfd_lab.bakeoff.realism defaults",
        },
    )
    return write_report(report, out_dir, results_dir)


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
    report = run_study(a.out, settings, a.quick, a.jobs, a.clip_pretrained, a.results_dir, featd_command(a))
    with open(report["files"]["report_md"], encoding="utf-8") as f:
        print(f.read())
    return 0
