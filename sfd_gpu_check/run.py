"""The GPU check (issue 18): every CUDA path and GPU number of the project in one run, inside a budget.

``scripts/gpu_check.sh`` sets up (wheels carried in ``.whl/``) and calls ``run`` here, which runs
each step as its own process with a time limit taken from what is left of the budget, records a
failing or timed-out step and goes on with the next one, then writes
``<out>/gpu-<date>.{json,md}`` and prints a summary. Steps:

1. ``env``: torch / CUDA / device / package versions;
2. ``cuda_tests``: ``pytest -m cuda tests/test_cuda.py`` (bf16 autocast and fp16 GradScaler SFD
   steps, SFDRealModel next to RealESRGANModel);
3. ``gan_step``: the benchmark's GPU profile, row ``gan_step`` (batch 16, 256², bf16; SFD step time
   and peak memory vs RealESRGANModel + UNetDiscriminatorSN, RN50 and ViT-B/16);
4. ``iqa``: SFD-IQA throughput at 512² in bf16 (row ``iqa``; target >= 500 images/s);
5. ``clip_full``: full-size RN50 / ViT-B-16 / ViT-L-14 forward+backward to the input in bf16 with
   peak memory (random weights);
6. ``ddp``: two processes through ``torchrun`` and ``basicsr/train.py --launcher pytorch`` on a tiny
   recipe (NCCL; only when two GPUs exist);
7. ``bench_extra``: rows ``clip_cost``, ``precision`` and ``components`` (the step piece by piece)
   of the GPU profile, with what time is left.

``--mode cpu`` is the rehearsal: the same steps, commands and file handling at tiny sizes on CPU
(smoke benchmark profile, tiny CLIP configs, DDP with gloo), so the first GPU run cannot fail on
a typo. A test runs it.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time

from sfd_gpu_check.report import summarise_benchmark, summary_lines, to_markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = "sfd-basicsr-gpu-check/1"
STEPS = ("env", "cuda_tests", "gan_step", "iqa", "clip_full", "ddp", "bench_extra")
# Seconds each step may take at most (less when the budget has less left).
STEP_LIMITS = {"env": 60, "cuda_tests": 150, "gan_step": 180, "iqa": 150, "clip_full": 120, "ddp": 150}
SIZES = {
    "gpu": {
        "bench_profile": "gpu",
        "clip_models": ("RN50", "ViT-B-16", "ViT-L-14"),
        "clip_size": 256,
        "clip_batch": 16,
        "clip_repeats": 5,
        "amp": "bf16",
        "ddp_network": "tiny",
    },
    "cpu": {
        "bench_profile": "smoke",
        "clip_models": ("tiny-rn", "tiny-vit"),
        "clip_size": 64,
        "clip_batch": 2,
        "clip_repeats": 2,
        "amp": "bf16",
        "ddp_network": "tiny",
    },
}
ENV_CODE = r"""
import importlib.metadata as md, json, platform, torch
from sfd_utils.compat import install
install()  # the torchvision shim basicsr 1.4.2 needs (no installed start-up hook on a bare machine)
def v(d):
    try:
        return md.version(d)
    except md.PackageNotFoundError:
        return None
mods = {}
for m in ("basicsr", "open_clip", "ftfy", "cv2", "skimage", "yaml", "pytest"):
    try:
        __import__(m)
        mods[m] = "ok"
    except Exception as err:
        mods[m] = f"{type(err).__name__}: {err}"
