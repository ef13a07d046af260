"""Markdown rendering of a benchmark result."""

from sfd_lab.bench.core import ratio_of


def _f(x, digits: int = 3, suffix: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}{suffix}"
    return f"{x}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _verdict(t: dict) -> str:
    verdict = t.get("verdict") or {True: "met", False: "missed", None: "not judged"}[t["met"]]
    if verdict == "missed":
        return "**missed**"
    if verdict == "unstable":
        return f"_unstable_ (spread {_f(t.get('max_spread'), 2)})"
    return verdict


def _targets_md(targets: list[dict]) -> list[str]:
    if not targets:
        return []
    return [
        "",
        *_table(
            ["target", "value", "limit", ""], [[t["what"], _f(t["value"]), t["target"], _verdict(t)] for t in targets]
        ),
    ]


def _range(c: dict, key: str, digits: int = 2) -> str:
    """'0.91 (0.85–0.97)': ratio of medians and the range over the interleaved pairs."""
    lo, hi = c.get(f"{key}_min"), c.get(f"{key}_max")
    if lo is None or hi is None:
        return _f(c.get(key), digits)
    return f"{_f(c.get(key), digits)} ({_f(lo, digits)}–{_f(hi, digits)})"


def _load_md(row: dict) -> list[str]:
    load = row.get("load_avg")
    if not load:
        return []
    return ["", f"Load average (1, 5, 15 min) before the row {load['before']}, after {load['after']}."]


def _frozen(c: dict) -> str:
    if c.get("frozen_clip_mb") is None:
        return "-"
    return f"{_f(c['frozen_clip_mb'], 0)} ({c.get('frozen_clip_dtype') or '?'})"


