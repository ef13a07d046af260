"""The GPU check (issues 18, 21): its CPU rehearsal runs every step of scripts/gpu_check.sh at tiny sizes,
including installing carried wheels, so a GPU run cannot fail on a typo; failing, timed-out and
budget-skipped steps are recorded without stopping the others; a step past its limit is asked to stop
(SIGTERM) before it is killed with its children; the report lists every target of issue 21."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import pytest
from conftest import ROOT

from sfd_lab.gpu_check import runner as runner_module
from sfd_lab.gpu_check.report import summarise_benchmark, summarise_d_iteration, targets_of
from sfd_lab.gpu_check.run import PLAN, STEPS
from sfd_lab.gpu_check.runner import Runner
from sfd_lab.gpu_check.steps import cuda_test_files, ddp_verdict

SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")


def make_wheel(folder, name: str = "sfd_gpu_check_probe", version: str = "1.0") -> str:
    """A minimal valid wheel holding ``<name>.py`` (VALUE = 42), to rehearse the wheel install."""
    files = {
        f"{name}.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
        z.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def run_script(tmp_path, *extra: str, script: str = SCRIPT, pythonpath: str | None = None) -> tuple[int, str]:
    cmd = ["bash", script, "--cpu", "--python", sys.executable, "--out", str(tmp_path / "out")]
    cmd += ["--work", str(tmp_path / "work"), "--site", str(tmp_path / "site"), *extra]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=2400)
    return out.returncode, out.stdout + out.stderr


def report_file(tmp_path, ext: str) -> str:
    """The check's own report (not a step's copied benchmark file) in ``<tmp>/out``."""
    pattern = re.compile(r"gpu-check-cpu-rehearsal-\d{4}-\d{2}-\d{2}" + re.escape(ext) + "$")
    (name,) = [f for f in os.listdir(tmp_path / "out") if pattern.fullmatch(f)]
    return str(tmp_path / "out" / name)


def report_of(tmp_path) -> dict:
    with open(report_file(tmp_path, ".json")) as f:
        return json.load(f)


def test_cpu_rehearsal_runs_every_step(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    make_wheel(str(wheels))
    rc, log = run_script(tmp_path, "--wheels", str(wheels))
    assert rc == 0, log[-6000:]
    assert (tmp_path / "site" / "sfd_gpu_check_probe.py").is_file()  # the carried wheel was installed
    report = report_of(tmp_path)
    assert report["meta"]["mode"] == "cpu" and report["meta"]["setup"].startswith("ok: 1 wheels installed")
    steps = {s["step"]: s for s in report["steps"]}
    assert tuple(steps) == STEPS and report["failed"] == [] and report["not_finished"] == []
    assert all(s["status"] == "ok" for s in steps.values()), {k: s.get("tail") for k, s in steps.items()}
    assert STEPS[:4] == ("env", "d_iteration", "gan_step", "iqa")  # the numbers first
    assert steps["env"]["result"]["imports"]["basicsr"] == "ok"
    d = steps["d_iteration"]["result"]["d_iteration"]
    assert {"floor", "unet_realesrgan", "sfd_tiny-rn_eager", "sfd_tiny-rn_srgan_eager", "sfd_tiny-vit_eager"} == set(
        d["configs"]
    )
    assert d["configs"]["sfd_tiny-rn_eager"]["compute_ops"] > d["configs"]["floor"]["compute_ops"] > 0
    gan = steps["gan_step"]["result"]["gan_step"]
    assert {"realesrgan_unet", "sfd_tiny-rn_eager", "sfd_tiny-vit_eager"} <= set(gan["configs"])
    assert gan["configs"]["sfd_tiny-rn_eager"]["frozen_clip_dtype"] == "float32"
    assert steps["iqa"]["result"]["iqa"]["images_per_s"]
    comps = steps["components"]["result"]["components"]
    assert set(comps["ms_and_share"]) == {"sfd_tiny-rn_eager", "realesrgan_unet"}  # --clip-models tiny-rn
    assert "CLIP SR fwd+bwd [tiny-rn]" in comps["ms_and_share"]["sfd_tiny-rn_eager"]
    tests = steps["cuda_tests"]["result"]
    assert "tests/test_cuda.py" in tests["files"] and tests["skipped"] > 0 and tests["failed"] == 0  # no GPU here
    clip = steps["clip_full"]["result"]["models"]
    assert [r["model"] for r in clip] == ["tiny-rn", "tiny-vit"]
    assert all(r["grad_finite"] and r["amp"] == "bf16" and r["median_s"] > 0 for r in clip)
    ddp = steps["ddp"]["result"]
    assert ddp["ok"] and ddp["world_size"] == 2 and ddp["device"] == "cpu" and ddp["backend"] == "gloo"
    assert ddp["net_d_params_equal"] and ddp["net_g_params_equal"] and ddp["net_d_trained"]
    csud = steps["csud"]["result"]
    assert csud["ok"] and csud["amp"] == "bf16" and all(csud["weights_moved"].values())
    assert csud["derain"]["returncode"] == 0 and csud["derain"]["output"] == [192, 192, 3]
    out = sorted(os.listdir(tmp_path / "out"))
    for step in ("d_iteration", "gan_step", "iqa", "components"):  # each benchmark's full tables beside the report
        assert any(f.endswith(f"-{step}.md") for f in out) and any(f.endswith(f"-{step}.json") for f in out)
    whats = [t["what"] for t in report["targets"]]
    for needle in (
        "d_iteration: sfd_tiny-rn_eager: wall / GPU time",
        "d_iteration: sfd_tiny-rn_eager: wall vs unet_realesrgan",
        "d_iteration: sfd_tiny-rn_eager: kernel launches per iteration",
        "gan_step: sfd_tiny-rn_eager: step time vs realesrgan_unet",
        "gan_step: sfd_tiny-vit_eager: peak memory vs realesrgan_unet",
        "gan_step: realesrgan_unet: spread of the repeats",
        "every CUDA test passes",
        "the whole check, setup included (s)",
    ):
        assert needle in whats, needle
    md = open(report_file(tmp_path, ".md")).read()
    assert "CPU rehearsal" in md and "DDP, two ranks (gloo)" in md and "Full-size CLIP" in md
    assert "## Targets (issue 21)" in md and "CSUD (tiny networks" in md
    assert "GPU check (cpu)" in log and "Targets (issue 21):" in log  # the printed summary


def test_broken_wheel_and_no_budget_are_recorded(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    (wheels / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    rc, log = run_script(tmp_path, "--wheels", str(wheels), "--budget", "0")
    assert rc == 1, log[-3000:]
    report = report_of(tmp_path)
    assert report["meta"]["setup"].startswith("failed: pip install")
    assert report["failed"] == ["setup"]
    assert all(s["status"] == "skipped" and s["reason"] == "no time left in the budget" for s in report["steps"])


def test_runner_records_failures_and_timeouts(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "GRACE_S", 2.0)
    runner = Runner(str(tmp_path), budget_s=120, mode="cpu", root=ROOT)
    bad = runner.run("bad", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], 30)
    assert bad["status"] == "failed" and bad["rc"] == 3 and "boom" in bad["tail"]
    slow = runner.run("slow", [sys.executable, "-c", "import time; time.sleep(30)"], 6)
    assert slow["status"] == "timeout" and slow["rc"] is None and slow["wall_s"] < 20
    good = runner.run("good", [sys.executable, "-c", "print('fine')"], 30)
    assert good["status"] == "ok" and open(tmp_path / good["log"]).read() == "fine\n"
    runner.deadline = 0
    assert runner.run("late", [sys.executable, "-c", "pass"], 30)["status"] == "skipped"


STOPPABLE = """
import signal, sys, time
def stop(signum, frame):
    open(sys.argv[1], "w").write("partial results")
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


