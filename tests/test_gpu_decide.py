"""`make gpu-decide` (issue 31): its CPU rehearsal runs the same step list as the GPU run at tiny sizes
(graphs emulated), every step writes its JSON, a step killed at its cap still leaves its JSON, the
verdict line and the D-iteration table are printed; the caps fit the five-minute budget; the gradient
comparison and the loss-curve comparison can fail."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
from conftest import CLIP_CONFIGS, ROOT
from test_gpu_check import make_wheel
from test_gpu_check import run_script as run_check_script

from sfd_lab.gpu_check import decide
from sfd_lab.gpu_check.ab_training import TOL_WINDOW, compare_curves
from sfd_lab.gpu_check.equality import TOLERANCE, run_equality

SCRIPT = os.path.join(ROOT, "scripts", "gpu_decide.sh")


def run_script(tmp_path, *extra: str, pythonpath: str | None = None) -> tuple[int, str]:
    return run_check_script(tmp_path, *extra, script=SCRIPT, pythonpath=pythonpath)


def report_of(tmp_path) -> dict:
    (name,) = [f for f in os.listdir(tmp_path / "out") if re.fullmatch(r"gpu-decide-cpu-rehearsal-[\d-]+\.json", f)]
    with open(tmp_path / "out" / name) as f:
        return json.load(f)


def step_json(tmp_path, step: dict) -> dict:
    path = step.get("json") or step["files"][0]
    with open(tmp_path / "work" / path) as f:
        return json.load(f)


def test_cpu_rehearsal_runs_the_decision_steps(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    make_wheel(str(wheels))
    rc, log = run_script(tmp_path, "--wheels", str(wheels))
    assert rc == 0, log[-6000:]
    report = report_of(tmp_path)
    steps = {s["step"]: s for s in report["steps"]}
    assert tuple(steps) == decide.STEPS and report["not_finished"] == []
    assert all(s["status"] == "ok" for s in steps.values()), {k: s.get("tail") for k, s in steps.items()}
    assert report["meta"]["wall_s"] <= report["meta"]["budget_s"]
    for name in ("env", "equality", "ab", "cuda_tests"):  # every step's JSON, on disk, finished
        assert step_json(tmp_path, steps[name])["status"] == "ok", name
    for name in ("d_iteration_resnet", "d_iteration_vit"):
        assert step_json(tmp_path, steps[name])["status"] == "ok" and steps[name]["files"]
    eq = steps["equality"]["result"]
    assert eq["passed"] and eq["models_done"] == ["tiny-rn", "tiny-vit"] and len(eq["cases"]) == 2 * 2 * 3 * 2
    assert {c["order"] for c in eq["cases"]} == {"srgan", "esrgan", "trainner"}
    assert all(r["replays"] > 0 and r["recomputes"] == 0 for c in eq["cases"] for r in c["regions"].values())
    ab = steps["ab"]["result"]
    assert ab["passed"] and ab["sizes"]["iterations"] == 20 and ab["graphs"].startswith("emulated")
    assert steps["ddp"]["result"]["ok"]
    assert steps["cuda_tests"]["result"]["skipped"] > 0 and steps["cuda_tests"]["result"]["failed"] == 0
    configs = {}
    for name in ("d_iteration_resnet", "d_iteration_vit"):
        configs.update(steps[name]["result"]["d_iteration"]["configs"])
    assert set(configs) == {"sfd_tiny-rn_eager", "sfd_tiny-rn_auto", "sfd_tiny-vit_eager", "sfd_tiny-vit_auto"}
    assert all(c["host_reads"] == 0 for c in configs.values())  # an iteration that is not logged
    verdict = [line for line in log.splitlines() if line.startswith("fast_path default: auto is")]
    assert verdict == [report["verdict"]]
    assert verdict[0].startswith("fast_path default: auto is NOT SAFE (CPU rehearsal, graphs emulated")
    assert "equality and A/B passed" in verdict[0]
    table = log[log.index("D iteration in SFDModel, eager beside auto:") :]
    for row in ("wall ms", "GPU ms", "launches / iter", "graph launches / iter", "syncs / iter", "peak MB"):
        assert f"| {row} |" in table, row
    assert "sfd_tiny-rn_eager | sfd_tiny-rn_auto" in table
    (md,) = [f for f in os.listdir(tmp_path / "out") if f.endswith(".md")]
    text = open(tmp_path / "out" / md).read()
    assert f"**{report['verdict']}**" in text and "## Gradient equality" in text and "## A/B training" in text


# Makes the A/B step's program hang at ``import torch`` (after its JSON and SIGTERM handler are in place),
# so its cap is reached on a fast machine too; the other programs are untouched.
SLOW_AB = """
import sys, time

class _HangAtTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "ab" in sys.argv:
            sys.meta_path.remove(self)
            time.sleep(600)
        return None

