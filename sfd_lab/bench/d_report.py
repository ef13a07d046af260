"""Markdown of the D-iteration row (``sfd_lab.bench.d_iteration``)."""

from __future__ import annotations

from sfd_lab.bench.report import _f, _table, _targets_md


def _launches(c: dict) -> str:
    if c.get("launches") is None:
        return "n/a"
    graphs = c.get("graph_launches") or 0
    return f"{c['launches']:.0f}" + (f" ({graphs:.0f} graphs)" if graphs else "")


def _ops(c: dict) -> str:
    d = c["dispatched"]
    logged = c.get("host_reads_logged")
    return f"{d['compute_ops']} / {d['casts']} / {d['host_reads']}" + ("" if logged is None else f" ({logged})")


def configs_table(configs: list[dict]) -> list[str]:
    return _table(
        [
            "config",
            "host",
            "wall ms",
            "min–max",
            "spread",
            "host ms",
            "GPU ms",
            "launches/iter",
            "syncs/iter",
            "verdict",
            "ops dispatched: compute / casts / host reads (syncs on a GPU; at a logged iteration)",
            "CLIP fwd",
            "× UNet-D wall",
            "peak MB",
        ],
        [
            [
                c["name"],
                c["host_model"],
                _f(c["wall_ms"], 1),
                f"{_f(c['wall_min_ms'], 1)}–{_f(c['wall_max_ms'], 1)}",
                _f(c["spread"], 2),
                _f(c["host_ms"], 1),
                _f(c.get("gpu_ms"), 1),
                _launches(c),
                _f(c.get("host_syncs"), 1),
                c["verdict"],
                _ops(c),
                _f(c.get("clip_forwards_per_iter")),
                _f(c.get("wall_vs_unet"), 2),
                _f(c.get("peak_mem_mb"), 0),
            ]
            for c in configs
        ],
    )


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    p = meta["profile"]
    lines = [
        f"# One discriminator iteration ({p['name']} profile) on {meta['device']}",
        "",
        f"- date {meta['date']}; batch {p['batch']}, {p['size']}² crops, autocast {p['amp'] or 'off'}; "
        f"warm-up {p['warmup']}, {p['repeats']} timed repeats in blocks of {p['block']} (re-entry {p['reentry']}), "
        f"profiler pass {p['profile_iters']} iterations; torch {meta['torch']}",
        f"- command: `{meta['command']}`",
        f"- load average before {meta['load_avg_before']}, after {meta['load_avg_after']}",
        "- each row: a real BasicSR model's `optimize_parameters` with a stand-in generator (bicubic ×4 times one "
        "learnable gain), L1 loss, no VGG, no EMA: the discriminator's share of an iteration as the host runs it; "
        "`floor` = the same without a discriminator. Random CLIP weights.",
        "- wall: CUDA events after a synchronisation (CPU: perf_counter), garbage collector off, repeats interleaved; "
        "host ms: until `optimize_parameters` returns; GPU ms, launches (a graph replay counts as one), syncs: "
        "torch.profiler pass; ops dispatched: one eager iteration through a TorchDispatchMode (compute = not views "
        f"or bare allocations; on a GPU without graphs about one kernel launch each); verdict GPU-bound when wall "
        f"≤ {1.3:g} × GPU ms",
    ]
    if meta["device_type"] == "cpu":
        lines.append(
            "- **CPU: no GPU columns; times are from a shared CPU and indicative only. The ops are those of the fp32 "
            "graph (no autocast): a GPU run under bf16 autocast adds a cast per call for every fp32 weight (UNet-D, "
            "the Feat-D heads) and input, not for the frozen CLIP, which SFDModel holds in bf16 on CUDA. Host reads "
            "here are the values our code reads back (`.item()`, `.tolist()`, `bool(t)`, `torch.equal`, ...: seen "
            "at the Python level, so a CPU run counts what a GPU run waits for), not reads of values copied to the "
            "host before (`sfd_utils/host_copy.py`); on a GPU the profiler's syncs count them too.**"
        )
    if results.get("status") == "stopped":
        lines.append("- **stopped (SIGTERM) before every configuration was measured: the rows below are those done**")
    if meta.get("graphs"):
        lines.append(f"- `_auto` rows: CUDA graphs {meta['graphs']}")
    for run in results["runs"]:
        lines += [
            "",
            f"## {run['code']}: {run['code_root']}" + (f" @ {run['commit']}" if run.get("commit") else ""),
            "",
            f"fast_path option in this code: {run['fast_path_option']}; graphs: {run.get('graphs', 'n/a')}; "
            f"{run['threads']} threads; "
            f"run wall {_f(run['wall_s'], 0)} s; "
            f"load {run['load_avg']}.",
            "",
        ]
        lines += configs_table(run["configs"])
        lines += _targets_md(run["targets"])
        for c in run["configs"]:
            if c["host_model"] == "SFDModel" and c["dispatched"]["top"]:
                body = ", ".join(f"{o['op'].replace('aten.', '')} {o['calls']}" for o in c["dispatched"]["top"][:8])
                lines += ["", f"`{c['name']}` most frequent ops: {body}."]
                for label, sites in (
                    ("an iteration not logged", c["dispatched"].get("host_read_sites") or []),
                    ("a logged iteration", c.get("host_read_sites_logged") or []),
                ):
                    if sites:
                        where = ", ".join(f"{s['site']} ×{s['calls']}" for s in sites[:8])
                        lines += [
                            "",
                            f"`{c['name']}` values read back to the host (a sync each on a GPU) in {label}: {where}.",
                        ]
            if c.get("allocator_events_in_timed_loop") and any(c["allocator_events_in_timed_loop"].values()):
                lines += [
                    "",
                    f"`{c['name']}`: the CUDA allocator went to the driver in the timed loop: "
                    f"{c['allocator_events_in_timed_loop']}.",
                ]
            if c.get("fast_path"):
                lines += ["", f"`{c['name']}` fast path: {c['fast_path']}."]
    if results.get("comparison"):
        lines += ["", "## before → after", ""]
        lines += _table(
            ["config", "compute ops", "× ops", "casts", "host reads", "launches", "wall ms", "× wall"],
            [
                [
                    c["name"],
                    f"{c['compute_ops'][0]} → {c['compute_ops'][1]}",
                    _f(c["compute_ops_ratio"], 2),
                    f"{c['casts'][0]} → {c['casts'][1]}",
                    f"{c['host_reads'][0]} → {c['host_reads'][1]}",
                    f"{_f(c['launches'][0], 0)} → {_f(c['launches'][1], 0)}",
                    f"{_f(c['wall_ms'][0], 1)} → {_f(c['wall_ms'][1], 1)}",
                    _f(c["wall_ratio"], 2),
                ]
                for c in results["comparison"]
            ],
        )
    return "\n".join(lines) + "\n"
