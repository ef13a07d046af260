"""The GPU check's steps: what each runs, and what it keeps of the step's output.

Each function takes the :class:`~sfd_lab.gpu_check.runner.Runner`, the mode's sizes and the step's cap
(seconds), runs one process (group) and returns the step's record (status, wall, log, result).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import sys

from sfd_lab.gpu_check.report import summarise_benchmark, summarise_d_iteration
from sfd_lab.gpu_check.runner import Runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def env_step(runner: Runner, sizes: dict, cap: float) -> dict:
    record = _json_program_step(runner, "env", ["env"], cap)
    if record["status"] == "ok" and runner.mode == "gpu" and not (record.get("result") or {}).get("cuda_available"):
        record.update(status="failed", reason="torch sees no CUDA device (use --cpu for the rehearsal)")
    return record


def cuda_test_files(root: str = ROOT) -> list[str]:
    """The test files holding tests marked ``cuda`` (found by their marker, so new ones are run too)."""
    found = []
    for path in sorted(glob.glob(os.path.join(root, "tests", "test_*.py"))):
        with open(path, encoding="utf-8") as f:
            if "mark.cuda" in f.read():
                found.append(os.path.relpath(path, root))
    return found


def cuda_tests_step(runner: Runner, sizes: dict, cap: float, name: str = "cuda_tests", skip: str = "") -> dict:
    """``pytest -m cuda`` over every test file holding CUDA-marked tests (``skip``: a ``-k`` expression of
    tests not to run here, e.g. those another step ran), each outcome written to the step's JSON."""
    files = cuda_test_files()
    args = ["-q", "-m", "cuda", "-p", "no:cacheprovider", *files] + (["-k", f"not ({skip})"] if skip else [])
    record = _json_program_step(runner, name, ["pytest"], cap, tail=["--", *args])
    if record.get("result") is not None:
        record["result"]["files"] = files
    return record


def bench_step(runner: Runner, name: str, script: str, args: list[str], cap: float) -> dict:
    """``scripts/<script>`` with ``args`` and ``--out <work>/<name>``; keeps the summary of its JSON (the
    newest: a program stopped by SIGTERM writes what it measured last)."""
    folder = os.path.join(runner.out, name)
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, os.path.join(ROOT, "scripts", script), *args, "--out", folder]
    record = runner.run(name, cmd, cap)
    files = sorted(glob.glob(os.path.join(folder, "*.json")), key=os.path.getmtime)
    if record["status"] == "ok" and not files:
        record.update(status="failed", reason=f"{script} wrote no JSON")
    if files:
        bench = _read_json(files[-1])
        if bench is not None:
            summarise = summarise_d_iteration if script == "bench_d_iteration.py" else summarise_benchmark
            record["result"] = summarise(bench)
        record["files"] = [os.path.relpath(p, runner.out) for p in sorted(glob.glob(os.path.join(folder, "*")))]
    return record


def d_iteration_step(runner: Runner, sizes: dict, cap: float) -> dict:
    return bench_step(runner, "d_iteration", "bench_d_iteration.py", ["--profile", sizes["d_profile"]], cap)


def benchmark_rows_step(name: str, rows: str, extra_key: str | None = None):
    def step(runner: Runner, sizes: dict, cap: float) -> dict:
        args = ["--profile", sizes["bench_profile"], "--rows", rows, "--no-trace", *sizes.get(extra_key or "", [])]
        return bench_step(runner, name, "benchmark.py", args, cap)

    return step


def _json_program_step(runner: Runner, name: str, action: list[str], cap: float, tail: list[str] = ()) -> dict:
    """``python -m sfd_lab.gpu_check.run <action> --json <work>/<name>.json <tail>``; the JSON is the result
    (written by the program as it goes, and on SIGTERM: ``json`` names it in the record)."""
    path = os.path.join(runner.out, f"{name}.json")
    if os.path.exists(path):
        os.remove(path)
    cmd = [sys.executable, "-m", "sfd_lab.gpu_check.run", *action, "--json", path, *tail]
    record = runner.run(name, cmd, cap)
    result = _read_json(path)
    if result is not None:
        record["result"], record["json"] = result, os.path.relpath(path, runner.out)
    elif record["status"] == "ok":
        record.update(status="failed", reason=f"no {name}.json written")
    return record


def clip_step(runner: Runner, sizes: dict, cap: float) -> dict:
    action = ["clip", "--models", ",".join(sizes["clip_models"]), "--size", str(sizes["clip_size"])]
    action += ["--batch", str(sizes["clip_batch"]), "--repeats", str(sizes["clip_repeats"]), "--amp", sizes["amp"]]
    record = _json_program_step(runner, "clip_full", action, cap)
    if record.get("result") and any(r.get("error") for r in record["result"]["models"]):
        record["status"] = "failed"
    return record