cuda = torch.cuda.is_available()
print(json.dumps({
    "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
    "cuda_available": cuda, "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
    "nccl": bool(torch.distributed.is_nccl_available()) if torch.distributed.is_available() else False,
    "versions": {d: v(d) for d in ("torchvision", "basicsr", "open_clip_torch", "numpy", "opencv-python-headless")},
    "imports": mods,
}))
"""


def gpu_count() -> int:
    """GPUs listed by ``nvidia-smi -L`` (0 without the tool)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runner:
    """Runs steps as processes inside one budget; each step's output goes to ``<out>/logs/<step>.log``."""

    def __init__(self, out: str, budget_s: float, mode: str) -> None:
        self.out, self.mode = out, mode  # ``out``: the work folder (logs, step outputs)
        self.deadline = time.time() + budget_s
        self.logs = os.path.join(out, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        path = self.env.get("PYTHONPATH", "")
        if ROOT not in path.split(os.pathsep):  # the repository's packages first, as the shell script sets
            self.env["PYTHONPATH"] = ROOT + (os.pathsep + path if path else "")
        if mode == "cpu":
            self.env["OMP_NUM_THREADS"] = "1"  # tiny sizes: thread start-up would dominate
            self.env["CUDA_VISIBLE_DEVICES"] = ""

    def left(self) -> float:
        return self.deadline - time.time()

    def run(self, name: str, cmd: list[str], limit: float, cwd: str = ROOT) -> dict:
        """Run ``cmd`` with a timeout of min(limit, budget left); never raises."""
        timeout = min(limit, self.left())
        log = os.path.join(self.logs, f"{name}.log")
        record = {"step": name, "command": " ".join(cmd), "log": os.path.relpath(log, self.out), "limit_s": timeout}
        if timeout < 5:
            return {**record, "status": "skipped", "reason": "no time left in the budget", "wall_s": 0.0}
        start = time.time()
        print(f"[gpu_check] {name}: {record['command']} (limit {timeout:.0f} s)", flush=True)
        with open(log, "w") as f:
            try:
                proc = subprocess.run(
                    cmd, cwd=cwd, env=self.env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, text=True
                )
                rc = proc.returncode
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                rc, status = None, "timeout"
            except OSError as err:
                f.write(f"could not start: {err}\n")
                rc, status = None, "failed"
        record.update(status=status, rc=rc, wall_s=round(time.time() - start, 1))
        if status != "ok":
            with open(log) as f:
                record["tail"] = f.read()[-3000:]
        print(f"[gpu_check] {name}: {status} in {record['wall_s']} s", flush=True)
        return record


# -- step bodies ----------------------------------------------------------------------------------


def _bench_step(runner: Runner, name: str, profile: str, rows: str, limit: float) -> dict:
    folder = os.path.join(runner.out, name)
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"), "--profile", profile, "--rows", rows]
    record = runner.run(name, cmd + ["--out", folder], limit)
    files = sorted(glob.glob(os.path.join(folder, "*.json")))
    if record["status"] == "ok" and not files:
        record.update(status="failed", reason="the benchmark wrote no JSON")
    if files:
        with open(files[-1]) as f:
            bench = json.load(f)
        record["result"] = summarise_benchmark(bench)
        record["files"] = [os.path.relpath(p, runner.out) for p in sorted(glob.glob(os.path.join(folder, "*")))]
    return record


def _clip_step(runner: Runner, sizes: dict) -> dict:
    path = os.path.join(runner.out, "clip_full.json")
    cmd = [
        sys.executable,
        "-m",
        "sfd_gpu_check.run",
        "clip",
        "--models",
        ",".join(sizes["clip_models"]),
        "--size",
        str(sizes["clip_size"]),
        "--batch",
        str(sizes["clip_batch"]),
        "--repeats",
        str(sizes["clip_repeats"]),
        "--amp",
        sizes["amp"],
        "--json",
        path,
    ]
    record = runner.run("clip_full", cmd, STEP_LIMITS["clip_full"])
    if os.path.isfile(path):
        with open(path) as f:
            record["result"] = json.load(f)
        if any(r.get("error") for r in record["result"]["models"]):
            record["status"] = "failed"
    elif record["status"] == "ok":
        record.update(status="failed", reason="no clip_full.json written")
    return record


def _ddp_step(runner: Runner, gpus: int) -> dict:
    if runner.mode == "gpu" and gpus < 2:
        return {
            "step": "ddp",
            "status": "skipped",
            "reason": f"{gpus} GPU(s): the DDP smoke run needs 2",
            "wall_s": 0.0,
        }
    if runner.left() < 5:
        return {"step": "ddp", "status": "skipped", "reason": "no time left in the budget", "wall_s": 0.0}
    folder = os.path.join(runner.out, "ddp")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        recipe = prepare_ddp_run(folder, backend="nccl" if runner.mode == "gpu" else "gloo")
    except Exception as err:  # a broken preparation is this step's failure, not the check's
        return {"step": "ddp", "status": "failed", "reason": f"{type(err).__name__}: {err}", "wall_s": 0.0}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        os.path.join("basicsr", "train.py"),
        "-opt",
        recipe,
        "--launcher",
        "pytorch",
    ]
    record = runner.run("ddp", cmd, STEP_LIMITS["ddp"], cwd=folder)
    if record["status"] == "skipped":
        return record
    with open(os.path.join(runner.out, record["log"])) as f:
        log = f.read()
    checkpoint = os.path.join(folder, "experiments", "ddp_smoke", "models", "net_g_2.pth")
    record["result"] = {
        "world_size_2": "world_size: 2" in log,
        "checkpoint": os.path.isfile(checkpoint),
        "backend": "nccl" if runner.mode == "gpu" else "gloo",
    }
    if record["status"] == "ok" and not (record["result"]["world_size_2"] and record["result"]["checkpoint"]):
        record.update(status="failed", reason="training ended without world_size 2 or without net_g_2.pth")
    return record


