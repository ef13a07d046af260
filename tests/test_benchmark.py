"""Benchmark (issue 8): the smoke profile runs end to end and writes its files; schema and the
CLIP-forward cost rule are checked, never a timing."""

from __future__ import annotations

import json
import os

import pytest
import torch

from sfd_lab.bench import csud
from sfd_lab.bench import run as bench_run
from sfd_lab.bench.core import StopRequested, trace_ops
from sfd_lab.bench.iqa import tile_images
from sfd_lab.bench.profiles import BASELINE, PROFILES, ROWS, SCHEMA, parse_rows
from sfd_lab.bench.run import run_benchmark
from sfd_lab.bench.steps import BenchContext


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    return run_benchmark("smoke", rows=None, out_dir=str(out), command="pytest smoke", trace=False)


def is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def test_files_and_meta(smoke):
    files = smoke["files"]
    assert os.path.basename(files["json"]).startswith(("cpu-", "nvidia")) and files["json"].endswith("-smoke.json")
    assert os.path.isfile(files["markdown"])
    with open(files["json"]) as f:
        on_disk = json.load(f)
    assert on_disk["schema"] == SCHEMA and set(on_disk["rows"]) == set(ROWS)
    meta = on_disk["meta"]
    assert meta["command"] == "pytest smoke" and meta["profile"]["name"] == "smoke"
    for key in ("torch", "torchvision", "basicsr", "open_clip"):
        assert isinstance(meta["versions"][key], str) and meta["versions"][key]
    assert isinstance(meta["device"], str) and meta["device_type"] in ("cpu", "cuda")
    assert isinstance(meta["threads"], int) and meta["threads"] >= 1
    assert meta["date"][:4].isdigit() and is_num(meta["wall_s"])
    md = open(files["markdown"]).read()
    for title in ("## 1. GAN step", "## 2. CLIP cost", "## 3. Precision", "## 4. SFD-IQA", "## 5. CSUD"):
        assert title in md
    assert "pytest smoke" in md


def test_gan_step_row(smoke):
    row = smoke["rows"]["gan_step"]
    assert row["status"] == "ok" and row["baseline"] == BASELINE
    configs = {c["name"]: c for c in row["configs"]}
    assert set(configs) == {"sr_only", BASELINE, "esrgan_unet", "sfd_tiny-rn_eager", "sfd_tiny-vit_eager"}
    for c in configs.values():
        assert is_num(c["median_s"]) and is_num(c["min_s"]) and len(c["times_s"]) == 1
        assert c["peak_mem_mb"] is None or is_num(c["peak_mem_mb"])
        assert is_num(c["gflops_per_iter"]) and c["gflops_per_iter"] > 0
        assert is_num(c["time_ratio"]) and is_num(c["flop_ratio"])
    assert configs[BASELINE]["time_ratio"] == pytest.approx(1.0)
    for name in ("sfd_tiny-rn_eager", "sfd_tiny-vit_eager"):
        assert configs[name]["clip_forwards_per_iter"] == 2
        assert is_num(configs[name]["disc_part_s"])
    assert configs[BASELINE]["clip_forwards_per_iter"] is None
    judged = [t for t in row["targets"] if "forwards" in t["what"]]
    assert judged and all(t["met"] is True for t in judged)
    assert all(t["met"] is None for t in row["targets"] if "forwards" not in t["what"])  # smoke: not judged


def test_clip_cost_row_counts_forwards(smoke):
    configs = {c["name"]: c for c in smoke["rows"]["clip_cost"]["configs"]}
    for clip in ("tiny-rn", "tiny-vit"):
        sfd, naive = configs[f"sfd_{clip}_eager"], configs[f"naive_esrgan_{clip}"]
        assert sfd["model"] == "SFDModel" and naive["model"] == "ESRGANModel"
        assert sfd["clip_forwards_per_iter"] == 2
        assert isinstance(naive["clip_forwards_per_iter"], int) and naive["clip_forwards_per_iter"] > 2
        assert is_num(sfd["speedup_vs_naive"]) and naive["speedup_vs_naive"] == pytest.approx(1.0)