def _components_md(r: dict) -> list[str]:
    lines = ["", "## 6. Where the step's time goes (pieces timed on their own)", "", r["note"] + "."]
    for t in r["tables"]:
        lines += [
            "",
            f"`{t['config']}`: step {_f(t['step_ms'], 0)} ms (spread {_f(t['step_spread'], 2)}), "
            f"{_f(t['step_gflops'], 1)} GFLOP, {_f(t['step_gflops_per_s'], 1)} GFLOP/s; "
            f"pieces add up to {_f(t['pieces_ms'], 0)} ms.",
            "",
        ]
        lines += _table(
            ["component", "ms", "min ms", "spread", "share of step", "GFLOP", "share of FLOPs", "GFLOP/s"],
            [
                [
                    c["component"],
                    _f(c["ms"], 1),
                    _f(c["min_ms"], 1),
                    _f(c["spread"], 2),
                    _f(None if c["share"] is None else 100 * c["share"], 1, "%"),
                    _f(c["gflops"], 2),
                    _f(None if c["flop_share"] is None else 100 * c["flop_share"], 1, "%"),
                    _f(c["gflops_per_s"], 1),
                ]
                for c in t["rows"]
            ],
        )
    return lines + _load_md(r)


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
        "- random CLIP and VGG19 weights (cost does not depend on weights); times are medians of the interleaved "
        f"repeats, with min, max and spread; a time target whose sides spread more than "
        f"{_f(prof.get('max_spread', 0.15), 2)} reads _unstable_",
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
                "s/iter (median)",
                "min",
                "max",
                "spread",
                "time × (pair range)",
                "peak MB",
                "mem ×",
                "frozen CLIP MB (dtype)",
                "mem × w/o it",
                "GFLOP",
                "FLOP ×",
                "D part s",
                "D part ×",
                "CLIP fwd/iter",
                "GPU s",
                "launches",
                "verdict",
            ],
            [
                [
                    c["name"],
                    c["model"],
                    c["network_d"] or "-",
                    _f(c["median_s"]),
                    _f(c["min_s"]),
                    _f(c.get("max_s")),
                    _f(c.get("spread"), 2),
                    _range(c, "time_ratio"),
                    _f(c["peak_mem_mb"], 0),
                    _f(c["mem_ratio"], 2),
                    _frozen(c),
                    _f(c.get("mem_ratio_without_frozen_clip"), 2),
                    _f(c["gflops_per_iter"], 1),
                    _f(c["flop_ratio"], 2),
                    _f(c.get("disc_part_s")),
                    _f(c.get("disc_part_ratio"), 2),
                    _f(c["clip_forwards_per_iter"]),
                    _f(c.get("gpu_s")),
                    _f(c.get("launches"), 0),
                    c.get("verdict") or "n/a",
                ]
                for c in r["configs"]
            ],
        )
        lines += [
            "",
            f"Ratios (×) are to `{r['baseline']}` (BasicSR RealESRGANModel + UNetDiscriminatorSN). "
            "`D part` = step − `sr_only` step (SRModel: generator, L1 and VGG only). "
            "spread = (max − min) / median of the interleaved repeats; the range after a ratio is the "
            "smallest and largest ratio of repeat i to the baseline's repeat i.",
        ]
        lines += _targets_md(r["targets"]) + _load_md(r) + _trace_md(r.get("trace"))
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
                "spread",
                "speed-up vs naive (pair range)",
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
                    _f(c.get("spread"), 2),
                    _range(c, "speedup_vs_naive"),
                    _f(c["gflops_per_iter"], 1),
                    _f(c["flop_ratio_vs_sfd"], 2),
                    _f(c["peak_mem_mb"], 0),
                ]
                for c in r["configs"]
            ],
        )
        lines += _targets_md(r["targets"]) + _load_md(r) + _trace_md(r.get("trace"))
    r = rows.get("precision")
    if r and r["status"] == "ok":
        rounds = f", {r['rounds']} rounds" if r.get("rounds") else ""
        lines += ["", f"## 3. Precision and layout (SFDModel, CLIP {r['clip']}{rounds})", ""]
        lines += _table(
            [
                "variant",
                "s/iter",
                "min",
                "spread",
                "time × (pair range)",
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
                    _f(c.get("spread"), 2),
                    _range(c, "time_ratio"),
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
        lines += _targets_md(r["targets"]) + _load_md(r)
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
        header = (
            ["batch (images)", "tiles"] + [f"{n} img/s (spread)" for n in names] + [f"{n} / floor" for n in names[:-1]]
        )
        body = [
            [str(s["batch_images"]), str(s["batch_tiles"])]
            + [f"{_f(s[n]['images_per_s'], 2)} ({_f(s[n].get('spread'), 2)})" for n in names]
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
        lines += _targets_md(r["targets"]) + _load_md(r) + _trace_md(r.get("trace"))
    r = rows.get("csud")
    if r:
        lines += ["", "## 5. CSUD step", ""]
        if r["status"] != "ok":
            lines.append(f"{r['status']}: {r['reason']}")
        elif "time_ratio" in r:
            res = r["result"]
            lines += [
                f"`sfd_lab.bench.csud`, its `{r['csud_profile']}` profile ({res.get('networks', '')}; batch "
                f"{res.get('batch_per_domain')} per domain, {res.get('crop')}² crops, {res.get('device', 'cpu')}).",
                "",
            ]
            lines += _table(
                [
                    "order of forwards",
                    "s/iter (median)",
                    "min",
                    "max",
                    "spread",
                    "peak MB above start",
                    "time ×",
                    "mem ×",
                ],
                [
                    [
                        name,
                        _f(m.get("s_per_iter_median")),
                        _f(m.get("s_per_iter_min")),
                        _f(m.get("s_per_iter_max")),
                        _f(m.get("spread"), 2),
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
            if r.get("time_ratio_min") is not None:
                lines += [
                    "",
                    f"Time × over the interleaved pairs: {_f(r['time_ratio_min'], 2)}–{_f(r['time_ratio_max'], 2)}.",
                ]
            lines += _targets_md(r["targets"]) + _load_md(r)
        else:
            res = r["result"] if isinstance(r["result"], dict) else {"result": r["result"]}
            lines += [f"- {k}: {_f(val)}" for k, val in res.items()]
    r = rows.get("components")
    if r and r["status"] == "ok":
        lines += _components_md(r)
    if results.get("pending"):
        lines += ["", "Pending rows: " + ", ".join(results["pending"])]
    if results.get("notes"):
        lines += ["", results["notes"].rstrip()]
    return "\n".join(lines) + "\n"