def csud_step(runner: Runner, sizes: dict, cap: float) -> dict:
    c = sizes["csud"]
    action = ["csud", "--networks", c["networks"], "--size", str(c["size"]), "--batch", str(c["batch"])]
    action += ["--iters", str(c["iters"]), "--amp", sizes["amp"], "--image", str(c["image"]), "--tile", str(c["tile"])]
    record = _json_program_step(runner, "csud", action, cap)
    if record["status"] == "ok" and not (record.get("result") or {}).get("ok"):
        record.update(status="failed", reason="CSUD: a loss was not finite, a network did not train or derain failed")
    return record


# -- DDP: two ranks, on one GPU (gloo) or on the CPU --------------------------------------------------


def prepare_ddp_run(folder: str, mode: str, iters: int) -> str:
    """A tiny paired data set from the photos scikit-image ships and a recipe (tiny random CLIP,
    gloo, ``iters`` iterations; bf16 autocast on a GPU); returns the recipe's path."""
    import cv2
    import yaml

    from sfd_utils.photos import bicubic_down, load_photo, tiles

    data = os.path.join(folder, "data")
    for sub in ("hr", "lr"):
        os.makedirs(os.path.join(data, sub))
    for name in ("astronaut", "coffee"):
        for i, crop in enumerate(tiles(load_photo(name), 64, 128)[:3]):
            cv2.imwrite(os.path.join(data, "hr", f"{name}_{i}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            low = cv2.cvtColor(bicubic_down(crop, 4), cv2.COLOR_RGB2BGR)
            cv2.imwrite(os.path.join(data, "lr", f"{name}_{i}.png"), low)
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
    opt["train"]["total_iter"] = iters
    if mode == "gpu":
        opt["train"]["amp"] = "bf16"
        opt["network_d"]["fast_path"] = "auto"  # CUDA graphs under DDP: the ranks must still agree
    opt["val"]["val_freq"] = iters
    opt["logger"].update(save_checkpoint_freq=iters, print_freq=1, use_tb_logger=False)
    # NCCL refuses two ranks on one device; gloo carries CUDA tensors for DDP's collectives.
    opt["dist_params"] = {"backend": "gloo"}
    recipe = os.path.join(folder, "ddp_smoke.yml")
    with open(recipe, "w") as f:
        yaml.safe_dump(opt, f)
    return recipe


def ddp_verdict(ranks: list[dict | None], mode: str) -> dict:
    """What the ranks' digests say: equal heads/prompts (net_d parameters) and generators, trained."""
    present = [r for r in ranks if r and "final" in r]  # a rank stopped by SIGTERM reports no networks
    out = {"ranks_reported": len(present), "backend": "gloo"}
    stopped = [r["rank"] for r in ranks if r and r.get("status") == "stopped"]
    if stopped:
        out["ranks_stopped"] = stopped
    if len(present) != 2:
        return {**out, "ok": False}
    a, b = present
    out.update(
        world_size=a["world_size"],
        device=a["final"]["net_d"]["device"],
        net_d_params_equal=a["final"]["net_d"]["params"] == b["final"]["net_d"]["params"],
        net_g_params_equal=a["final"]["net_g"]["params"] == b["final"]["net_g"]["params"],
        net_d_buffers_equal=a["final"]["net_d"]["buffers"] == b["final"]["net_d"]["buffers"],
        net_d_trained=a["final"]["net_d"]["params"] != a["initial"]["net_d"]["params"],
    )
    on_device = out["device"].startswith("cuda") if mode == "gpu" else out["device"] == "cpu"
    out["ok"] = bool(
        out["world_size"] == 2
        and on_device
        and out["net_d_params_equal"]
        and out["net_g_params_equal"]
        and out["net_d_trained"]
    )
    return out


def ddp_step(runner: Runner, sizes: dict, cap: float) -> dict:
    if runner.limit(cap) < 5:
        return runner.skipped("ddp")
    folder = os.path.join(runner.out, "ddp")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    try:
        recipe = prepare_ddp_run(folder, runner.mode, sizes["ddp_iters"])
    except Exception as err:  # a broken preparation is this step's failure, not the check's
        return {"step": "ddp", "status": "failed", "reason": f"{type(err).__name__}: {err}", "wall_s": 0.0}
    probe = os.path.join(folder, "probe")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    cmd += ["-m", "sfd_lab.gpu_check.ddp_probe", "--probe-out", probe, "-opt", recipe, "--launcher", "pytorch"]
    record = runner.run("ddp", cmd, cap, cwd=folder)
    if record["status"] == "skipped":
        return record
    ranks = [_read_json(os.path.join(probe, f"rank{r}.json")) for r in (0, 1)]
    record["result"] = ddp_verdict(ranks, runner.mode)
    if record["status"] == "ok" and not record["result"]["ok"]:
        record.update(status="failed", reason="the ranks' networks differ, did not train, or are on the wrong device")
    return record
