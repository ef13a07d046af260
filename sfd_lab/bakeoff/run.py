"""``scripts/bakeoff.py``: does SFD beat the discriminators users pick today? A bake-off at CPU scale.

1. Data: the demo's (``datasets/demo_sr``: 128² crops of six training photos, 256² crops of the two
   held-out photos, no shared scene); ``--quick`` writes a tiny copy under ``--out``.
2. CLIPs: the quality-aware tiny CLIP the SFD contestants use (sfd_lab.checks.quality_clip, trained once
   and cached), random weights of the same architecture (BatchNorm calibrated), and the *judge*: a
   quality-aware tiny CLIP trained with another seed on other photos (the six colour training photos
   only; never the evaluation photos), used zero-shot.
3. One stage-1 L1 generator (the demo's recipe), then every contestant x seed fine-tuned from it with
   identical generator losses, budget and data order (sfd_lab.bakeoff.contestants).
4. Held-out evaluation of every run and of HR / bicubic / stage 1: PSNR/SSIM-Y and NIQE (BasicSR's,
   through sfd_tools.sr.evaluation) and the judge (fixed prompts "a high quality photo." vs "a low
   quality photo.", mean over 64² tiles), none of which any contestant trained on.
5. SFD-IQA ranking (sfd_tools.iqa.ranking) of the discriminators that came out of the SFD GAN runs,
   next to NIQE and to a discriminator trained against a fixed bicubic generator with the same CLIP.
6. Report: ``report.md`` / ``report.json``, the perception-distortion plot (every method and seed)
   and a montage (one column per method); ``--results-dir`` copies them as ``bakeoff-<date>.*``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

import numpy as np

from sfd_lab.bakeoff import contestants as bo
from sfd_lab.bakeoff.report import (
    MEASURES,
    REFERENCES,
    aggregate,
    montage,
    plot_bakeoff_pd,
    ranking_summary,
    render_markdown,
)
from sfd_utils.downloads import sha256_file

# --quick: every phase at toy size (the `make test` rehearsal); the numbers mean nothing
QUICK = {
    "settings": {"seeds": (0, 1), "iters": 2, "batch": 2, "d_width": 8, "n_ctx": 4, "feat_mid": 8, "stage1_iters": 2},
    "data": {"max_per_photo": 2, "val_stride": 256},
    "fixed_d_iters": 2,
    "ranking_stride": 256,
}
FIXED_D = {"iters": 300, "batch": 16, "crop": 64}  # the fixed-bicubic discriminator of the ranking check


def judge_settings():
    """The judge's training settings: the quality CLIP's trainer with another seed on other photos."""
    from sfd_lab.checks.quality_clip import QualityCLIPSettings

    return QualityCLIPSettings(seed=bo.JUDGE_SEED, photos=bo.JUDGE_PHOTOS)


def _machine() -> dict:
    import platform

    import torch

    from sfd_lab.bench.core import device_name

    return {
        "cpu": device_name(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class _Phases:
    """Wall time and load average per phase, printed as the run goes."""

    def __init__(self, quiet: bool) -> None:
        self.rows, self.quiet, self.start = [], quiet, time.perf_counter()

    def run(self, name: str, fn, *args, **kwargs):
        if not self.quiet:
            print(f"[bakeoff] {name} ...", flush=True)
        load0, t0 = _load(), time.perf_counter()
        out = fn(*args, **kwargs)
        row = {
            "phase": name,
            "seconds": round(time.perf_counter() - t0, 1),
            "load_before": load0,
            "load_after": _load(),
        }
        self.rows.append(row)
        if not self.quiet:
            print(f"[bakeoff] {name}: {row['seconds']} s (load {row['load_after']})", flush=True)
        return out


def _worker_init() -> None:
    """A fine-tuning worker: one torch thread, the plugin registered, BasicSR's INFO log off."""
    import logging

    import torch

    from sfd_utils.compat import install

    install()
    torch.set_num_threads(1)
    from basicsr.utils import get_root_logger

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config

    get_root_logger().setLevel(logging.WARNING)
    register_clip_config(TINY_CLIP_CONFIGS)