def prepare_ddp_run(folder: str, backend: str) -> str:
    """A folder laid out like the repository (``basicsr/train.py``), a tiny paired data set from the
    photos scikit-image ships, and a 2-iteration recipe with a tiny random CLIP; returns the recipe."""
    import cv2
    import yaml

    from sfd_utils.photos import bicubic_down, load_photo, tiles

    os.makedirs(os.path.join(folder, "basicsr"))
    shutil.copy(os.path.join(ROOT, "basicsr", "train.py"), os.path.join(folder, "basicsr", "train.py"))
    data = os.path.join(folder, "data")
    for sub in ("hr", "lr"):
        os.makedirs(os.path.join(data, sub))
    for name in ("astronaut", "coffee"):
        for i, crop in enumerate(tiles(load_photo(name), 64, 128)[:3]):
            bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
            cv2.imwrite(os.path.join(data, "hr", f"{name}_{i}.png"), bgr)
            cv2.imwrite(
                os.path.join(data, "lr", f"{name}_{i}.png"), cv2.cvtColor(bicubic_down(crop, 4), cv2.COLOR_RGB2BGR)
            )
    with open(os.path.join(ROOT, "options", "demo_SFD_cpu.yml")) as f:
        opt = yaml.safe_load(f)
    opt["name"] = "ddp_smoke"
    for split in ("train", "val"):
        opt["datasets"][split].update(dataroot_gt=os.path.join(data, "hr"), dataroot_lq=os.path.join(data, "lr"))
    opt["datasets"]["train"].update(gt_size=64, batch_size_per_gpu=2, num_worker_per_gpu=0)
    opt["network_g"].update(num_feat=8, num_block=1, num_grow_ch=8)
    opt["network_d"].update(
        clip_model="tiny-rn",
        clip_config=os.path.join(ROOT, "sfd_arch", "clip_configs"),
        clip_pretrained=None,
        feat_mid_channels=16,
        n_ctx=4,
    )
    opt["path"]["pretrain_network_g"] = None
    opt["train"].pop("perceptual_opt", None)
    opt["train"]["total_iter"] = 2
    opt["val"]["val_freq"] = 2
    opt["logger"].update(save_checkpoint_freq=2, print_freq=1, use_tb_logger=False)
    opt["dist_params"] = {"backend": backend}
    recipe = os.path.join(folder, "ddp_smoke.yml")
    with open(recipe, "w") as f:
        yaml.safe_dump(opt, f)
    return recipe


# -- full-size CLIP -------------------------------------------------------------------------------


def clip_forward_backward(models: list[str], size: int, batch: int, repeats: int, amp: str | None) -> dict:
    """Frozen CLIP forward + backward to the input (the G step's CLIP pass), random weights, per model:
    median / min s per batch, images/s, peak memory above the weights, weight size and dtype."""
    import statistics

    import open_clip
    import torch

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, FrozenCLIP
    from sfd_bench.core import PeakMemory, sync_device
    from sfd_bench.steps import frozen_weights

    open_clip.add_model_config(TINY_CLIP_CONFIGS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    rows = []
    for name in models:
        row: dict = {"model": name, "size": size, "batch": batch, "amp": amp or "fp32"}
        try:
            torch.manual_seed(0)
            clip = FrozenCLIP(name, None).to(device)
            row["weights_mb"], row["weights_dtype"] = frozen_weights(clip.clip)
            x = torch.rand(batch, 3, size, size, device=device)
            mem = PeakMemory(device)
            mem.start()
            mem.reset()

            def step(clip=clip, x=x):
                img = x.clone().requires_grad_(True)
                with torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False):
                    out = clip(img)
                    loss = sum(m.float().mean() for m in out.middle) + out.embedding.float().sum()
                loss.backward()
                return img.grad

            times = []
            for i in range(repeats + 1):
                sync_device(device)
                t0 = time.perf_counter()
                grad = step()
                sync_device(device)
                if i:
                    times.append(time.perf_counter() - t0)
            row["grad_finite"] = bool(torch.isfinite(grad).all())
            row["peak_mem_mb"] = mem.peak_mb()
            row["median_s"], row["min_s"] = statistics.median(times), min(times)
            row["images_per_s"] = batch / row["median_s"]
            del clip, x
            if device.type == "cuda":
                torch.cuda.empty_cache()
        except Exception as err:  # one model failing (e.g. out of memory) must not lose the others
            row["error"] = f"{type(err).__name__}: {err}"[:500]
        rows.append(row)
        print(json.dumps(row), flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "torch": torch.__version__, "models": rows}