def test_a_step_past_its_limit_is_asked_to_stop_then_killed_with_its_children(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "GRACE_S", 2.0)
    runner = Runner(str(tmp_path), budget_s=120, mode="cpu", root=ROOT)
    partial = tmp_path / "partial.txt"
    rec = runner.run("stoppable", [sys.executable, "-c", STOPPABLE, str(partial)], 6)
    assert rec["status"] == "timeout" and partial.read_text() == "partial results"  # SIGTERM first
    pid_file = tmp_path / "child.pid"
    rec = runner.run("stubborn", [sys.executable, "-c", STUBBORN, str(pid_file)], 6)
    assert rec["status"] == "timeout" and rec["wall_s"] < 6 + 2 + 10
    pid = int(pid_file.read_text())
    for _ in range(50):  # the grandchild went with the group (it may linger a moment as a zombie)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":
                break
        time.sleep(0.1)
    else:
        raise AssertionError(f"process {pid} of the killed step is still running")


def test_later_steps_keep_their_floor(tmp_path):
    runner = Runner(str(tmp_path), budget_s=100, mode="cpu", root=ROOT)
    runner.floors_after = 70
    assert 25 < runner.limit(80) <= 30  # 100 s left, 70 s kept for the steps after this one
    runner.floors_after = 0
    assert runner.limit(80) == 80
    scale = 1
    floors = sum(f for *_, f in PLAN)
    assert floors * scale < 360 - 20  # the steps' minimums fit the GPU budget with the setup