def test_precision_row(smoke):
    row = smoke["rows"]["precision"]
    variants = [c["precision"] for c in row["configs"]]
    expected = [v for v in PROFILES["smoke"].precisions if torch.cuda.is_available() or "fp16" not in v]
    assert sorted(variants) == sorted(expected)
    for c in row["configs"]:
        assert c["losses_first_iters"] and all(len(v) == row["loss_iters"] for v in c["losses_first_iters"].values())
        assert all(k.startswith("l_") for k in c["losses_first_iters"])
        assert is_num(c["max_loss_rel_dev"])
    assert row["configs"][0]["max_loss_rel_dev"] == 0.0  # fp32 against itself
    assert {t["what"].split(":")[0] for t in row["targets"]} == {f"sfd_tiny-rn_eager_{v}" for v in expected[1:]}


def test_iqa_row(smoke):
    row = smoke["rows"]["iqa"]
    assert row["status"] == "ok" and row["tiles_per_image"] == 4
    assert [s["batch_images"] for s in row["sweep"]] == [1, 2]
    for s in row["sweep"]:
        for name in row["methods"]:
            assert is_num(s[name]["images_per_s"]) and s[name]["images_per_s"] > 0
        assert is_num(s["sfd_iqa_text_once_to_floor"])
    assert is_num(row["niqe"]["images_per_s"]) and row["niqe"]["images"] == 2


def test_csud_row_and_pending(smoke):
    csud = smoke["rows"]["csud"]
    assert csud["status"] in ("ok", "not available")
    assert ("csud" in smoke["pending"]) == (csud["status"] != "ok")
    if csud["status"] == "ok":
        assert csud["csud_profile"] == "tiny" and is_num(csud["time_ratio"])
        assert [t["what"] for t in csud["targets"]] == [
            "CSUD step time vs released order",
            "CSUD step peak memory vs released order",
        ]


def test_csud_row_broken(monkeypatch):
    ctx = BenchContext(PROFILES["smoke"], "/nonexistent")

    def broken(profile, out_dir=None):
        raise RuntimeError(f"boom in {profile}")

    monkeypatch.setattr(csud, "run_csud_benchmark", broken)
    row = csud.row_csud(ctx, False)
    assert row["status"] == "error" and "boom in tiny" in row["reason"]  # smoke maps to its tiny profile


def test_parse_rows_and_tiles():
    assert parse_rows(None) == ROWS and parse_rows("4,1") == ("gan_step", "iqa")
    assert parse_rows("clip_cost") == ("clip_cost",)
    with pytest.raises(ValueError, match="unknown row"):
        parse_rows("7")
    tiles = tile_images(torch.rand(2, 3, 100, 130), 64)  # border-aligned last row/column
    assert tiles.shape == (2 * 2 * 3, 3, 64, 64)
    assert tile_images(torch.rand(1, 3, 40, 40), 64).shape == (1, 3, 64, 64)  # small image resized up


def test_trace_ops_schema():
    x = torch.rand(64, 64)
    ops = trace_ops(lambda: (x @ x).sum(), torch.device("cpu"), top=3)
    assert 1 <= len(ops) <= 3
    assert set(ops[0]) == {"op", "shapes", "calls", "self_ms", "share"} and 0 <= ops[0]["share"] <= 1


def test_noise_fields_and_load_per_row(smoke):
    for name, row in smoke["rows"].items():
        if row.get("status") != "ok":
            continue
        load = row["load_avg"]
        assert set(load) == {"before", "after"}, name
    for c in smoke["rows"]["gan_step"]["configs"]:
        assert c["min_s"] <= c["median_s"] <= c["max_s"] and c["spread"] >= 0
        assert c["time_ratio_min"] <= c["time_ratio_max"]
    for t in smoke["rows"]["gan_step"]["targets"]:
        assert t["verdict"] in ("met", "missed", "not judged", "unstable")
    sfd = {c["name"]: c for c in smoke["rows"]["gan_step"]["configs"]}["sfd_tiny-rn_eager"]
    assert sfd["frozen_clip_dtype"] == "float32" and sfd["frozen_clip_mb"] > 0
    md = open(smoke["files"]["markdown"]).read()
    assert "(float32)" in md and "spread" in md and "## 6. Where the step's time goes" in md


