"""Markdown rendering of a benchmark result."""

from sfd_bench.core import ratio_of


def _f(x, digits: int = 3, suffix: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}{suffix}"
    return f"{x}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _targets_md(targets: list[dict]) -> list[str]:
    if not targets:
        return []
    mark = {True: "met", False: "**missed**", None: "not judged"}
    return [
        "",
        *_table(
            ["target", "value", "limit", ""],
            [[t["what"], _f(t["value"]), t["target"], mark[t["met"]]] for t in targets],
        ),
    ]


def _trace_md(trace: dict | None) -> list[str]:
    if not trace:
        return []
    lines = ["", "Where the time goes (torch.profiler, one call, top ops by self time):"]
    for name, ops in trace.items():
        lines += ["", f"`{name}`:", ""]
        lines += _table(
            ["op", "input shapes", "calls", "self ms", "share"],
            [
                [
                    o["op"],
                    o["shapes"].replace("|", "/"),
                    str(o["calls"]),
                    _f(o["self_ms"], 1),
                    _f(100 * o["share"], 1, "%"),
                ]
                for o in ops
            ],
        )
    return lines


def to_markdown(results: dict) -> str:
    """The results as Markdown tables (ratios to each row's baseline)."""
    meta, rows = results["meta"], results["rows"]
    prof = meta["profile"]
    v = meta["versions"]
    lines = [
        f"# SFD benchmark: {prof['name']} profile on {meta['device']}",
        "",
        f"- date {meta['date']}, {meta['threads']} threads, batch {prof['batch']}, gt {prof['gt_size']}², "
        f"generator RRDBNet {prof['generator']['num_block']} blocks, "
        f"warm-up {prof['warmup']}, repeats {prof['repeats']}" + (f", autocast {prof['amp']}" if prof["amp"] else ""),
        f"- torch {v['torch']}, torchvision {v['torchvision']}, basicsr {v['basicsr']}, open_clip {v['open_clip']}",
        f"- command: `{meta['command']}`",
        f"- load average before {meta['load_avg_before']}, after {meta.get('load_avg_after')}; "
        f"wall {_f(meta.get('wall_s'), 0)} s; peak memory: {meta['memory_method']}",
        "- random CLIP and VGG19 weights (cost does not depend on weights); times are medians of the repeats",
    ]
    if prof["name"] == "smoke":
        lines.append("- **smoke profile: tiny networks; the numbers check the machinery and mean nothing**")
    r = rows.get("gan_step")
    if r and r["status"] == "ok":
        lines += ["", "## 1. GAN step (one optimize_parameters)", ""]
        lines += _table(
            [
                "config",
                "model",
                "D",
                "s/iter",
                "min",
                "time ×",
                "peak MB",
                "mem ×",
                "frozen CLIP MB",
                "mem × w/o it",
                "GFLOP",
                "FLOP ×",
                "D part s",
                "D part ×",
                "CLIP fwd/iter",
            ],
            [
                [
                    c["name"],
                    c["model"],
                    c["network_d"] or "-",
                    _f(c["median_s"]),
                    _f(c["min_s"]),
                    _f(c["time_ratio"], 2),
                    _f(c["peak_mem_mb"], 0),
                    _f(c["mem_ratio"], 2),
                    _f(c.get("frozen_clip_mb"), 0),
                    _f(c.get("mem_ratio_without_frozen_clip"), 2),
                    _f(c["gflops_per_iter"], 1),
                    _f(c["flop_ratio"], 2),
                    _f(c.get("disc_part_s")),
                    _f(c.get("disc_part_ratio"), 2),
                    _f(c["clip_forwards_per_iter"]),
                ]
                for c in r["configs"]
            ],
        )
        lines += [
            "",
            f"Ratios (×) are to `{r['baseline']}` (BasicSR RealESRGANModel + UNetDiscriminatorSN). "
            "`D part` = step − `sr_only` step (SRModel: generator, L1 and VGG only).",
        ]
        lines += _targets_md(r["targets"]) + _trace_md(r.get("trace"))
    r = rows.get("clip_cost")
    if r and r["status"] == "ok":
        lines += [
            "",
            "## 2. CLIP cost: SFDModel vs the naive drop-in (SFDDiscriminator in ESRGANModel)",
            "",
            r["note"],
            "",
        ]
        lines += _table(
            [
                "config",
                "model",
                "CLIP fwd/iter",
                "s/iter",
                "min",
                "speed-up vs naive",
                "GFLOP",
                "FLOP vs SFD",
                "peak MB",
            ],
            [
                [
                    c["name"],
                    c["model"],
                    _f(c["clip_forwards_per_iter"]),
                    _f(c["median_s"]),
                    _f(c["min_s"]),
                    _f(c["speedup_vs_naive"], 2),
                    _f(c["gflops_per_iter"], 1),
                    _f(c["flop_ratio_vs_sfd"], 2),
                    _f(c["peak_mem_mb"], 0),
                ]
                for c in r["configs"]
            ],
        )
        lines += _targets_md(r["targets"]) + _trace_md(r.get("trace"))
    r = rows.get("precision")
    if r and r["status"] == "ok":
        lines += ["", f"## 3. Precision and layout (SFDModel, CLIP {r['clip']})", ""]
        lines += _table(
            [
                "variant",
                "s/iter",
                "min",
                "time ×",
                "peak MB",
                "mem ×",
                f"max loss dev (first {r['loss_iters']} its)",
                "tolerance",
            ],
            [
                [
                    c["precision"],
                    _f(c["median_s"]),
                    _f(c["min_s"]),
                    _f(c["time_ratio"], 2),
                    _f(c["peak_mem_mb"], 0),
                    _f(c["mem_ratio"], 2),
                    _f(c["max_loss_rel_dev"], 4) + (f" ({c['worst_loss']})" if c["worst_loss"] else ""),
                    _f(c["loss_tolerance"]),
                ]
                for c in r["configs"]
            ],
        )
        lines += [
            "",
            "Loss deviation: largest |loss − fp32 loss| / |fp32 loss| over the `l_*` terms, same seed and batches.",
        ]
        if r["skipped"]:
            lines.append("Skipped: " + ", ".join(f"{k} ({why})" for k, why in r["skipped"].items()))
        lines += _targets_md(r["targets"])
    r = rows.get("iqa")
    if r and r["status"] == "ok":
        lines += [
            "",
            f"## 4. SFD-IQA throughput ({r['image_size']}² images, {r['tiles_per_image']} tiles of {r['tile']}², "
            f"CLIP {r['clip']}, {r['precision']})",
            "",
        ]
        lines += [f"- `{k}`: {v}" for k, v in r["methods"].items()] + [""]
        names = [n for n in ("sfd_iqa", "sfd_iqa_text_once", "clip_floor") if n in r["methods"]]
        header = ["batch (images)", "tiles"] + [f"{n} img/s" for n in names] + [f"{n} / floor" for n in names[:-1]]
        body = [
            [str(s["batch_images"]), str(s["batch_tiles"])]
            + [_f(s[n]["images_per_s"], 2) for n in names]
            + [_f(s[f"{n}_to_floor"], 2) for n in names[:-1]]
            for s in r["sweep"]
        ]
        lines += _table(header, body)
        n = r["niqe"]
        lines += [
            "",
            f"BasicSR NIQE on {n['images']} of the same images (numpy, CPU): {_f(n['images_per_s'], 2)} img/s "
            f"({_f(n['median_s'])} s/img); SFD-IQA at its best batch runs at {_f(r['sfd_iqa_vs_niqe_speed'], 2)}× "
            "NIQE's speed.",
        ]
        lines += _targets_md(r["targets"]) + _trace_md(r.get("trace"))
    r = rows.get("csud")
    if r:
        lines += ["", "## 5. CSUD step", ""]
        if r["status"] != "ok":
            lines.append(f"{r['status']}: {r['reason']}")
        elif "time_ratio" in r:
            res = r["result"]
            lines += [
                f"`sfd_bench.csud`, its `{r['csud_profile']}` profile ({res.get('networks', '')}; batch "
                f"{res.get('batch_per_domain')} per domain, {res.get('crop')}² crops, {res.get('device', 'cpu')}).",
                "",
            ]
            lines += _table(
                ["order of forwards", "s/iter", "peak MB above start", "time ×", "mem ×"],
                [
                    [
                        name,
                        _f(m.get("s_per_iter_median")),
                        _f(m.get("peak_above_start_mib"), 0),
                        _f(
                            ratio_of(m.get("s_per_iter_median"), res["methods"]["released_order"]["s_per_iter_median"]),
                            2,
                        ),
                        _f(
                            ratio_of(
                                m.get("peak_above_start_mib"), res["methods"]["released_order"]["peak_above_start_mib"]
                            ),
                            2,
                        ),
                    ]
                    for name, m in res["methods"].items()
                ],
            )
            lines += _targets_md(r["targets"])
        else:
            res = r["result"] if isinstance(r["result"], dict) else {"result": r["result"]}
            lines += [f"- {k}: {_f(val)}" for k, val in res.items()]
    if results.get("pending"):
        lines += ["", "Pending rows: " + ", ".join(results["pending"])]
    if results.get("notes"):
        lines += ["", results["notes"].rstrip()]
    return "\n".join(lines) + "\n"