def test_unknown_argument_is_named():
    out = subprocess.run(["bash", SCRIPT, "--gpus", "2"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "unknown argument '--gpus'" in out.stderr


@pytest.mark.parametrize("verdict", ["met", "unstable"])
def test_summarise_benchmark(verdict):
    bench = {
        "meta": {"device": "NVIDIA H200", "profile": {"name": "gpu"}},
        "rows": {
            "gan_step": {
                "status": "ok",
                "configs": [{"name": "sfd_RN50", "median_s": 0.2, "spread": 0.05, "frozen_clip_dtype": "bfloat16"}],
                "targets": [{"what": "t", "value": 0.7, "target": "<= 0.75", "met": None, "verdict": verdict}],
            }
        },
    }
    s = summarise_benchmark(bench)
    assert s["gan_step"]["configs"]["sfd_RN50"] == {"median_s": 0.2, "spread": 0.05, "frozen_clip_dtype": "bfloat16"}
    assert s["gan_step"]["targets"][0]["verdict"] == verdict and s["profile"] == "gpu"


def test_summarise_d_iteration_and_the_targets_list():
    config = {
        "name": "sfd_RN50",
        "host_model": "SFDModel",
        "wall_ms": 30.0,
        "spread": 0.02,
        "host_ms": 12.0,
        "gpu_ms": 25.0,
        "launches": 420.0,
        "graph_launches": 6.0,
        "host_syncs": 1.0,
        "verdict": "GPU-bound",
        "wall_vs_unet": 0.45,
        "peak_mem_mb": 2000.0,
        "dispatched": {"compute_ops": 3900, "casts": 80, "host_reads": 1},
    }
    targets = [
        {"what": "sfd_RN50: wall / GPU time", "value": 1.2, "target": "<= 1.3", "met": True, "verdict": "met"},
        {
            "what": "sfd_RN50: kernel launches per iteration",
            "value": 1200,
            "target": "<= 1000",
            "met": False,
            "verdict": "missed",
        },
    ]
    d = {
        "meta": {"device": "NVIDIA H200", "profile": {"name": "gpu"}},
        "runs": [{"configs": [config], "targets": targets}],
    }
    s = summarise_d_iteration(d)["d_iteration"]
    assert s["configs"]["sfd_RN50"]["launches"] == 420.0 and s["configs"]["sfd_RN50"]["compute_ops"] == 3900
    report = {
        "meta": {"mode": "gpu", "wall_s": 351.0},
        "steps": [
            {"step": "d_iteration", "status": "ok", "result": {"d_iteration": s}},
            {"step": "cuda_tests", "status": "failed", "result": {"passed": 5, "failed": 1, "errors": 0, "skipped": 0}},
            {"step": "ddp", "status": "ok", "result": {"ok": True}},
            {"step": "csud", "status": "timeout"},
        ],
        "not_finished": ["csud"],
    }
    verdicts = {t["what"]: t["verdict"] for t in targets_of(report)}
    assert verdicts["d_iteration: sfd_RN50: wall / GPU time"] == "met"
    assert verdicts["d_iteration: sfd_RN50: kernel launches per iteration"] == "missed"
    assert verdicts["every CUDA test passes"] == "missed"
    assert verdicts["DDP, two ranks on one GPU: heads, prompts and generator equal across ranks, trained"] == "met"
    assert verdicts["CSUD on CUDA: bf16 iterations and tiled derain"] == "not measured"
    assert verdicts["every step finished"] == "missed" and verdicts["the whole check, setup included (s)"] == "met"
    assert verdicts["gan_step: results"] == "not measured"  # a step that gave no targets says so
    report["meta"]["mode"] = "cpu"
    assert {t["verdict"] for t in targets_of(report) if not t["what"].startswith("d_iteration")} == {
        "not judged (CPU rehearsal)"
    }


def test_cuda_test_files():
    files = cuda_test_files()
    assert "tests/test_cuda.py" in files and "tests/test_gpu_check.py" not in files


def _rank(params_d: str, params_g: str = "g1", buffers: str = "b", device: str = "cuda:0") -> dict:
    return {
        "world_size": 2,
        "initial": {"net_d": {"params": "d0"}},
        "final": {
            "net_d": {"params": params_d, "buffers": buffers, "device": device},
            "net_g": {"params": params_g},
        },
    }


def test_ddp_verdict():
    ok = ddp_verdict([_rank("d1"), _rank("d1", buffers="other")], "gpu")
    assert ok["ok"] and ok["net_d_params_equal"] and not ok["net_d_buffers_equal"]  # buffers: reported only
    assert not ddp_verdict([_rank("d1"), _rank("d2")], "gpu")["ok"]  # heads/prompts differ across ranks
    assert not ddp_verdict([_rank("d1"), _rank("d1", params_g="g2")], "gpu")["ok"]
    assert not ddp_verdict([_rank("d0"), _rank("d0")], "gpu")["ok"]  # never trained
    assert not ddp_verdict([_rank("d1", device="cpu"), _rank("d1", device="cpu")], "gpu")["ok"]  # not on the GPU
    assert not ddp_verdict([_rank("d1"), None], "gpu")["ok"]  # a rank did not report