def run_check(args) -> int:
    """``gpu_check.sh``'s main part: the steps, the files and the summary; 0 when no step failed.

    Writes ``<out>/gpu-<date>.json/.md`` (CPU rehearsal: ``gpu-check-cpu-rehearsal-<date>``) and the
    benchmark steps' full results as ``<stem>-<step>.json/.md``; logs and step outputs go to ``args.work``.
    """
    sizes = SIZES[args.mode]
    os.makedirs(args.out, exist_ok=True)
    work = args.work or os.path.join(args.out, "gpu-check-work")
    os.makedirs(work, exist_ok=True)
    started = time.time()
    runner = Runner(work, args.budget, args.mode)
    gpus = gpu_count()
    steps = []
    record = runner.run("env", [sys.executable, "-c", ENV_CODE], STEP_LIMITS["env"])
    if record["status"] == "ok":
        with open(os.path.join(work, record["log"])) as f:
            lines = [line for line in f.read().splitlines() if line.startswith("{")]
        record["result"] = json.loads(lines[-1]) if lines else None
        if args.mode == "gpu" and record["result"] and not record["result"]["cuda_available"]:
            record.update(status="failed", reason="torch sees no CUDA device (use --cpu for the rehearsal)")
    steps.append(record)
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests/test_cuda.py"]
    steps.append(runner.run("cuda_tests", pytest_cmd, STEP_LIMITS["cuda_tests"]))
    steps.append(_bench_step(runner, "gan_step", sizes["bench_profile"], "gan_step", STEP_LIMITS["gan_step"]))
    steps.append(_bench_step(runner, "iqa", sizes["bench_profile"], "iqa", STEP_LIMITS["iqa"]))
    steps.append(_clip_step(runner, sizes))
    steps.append(_ddp_step(runner, gpus))
    extra = "clip_cost,precision,components"
    steps.append(_bench_step(runner, "bench_extra", sizes["bench_profile"], extra, runner.left()))
    env = steps[0].get("result") or {}
    date = datetime.date.today().isoformat()
    report = {
        "schema": SCHEMA,
        "meta": {
            "mode": args.mode,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": args.command or " ".join(sys.argv),
            "device": (env.get("devices") or ["cpu"])[0] if env else None,
            "gpus": gpus,
            "budget_s": args.budget,
            "setup": args.setup,
            "setup_s": args.setup_seconds,
            "sizes": sizes,
            "work": work,
            "wall_s": time.time() - started + (args.setup_seconds or 0),
        },
        "steps": steps,
        "failed": [s["step"] for s in steps if s["status"] in ("failed", "timeout")],
    }
    if args.setup.startswith("failed"):
        report["failed"].insert(0, "setup")
    stem = os.path.join(args.out, f"gpu-{date}" if args.mode == "gpu" else f"gpu-check-cpu-rehearsal-{date}")
    for step in steps:  # each benchmark step's full tables next to the check's own files
        for rel in step.get("files", []):
            ext = os.path.splitext(rel)[1]
            if ext in (".json", ".md"):
                shutil.copy(os.path.join(work, rel), f"{stem}-{step['step']}{ext}")
                step.setdefault("copied", []).append(os.path.basename(f"{stem}-{step['step']}{ext}"))
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(to_markdown(report))
    print("\n".join(summary_lines(report)))
    print(f"wrote {stem}.json and {stem}.md")
    return 1 if report["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    from sfd_gpu_check.cli import gpu_check_parser

    args = gpu_check_parser().parse_args(argv)
    if args.action == "clip":
        amp = None if args.amp == "none" else args.amp
        result = clip_forward_backward(args.models.split(","), args.size, args.batch, args.repeats, amp)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        return 1 if any(r.get("error") for r in result["models"]) else 0
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
