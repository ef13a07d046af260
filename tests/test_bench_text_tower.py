"""sfd_lab.bench.text_tower: rows report what they claim (tiny CLIP, one repeat; no timing assertions)."""

from __future__ import annotations

import pytest

from sfd_lab.bench import text_tower as bench


def test_interleaved_order_and_ratios():
    calls = []
    timing = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then alternating
    assert all(len(t["times"]) == 3 and t["min"] <= t["median"] <= t["max"] for t in timing.values())
    timing = {
        "a": {"min": 1.0, "median": 2.0, "times": [1.0, 2.0, 4.0]},
        "b": {"min": 0.5, "median": 1.0, "times": [0.5, 1.0, 1.0]},
    }
    assert bench.ratios(timing, "a", "b") == {"ratio_median": 0.5, "ratio_min": 0.5, "ratio_paired_median": 0.5}


def test_rows_on_tiny_clip():
    text = bench.text_tower_row("tiny-rn", n_ctx=16, repeats=1, device="cpu")
    assert (text["tokens_full"], text["tokens_truncated"]) == (77, 22)
    assert text["max_abs_diff_features"] < 1e-6 and text["max_rel_diff_ctx_grad"] < 1e-5
    size = bench.clip_input_row("tiny-rn", crop=64, input_size=96, batch=1, repeats=1, device="cpu")
    assert size["middle_grids"] == {"64": [(16, 16), (8, 8), (4, 4)], "96": [(24, 24), (12, 12), (6, 6)]}
    weights = bench.frozen_weights_row("tiny-rn")["variants"]
    assert weights["bf16"]["dtype"] == "bfloat16" and weights["fp32"]["dtype"] == "float32"
    assert weights["bf16"]["bytes"] == pytest.approx(weights["fp32"]["bytes"] / 2, rel=0.01)
    assert weights["fp32_no_text"]["bytes"] < weights["fp32"]["bytes"]
    report = bench.markdown([text, size, bench.frozen_weights_row("tiny-rn")], {**bench.machine(), "command": "x"})
    assert text["flops"]["truncated"] < 0.5 * text["flops"]["full"]
    assert size["flops"]["96"] > 2 * size["flops"]["64"]
    assert "| 22 (to end-of-text) |" in report and "clip_input_size: 96" in report and "bfloat16" in report
