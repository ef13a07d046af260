"""The GPU harness (issue 21) on CPU: timing primitives, the profiler-pass arithmetic (launches with a
graph replay counted once, kernel time, syncs), dispatched-op counts, the verdict, and the D-iteration
row end to end (smoke profile, before/after through child processes). Never asserts a timing."""

from __future__ import annotations

import gc
import json
import os
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT

from sfd_lab.bench import cli as bench_cli
from sfd_lab.bench.d_iteration import D_PROFILES, UNET, StandInGenerator, run_child, run_d_iteration
from sfd_lab.timing import IterationTimer, count_dispatched_ops, no_gc, summarise_events, verdict


@pytest.fixture(scope="module")
def before_after(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("d_iter")
    return run_d_iteration("smoke", before_root=ROOT, out_dir=str(out), command="pytest d_iteration")


def test_d_iteration_configs(before_after):
    assert [r["code"] for r in before_after["runs"]] == ["before", "after"]
    run = before_after["runs"][1]
    assert os.path.realpath(run["code_root"]) == os.path.realpath(ROOT) and run["threads"] == 1
    configs = {c["name"]: c for c in run["configs"]}
    assert set(configs) == {"floor", UNET, "sfd_tiny-rn_eager", "sfd_tiny-rn_srgan_eager", "sfd_tiny-vit_eager"}
    assert (
        configs["sfd_tiny-rn_eager"]["host_model"] == "SFDModel"
        and configs["sfd_tiny-rn_srgan_eager"]["host_model"] == "SRGANModel"
    )
    assert configs[UNET]["network_d"] == "UNetDiscriminatorSN_basicsr" and configs["floor"]["network_d"] is None
    for c in configs.values():
        assert len(c["wall_times_ms"]) == D_PROFILES["smoke"].repeats and c["wall_ms"] > 0 and c["host_ms"] > 0
        assert c["verdict"] == "n/a" and c["launches"] is None and c["gpu_ms"] is None  # no GPU columns on CPU
        d = c["dispatched"]
        assert d["ops"] >= d["compute_ops"] + d["view_ops"] and d["compute_ops"] > 0
    # the discriminator's share: every row with a D dispatches far more than the stand-in floor
    floor = configs["floor"]["dispatched"]["compute_ops"]
    assert all(c["dispatched"]["compute_ops"] > 5 * floor for n, c in configs.items() if n != "floor")
    # the cost rule holds in both hosts (SRGANModel through feature reuse)
    assert (
        configs["sfd_tiny-rn_eager"]["clip_forwards_per_iter"]
        == configs["sfd_tiny-rn_srgan_eager"]["clip_forwards_per_iter"]
        == 2
    )
    assert configs[UNET]["wall_vs_unet"] == pytest.approx(1.0)
    verdicts = {t["what"]: t["verdict"] for t in run["targets"]}
    assert verdicts["sfd_tiny-rn_eager: kernel launches per iteration"] == "not judged (GPU target)"
    assert "sfd_tiny-vit_eager: wall / GPU time" not in verdicts  # the targets: the first CLIP model
    for name in ("sfd_tiny-rn_eager", "sfd_tiny-vit_eager"):  # issue 31: SFDModel reads nothing back unless logging
        assert configs[name]["dispatched"]["host_reads"] == 0 and configs[name]["host_reads_logged"] >= 1


def test_before_after_comparison_and_files(before_after):
    by_name = {c["name"]: c for c in before_after["comparison"]}
    assert set(by_name) == {"floor", UNET, "sfd_tiny-rn_eager", "sfd_tiny-rn_srgan_eager", "sfd_tiny-vit_eager"}
    for c in by_name.values():  # the same code on both sides: the same operators, op for op
        assert c["compute_ops"][0] == c["compute_ops"][1] and c["compute_ops_ratio"] == pytest.approx(1.0)
    files = before_after["files"]
    assert files["json"].endswith("-smoke.json") and os.path.basename(files["json"]).startswith("d_iteration-")
    with open(files["json"]) as f:
        assert json.load(f)["schema"] == "sfd-basicsr-d-iteration/1"
    md = open(files["markdown"]).read()
    assert "## before →" in md and "## after:" in md and "pytest d_iteration" in md and "ops dispatched" in md


def test_a_child_importing_the_wrong_checkout_stops(tmp_path):
    with pytest.raises(RuntimeError, match="failed with exit status 2"):
        run_child(str(tmp_path), "smoke", "before", str(tmp_path))  # an empty folder: nothing to import from


def test_stand_in_generator_carries_the_gradient():
    g = StandInGenerator(4)
    lq = torch.rand(2, 3, 8, 8)
    sr = g(lq)
    assert sr.shape == (2, 3, 32, 32) and [n for n, _ in g.named_parameters()] == ["gain"]
    sr.mean().backward()
    assert g.gain.grad is not None and float(g.gain.grad) != 0.0


def test_count_dispatched_ops_sees_forward_backward_and_host_reads():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)

    def step():
        y = conv(x)
        y.flatten(1).mean().backward()
        return float(y.detach().sum())  # one value read back to the host (a sync on a GPU)

    c = count_dispatched_ops(step)
    ops = {o["op"] for o in c["top"]}
    assert "aten.convolution.default" in ops and "aten.convolution_backward.default" in ops
    assert c["host_reads"] == 1 and c["view_ops"] >= 1  # flatten is a view: not a kernel
    (site,) = c["host_read_sites"]
    assert site["calls"] == 1 and "test_d_iteration.py" in site["site"] and "(step)" in site["site"]
    assert c["compute_ops"] + c["view_ops"] <= c["ops"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        casts = count_dispatched_ops(lambda: conv(x))["casts"]
    assert casts >= 2  # autocast casts the input and the weight
    # Adam reads its step counters, CPU scalars on a GPU too: not counted as syncs
    opt = torch.optim.Adam(conv.parameters(), foreach=False)

    def adam_step():
        conv(x).sum().backward()
        opt.step()

    c = count_dispatched_ops(adam_step)
    assert c["host_reads"] == 0 and c["cpu_scalar_reads"] >= 2


def test_a_copy_from_the_device_to_the_host_is_a_host_read():
    from sfd_lab.timing import _copies_to_host

    dev, host = torch.empty(3, device="meta"), torch.empty(3)  # meta stands in for a CUDA tensor here
    assert _copies_to_host("aten._to_copy.default", (dev,), {"device": torch.device("cpu")})  # .cpu(), .tolist()
    assert not _copies_to_host("aten._to_copy.default", (dev,), {"dtype": torch.bfloat16})  # a cast stays put
    assert not _copies_to_host("aten._to_copy.default", (host,), {"device": torch.device("cpu")})
    assert _copies_to_host("aten.copy_.default", (host, dev), {})
    assert not _copies_to_host("aten.copy_.default", (dev, host), {})  # host to device: no wait


def _event(name: str, device: str = "CPU", us: float = 0.0):
    return SimpleNamespace(
        name=name, device_type=f"DeviceType.{device}", time_range=SimpleNamespace(elapsed_us=lambda: us)
    )


def test_summarise_events_counts_a_graph_replay_once():
    events = [
        *[_event("cudaLaunchKernel") for _ in range(6)],
        _event("cuLaunchKernelEx"),
        _event("cudaGraphLaunch"),
        _event("cudaStreamSynchronize"),
        _event("cudaStreamSynchronize"),  # the profiler pass's own final synchronisation
        _event("cudaMemcpyAsync"),
        *[_event("void some_kernel<...>", "CUDA", 500.0) for _ in range(20)],  # 13 of them replayed by the graph
        _event("Memcpy DtoD (Device -> Device)", "CUDA", 100.0),
        _event("aten::conv2d"),
    ]
    s = summarise_events(events, iters=2, final_syncs=1)
    assert s["launches"] == 4.0 and s["kernel_launches"] == 3.5 and s["graph_launches"] == 0.5
    assert s["kernels"] == 10.0 and s["kernel_ms"] == pytest.approx(5.0) and s["copy_ms"] == pytest.approx(0.05)
    assert s["gpu_ms"] == pytest.approx(5.05) and s["host_syncs"] == 0.5


def test_verdict_and_timer():
    assert verdict(13.0, 10.0) == "GPU-bound" and verdict(13.1, 10.0) == "launch-bound"
    assert verdict(5.0, None) == "n/a" and verdict(None, 3.0) == "n/a"
    timer = IterationTimer(torch.device("cpu"))
    wall, host = timer(lambda: sum(range(10000)))
    assert wall > 0 and wall == host
    assert gc.isenabled()
    with no_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_parser_profiles_match():
    assert tuple(D_PROFILES) == bench_cli.D_PROFILE_NAMES
    gpu = D_PROFILES["gpu"]
    assert (gpu.batch, gpu.size, gpu.amp, gpu.max_spread) == (16, 256, "bf16", 0.05)
    assert gpu.clip_models[0] == "RN50" and gpu.reentry >= 1 and gpu.profile_iters >= 2


@pytest.mark.parametrize("at_line", ["d_iteration: measuring", "(2/"])
def test_sigterm_leaves_the_json(tmp_path, at_line):
    """The GPU check's time limit (SIGTERM) at any moment: scripts/bench_d_iteration.py exits with status 3
    and leaves a JSON saying 'stopped' (before the measurement began: d_iteration-stopped.json; during it:
    the configurations measured so far). The signal is sent when the program says it reached a point (the
    first configuration, the second), not after a guessed time; before the measurement: test_exit_codes.py."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "bench_d_iteration.py"), "--profile", "smoke"]
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if at_line in line:
            proc.send_signal(signal.SIGTERM)
            break
    log = "".join(seen) + proc.communicate(timeout=120)[0]
    assert any(at_line in line for line in seen), log[-3000:]
    assert proc.returncode == 3, log[-3000:]
    files = sorted(out.glob("*.json"), key=os.path.getmtime)
    assert files, log[-3000:]
    with open(files[-1]) as f:
        written = json.load(f)
    assert written["status"] == "stopped"