sys.meta_path.insert(0, _HangAtTorch())
"""


def test_a_step_killed_at_its_cap_leaves_its_json(tmp_path):
    slow = tmp_path / "slow_ab"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_AB)
    rc, log = run_script(tmp_path, "--steps", "env,ab", "--cap", "ab=12", pythonpath=str(slow))
    assert rc == 1, log[-3000:]
    report = report_of(tmp_path)
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["env"]["status"] == "ok" and steps["ab"]["status"] == "timeout"
    assert steps["ab"]["limit_s"] == 12.0 and steps["ab"]["wall_s"] < 12 + 10 + 5
    written = step_json(tmp_path, steps["ab"])
    assert written["status"] == "stopped" and written["step"] == "ab"
    assert "the A/B of 20 iterations did not finish (timeout)" in report["verdict"]
    assert "gradient equality did not run (skipped)" in report["verdict"]


def test_caps_fit_the_budget_and_the_decision_comes_first():
    assert decide.STEPS[:3] == ("env", "equality", "ab")
    assert decide.STEPS.index("d_iteration_resnet") < decide.STEPS.index("d_iteration_vit") < decide.STEPS.index("ddp")
    assert decide.caps_fit() and decide.BUDGET_S["gpu"] <= 300
    caps = sum(cap for _, _, cap, _ in decide.PLAN)
    assert caps + decide.SETUP_RESERVE_S + decide.MARGIN_S < decide.BUDGET_S["gpu"]


def _report(mode="gpu", eq=None, ab=None, eq_status="ok"):
    sizes = decide.SIZES[mode]
    case = {"model": "RN50", "amp": "bf16", "order": "esrgan", "reuse_features": True, "passed": True, "problems": []}
    eq = eq if eq is not None else {"graphs": "CUDA", "cases": [case], "models_done": list(sizes["equality"]["models"])}
    ab = ab if ab is not None else {"passed": True, "problems": []}
    steps = [{"step": "equality", "status": eq_status, "result": eq}, {"step": "ab", "status": "ok", "result": ab}]
    return {"meta": {"mode": mode, "sizes": sizes}, "steps": steps}


def test_the_verdict():
    assert decide.verdict(_report()) == "fast_path default: auto is SAFE"
    bad = {"model": "ViT-B-16", "amp": "fp16", "order": "srgan", "reuse_features": False, "passed": False}
    bad["problems"] = ["1 tensor(s) above 0.001: grad.prompt_pair.ctx"]
    eq = _report()["steps"][0]["result"]
    line = decide.verdict(_report(eq={**eq, "cases": eq["cases"] + [bad]}))
    assert line.startswith("fast_path default: auto is NOT SAFE (gradient equality failed in 1 of 2 cases, first ")
    assert "ViT-B-16 fp16 srgan reuse off: 1 tensor(s) above 0.001: grad.prompt_pair.ctx" in line
    line = decide.verdict(_report(eq={**eq, "models_done": ["RN50"]}, eq_status="timeout"))
    assert "gradient equality not finished for ViT-B-16 (timeout)" in line
    line = decide.verdict(_report(ab={"passed": False, "problems": ["l_d_feat: curves differ"]}))
    assert "the A/B loss curves differ: l_d_feat: curves differ" in line
    assert "the equality step did not run CUDA graphs" in decide.verdict(_report(eq={**eq, "graphs": "emulated"}))
    assert decide.verdict(_report("cpu")).startswith("fast_path default: auto is NOT SAFE (CPU rehearsal")


def test_the_gradient_comparison_fails_on_a_wrong_gradient(monkeypatch):
    """The equality machinery on the CPU emulation: equal by construction, so the cases pass; a replayed
    backward whose gradients are 1 % too large fails every case it reaches, naming the tensors."""
    import open_clip

    from sfd_arch.cuda_graphs import GraphedRegion

    open_clip.add_model_config(CLIP_CONFIGS)
    good = run_equality(["tiny-rn"], 2, 64, ["bf16"], orders=("esrgan",), reuses=(True,), iterations=1)
    assert good["passed"] and good["cases"][0]["worst"]["gradient"]["rel_l2"] <= TOLERANCE
    backward = GraphedRegion.backward

    def wrong(self, *args, **kwargs):
        return [None if g is None else 1.01 * g for g in backward(self, *args, **kwargs)]

    monkeypatch.setattr(GraphedRegion, "backward", wrong)
    bad = run_equality(["tiny-rn"], 2, 64, ["bf16"], orders=("srgan",), reuses=(False,), iterations=1)
    (case,) = bad["cases"]
    assert not bad["passed"] and not case["passed"]
    assert case["worst"]["gradient"]["rel_l2"] == pytest.approx(0.01, rel=0.05)
    assert "above 0.001" in case["problems"][0] and "sr_image_grad" in case["errors_last"]
    assert torch.backends.cudnn.deterministic is False  # the settings were restored


def test_the_loss_curve_comparison():
    curve = [1.0 + 0.1 * (i % 7) for i in range(40)]
    same = compare_curves({"l_d": curve}, {"l_d": [x * (1 + 1e-5) for x in curve]})
    assert same["l_d"]["passed"]
    drift = compare_curves({"l_d": curve}, {"l_d": curve[:20] + [x * (1 + 3 * TOL_WINDOW) for x in curve[20:]]})
    assert not drift["l_d"]["passed"] and drift["l_d"]["worst_window"] == 1
    first = compare_curves({"l_d": curve}, {"l_d": [curve[0] * 1.01] + curve[1:]})
    assert not first["l_d"]["passed"] and first["l_d"]["first_rel"] == pytest.approx(0.01)
    assert not compare_curves({"l_d": curve}, {"l_d": curve[:10]})["l_d"]["passed"]