def test_components_row(smoke):
    row = smoke["rows"]["components"]
    assert row["status"] == "ok"
    tables = {t["config"]: t for t in row["tables"]}
    assert set(tables) == {"sfd_tiny-rn_eager", "sfd_tiny-vit_eager", BASELINE}
    names = {r["component"] for r in tables["sfd_tiny-rn_eager"]["rows"]}
    for piece in ("G fwd+bwd", "CLIP HR (no grad) [tiny-rn]", "CLIP SR fwd+bwd [tiny-rn]", "Feat-D heads D [tiny-rn]"):
        assert piece in names
    assert "text tower fwd+bwd [tiny-rn]" in names and "other (step − pieces)" in names
    assert {"UNet-D D", "UNet-D G"} <= {r["component"] for r in tables[BASELINE]["rows"]}
    for t in tables.values():
        for r in t["rows"][:-1]:
            assert is_num(r["ms"]) and r["ms"] > 0 and is_num(r["gflops"]) and r["gflops"] >= 0
        assert is_num(t["step_gflops"]) and t["step_gflops"] > 0
        # the pieces account for the step's FLOPs (the step's count excludes feed_data, where basicsr's
        # RealESRGANModel sharpens GT with a 101x101 kernel that the timed step does not include)
        other = t["rows"][-1]
        assert abs(other["gflops"]) <= 0.02 * t["step_gflops"], (t["config"], other)
    # the CLIP SR pass carries a backward, so it costs more FLOPs than the no-grad HR pass
    rn = {r["component"]: r for r in tables["sfd_tiny-rn_eager"]["rows"]}
    assert rn["CLIP SR fwd+bwd [tiny-rn]"]["gflops"] > rn["CLIP HR (no grad) [tiny-rn]"]["gflops"]


def test_a_stopped_row_still_writes_the_files(tmp_path, monkeypatch):
    """SIGTERM from the GPU check's runner (StopRequested) ends the row it interrupts as 'stopped', the
    rows after it as 'not run', and the JSON and Markdown are written with what was measured."""
    seen = {}

    def done(ctx, trace):
        seen["profile"] = ctx.profile
        return {"status": "not available", "reason": "a stub row", "targets": []}

    def interrupted(ctx, trace):
        raise StopRequested("signal 15")

    monkeypatch.setitem(bench_run.ROW_FUNCTIONS, "gan_step", done)
    monkeypatch.setitem(bench_run.ROW_FUNCTIONS, "clip_cost", interrupted)
    monkeypatch.setitem(bench_run.ROW_FUNCTIONS, "precision", done)
    overrides = {"clip_models": ("tiny-rn",), "repeats": 4, "warmup": None}
    res = run_benchmark("smoke", "1,2,3", str(tmp_path), command="t", trace=False, overrides=overrides)
    rows = res["rows"]
    assert rows["gan_step"]["status"] == "not available" and rows["clip_cost"]["status"] == "stopped"
    assert rows["precision"]["status"] == "not run" and "signal 15" in rows["precision"]["reason"]
    assert res["pending"] == ["gan_step", "clip_cost", "precision"] and os.path.isfile(res["files"]["json"])
    assert "Pending rows: gan_step, clip_cost, precision" in open(res["files"]["markdown"]).read()
    assert seen["profile"].clip_models == ("tiny-rn",) and seen["profile"].repeats == 4  # overrides
    assert seen["profile"].warmup == PROFILES["smoke"].warmup  # None keeps the profile's