def _finetune_parallel(jobs_args: dict, jobs: int, quiet: bool) -> dict:
    """Every (contestant, seed) run of ``jobs_args`` in ``jobs`` spawned worker processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    runs = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init) as pool:
        futures = {pool.submit(bo.finetune, *args): k for k, args in jobs_args.items()}
        for done in as_completed(futures):
            key, seed = futures[done]
            runs[(key, seed)] = done.result()
            if not quiet:
                print(f"[bakeoff] {key} seed {seed}: {runs[(key, seed)]['seconds']} s (load {_load()})", flush=True)
    return {k: runs[k] for k in jobs_args}


def _evaluate(sr_dir: str, gt_dir: str, columns, label: str) -> dict:
    from sfd_tools.sr.evaluation import evaluate_pairs, match_pairs

    result = evaluate_pairs(match_pairs(sr_dir, gt_dir, "_out"), columns, progress=False, label=label)
    if result["count"] == 0 or any(result["problems"].values()):
        raise ValueError(f"{sr_dir}: evaluation left images out: {result['problems']}")
    return result


def _columns(judge_file: str, with_reference: bool = True):
    """PSNR/SSIM-Y and NIQE (crop border = scale, as evaluate_sr.py) and the judge (zero-shot, 64² tiles)."""
    from sfd_arch.clip_backbone import FrozenCLIP
    from sfd_metric.zero_shot_iqa import ZeroShotQuality
    from sfd_tools.sr.evaluation import niqe_column, psnr_column, ssim_column

    judge = ZeroShotQuality(FrozenCLIP(bo.QUALITY_CLIP_MODEL, judge_file), tile=64)

    def judge_column(sr: np.ndarray, gt: np.ndarray) -> dict:
        return {"judge": judge.score(np.ascontiguousarray(sr[:, :, ::-1]))}  # BGR -> RGB

    cols = [(("psnr",), psnr_column(4)), (("ssim",), ssim_column(4))] if with_reference else []
    return cols + [(("niqe",), niqe_column(4)), (("judge",), judge_column)]


def _hr_as_output(gt_dir: str, out_dir: str) -> str:
    """The HR crops named like outputs, so HR is scored (NIQE, judge) exactly as the methods are."""
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(gt_dir)):
        shutil.copyfile(os.path.join(gt_dir, name), os.path.join(out_dir, f"{os.path.splitext(name)[0]}_out.png"))
    return out_dir


def _clips(out_dir: str, clip_pretrained: str | None, judge_pretrained: str | None, quick: bool) -> dict:
    """{"quality", "random", "judge"} weight files and what the judge is."""
    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config
    from sfd_arch.clip_provenance import prepare_tiny_clip
    from sfd_lab.checks.quality_clip import cached_quality_clip
    from sfd_utils.photos import photo_crops

    register_clip_config(TINY_CLIP_CONFIGS)
    quality = clip_pretrained or cached_quality_clip()
    calibration = photo_crops(bo.GENERATOR_TRAIN_PHOTOS, 64, 96)[:64]
    random_file = prepare_tiny_clip(out_dir, bo.QUALITY_CLIP_MODEL, calibration)
    if judge_pretrained:
        judge, what = judge_pretrained, f"given file {judge_pretrained}"
    elif quick:
        judge, what = quality, "QUICK REHEARSAL: the contestants' own quality CLIP (not independent)"
    else:
        s = judge_settings()
        judge = cached_quality_clip(s)
        what = (
            f"quality-aware tiny CLIP trained with seed {s.seed} on {', '.join(s.photos)} "
            f"({s.steps} steps; the contestants' CLIP: seed 0 on those and the six grey photos)"
        )
    return {"quality": quality, "random": random_file, "judge": judge, "judge_description": what}


def _ranking(runs: dict, clips: dict, out_dir: str, quick: bool) -> dict:
    """SFD-IQA ranking reports: the SFD GAN runs' discriminators (every seed) and one trained against
    a fixed bicubic generator with the same CLIP; NIQE scored once (the same images every time)."""
    from sfd_tools.iqa.ranking import run_ranking_report, train_ranking_discriminator

    stride = QUICK["ranking_stride"] if quick else 128
    reports = {}
    for i, (seed, run) in enumerate(sorted(runs.items())):
        training = {"run": f"SFD GAN run (contestant sfd, seed {seed})", "iters": run["iters"], "tile": run["gt_size"]}
        path = run_ranking_report(
            run["net_d"], None, os.path.join(out_dir, "ranking", f"sfd-seed{seed}"), crop_stride=stride,
            niqe=i == 0, speed=False, training=training, progress=False,
        )  # fmt: skip
        reports[f"sfd-seed{seed}"] = path
    fixed = dict(FIXED_D, iters=QUICK["fixed_d_iters"]) if quick else dict(FIXED_D)
    folder = os.path.join(out_dir, "ranking", "fixed_bicubic")
    facts = train_ranking_discriminator(
        folder, fixed["iters"], fixed["batch"], fixed["crop"], bo.QUALITY_CLIP_MODEL, clips["quality"]
    )
    reports["fixed_bicubic"] = run_ranking_report(
        facts["checkpoint"], None, folder, tile=fixed["crop"], crop_stride=stride, niqe=False, speed=False,
        training=facts, progress=False,
    )  # fmt: skip
    out = {}
    for name, path in reports.items():
        with open(os.path.join(os.path.dirname(path), "report.json"), encoding="utf-8") as f:
            out[name] = json.load(f)
    return out


def run_bakeoff(
    out_dir: str = "results/bakeoff",
    settings: bo.BakeoffSettings | None = None,
    quick: bool = False,
    data_root: str = "datasets/demo_sr",
    clip_pretrained: str | None = None,
    judge_pretrained: str | None = None,
    results_dir: str | None = None,
    command: str | None = None,
    quiet: bool = False,
    jobs: int = 1,
) -> dict:
    """The whole bake-off; writes ``out_dir/report.{md,json}``, ``pd.png`` and ``montage.png`` (and, with
    ``results_dir``, copies named ``bakeoff-<date>``); returns the report dict. ``jobs`` > 1 runs the
    fine-tunings in that many worker processes with one torch thread each (every run is seeded on its
    own, so the order does not matter)."""
    from sfd_lab.bench.core import quiet_basicsr
    from sfd_tools.demo.data import DEMO_SETTINGS, demo_data_ready, prepare_demo_sr

    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if settings is None:
        settings = bo.BakeoffSettings(**QUICK["settings"]) if quick else bo.BakeoffSettings()
    os.makedirs(out_dir, exist_ok=True)
    phases = _Phases(quiet)
    started, load_start = time.time(), _load()
    data_settings = dict(DEMO_SETTINGS, **(QUICK["data"] if quick else {}))
    if quick:
        data_root = os.path.join(out_dir, "data")
    if not demo_data_ready(data_root, data_settings):
        phases.run("data", prepare_demo_sr, data_root, **data_settings)
    gt_dir = os.path.join(data_root, "val", "hr")
    with quiet_basicsr():
        clips = phases.run("CLIPs", _clips, out_dir, clip_pretrained, judge_pretrained, quick)
        judge_facts = None
        if not quick:
            from sfd_lab.checks.quality_clip import evaluate_zero_shot

            judge_facts = phases.run("judge zero-shot check", evaluate_zero_shot, clips["judge"], bo.QUALITY_CLIP_MODEL)
        stage1 = phases.run("stage 1 (L1)", bo.train_stage1, data_root, out_dir, settings.stage1_iters)
        sr_dirs = bo.stage1_outputs(stage1["checkpoint"], data_root, os.path.join(out_dir, "sr"))
        sr_dirs["hr"] = _hr_as_output(gt_dir, os.path.join(out_dir, "sr", "hr"))
        jobs_args = {
            (key, seed): (key, seed, settings, clips, stage1["checkpoint"], data_root, out_dir)
            for seed in settings.seeds
            for key in settings.contestants
        }
        if jobs > 1:
            label = f"fine-tuning ({len(jobs_args)} runs, {jobs} worker processes of 1 thread)"
            runs = phases.run(label, _finetune_parallel, jobs_args, jobs, quiet)
        else:
            runs = {k: phases.run(f"{k[0]} seed {k[1]}", bo.finetune, *args) for k, args in jobs_args.items()}

        def evaluate_all() -> dict:
            columns = _columns(clips["judge"])
            evals = {
                ref: _evaluate(sr_dirs[ref], gt_dir, columns if ref != "hr" else columns[2:], ref) for ref in REFERENCES
            }
            for (key, seed), run in runs.items():
                evals[(key, seed)] = _evaluate(run["sr_dir"], gt_dir, columns, f"{key}-seed{seed}")
            return evals

        evals = phases.run("evaluation", evaluate_all)
        sfd_runs = {
            seed: {**runs[("sfd", seed)], "iters": settings.iters, "gt_size": settings.gt_size}
            for seed in settings.seeds
            if ("sfd", seed) in runs
        }
        ranking = phases.run("SFD-IQA ranking", _ranking, sfd_runs, clips, out_dir, quick) if sfd_runs else {}

    summary = aggregate(evals, settings)
    plot = plot_bakeoff_pd(summary, os.path.join(out_dir, "pd.png"), quick)
    picture = montage(
        {ref: sr_dirs[ref] for ref in REFERENCES},
        {key: runs[(key, settings.seeds[0])]["sr_dir"] for key in settings.contestants},
        os.path.join(out_dir, "montage.png"),
    )
    report = {
        "title": "Bake-off: one stage-1 generator fine-tuned against seven discriminators",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "command": command or "python scripts/bakeoff.py" + (" --quick" if quick else ""),
        "machine": {**_machine(), "jobs": jobs, **({"worker_torch_threads": 1} if jobs > 1 else {})},
        "load_start": load_start,
        "load_end": _load(),
        "wall_s": round(time.time() - started, 1),
        "phases": phases.rows,
        "settings": dataclasses.asdict(settings),
        "stage2_recipe": os.path.relpath(bo.STAGE2_RECIPE, bo.ROOT),
        "data": {"root": data_root, **data_settings, "train_photos": list(bo.GENERATOR_TRAIN_PHOTOS)},
        "eval_photos": list(bo.EVAL_PHOTOS),
        "clips": {**clips, **{f"{k}_sha256": sha256_file(clips[k]) for k in ("quality", "random", "judge")}},
        "judge_zero_shot_heldout": judge_facts,
        "stage1": stage1,
        "contestants": {
            key: {
                **dataclasses.asdict(bo.CONTESTANTS[key]),
                "runs": {
                    str(seed): {k: v for k, v in runs[(key, seed)].items() if k not in ("curve", "contestant")}
                    | {"final_log": runs[(key, seed)]["curve"][-1]}
                    for seed in settings.seeds
                },
            }
            for key in settings.contestants
        },
        "summary": summary,
        "ranking": ranking_summary(ranking),
        "files": {"pd_plot": plot, "montage": picture},
        "measures": MEASURES,
    }
    return _write(report, out_dir, results_dir)


def _write(report: dict, out_dir: str, results_dir: str | None) -> dict:
    json_path, md_path = os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.md")
    names = {"pd_plot": "pd.png", "montage": "montage.png"}
    if results_dir:
        stem = f"bakeoff-{report['date']}" + ("-quick" if report["quick"] else "")
        os.makedirs(results_dir, exist_ok=True)
        for key, suffix in (("pd_plot", "-pd.png"), ("montage", "-montage.png")):
            shutil.copyfile(report["files"][key], os.path.join(results_dir, stem + suffix))
            names[key] = stem + suffix
        report["files"]["results"] = {"md": f"{stem}.md", "json": f"{stem}.json", **{k: names[k] for k in names}}
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, default=str)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(render_markdown(report, {"pd_plot": "pd.png", "montage": "montage.png"}))
    if results_dir:
        files = report["files"]["results"]
        shutil.copyfile(json_path, os.path.join(results_dir, files["json"]))
        with open(os.path.join(results_dir, files["md"]), "w", encoding="utf-8") as f:
            f.write(render_markdown(report, names))
    report["files"].update({"report_md": md_path, "report_json": json_path})
    return report


def run_bakeoff_cli(a) -> int:
    """``scripts/bakeoff.py``: the namespace of :func:`sfd_tools.sr.cli.bakeoff_parser`."""
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    base = dict(QUICK["settings"]) if a.quick else {}
    given = {
        "seeds": tuple(a.seeds) if a.seeds else None,
        "iters": a.iters,
        "batch": a.batch,
        "gan_weight": a.gan_weight,
        "d_lr": a.d_lr,
        "d_width": a.d_width,
        "contestants": tuple(a.contestants) if a.contestants else None,
    }
    settings = bo.BakeoffSettings(**{**base, **{k: v for k, v in given.items() if v is not None}})
    from sfd_lab.bakeoff.cli import bakeoff_command

    report = run_bakeoff(
        a.out,
        settings,
        a.quick,
        a.data,
        a.clip_pretrained,
        a.judge_pretrained,
        a.results_dir,
        bakeoff_command(a),
        jobs=a.jobs,
    )
    with open(report["files"]["report_md"], encoding="utf-8") as f:
        print(f.read())
    print(f"report: {report['files']['report_md']} ; plot: {report['files']['pd_plot']}")
    if a.results_dir:
        print(f"results: {os.path.join(a.results_dir, report['files']['results']['md'])}")
    return 0
