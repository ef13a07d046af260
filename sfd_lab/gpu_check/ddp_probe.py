"""torchrun target of the GPU check's DDP step: trains a recipe through ``sfd_utils.launcher.train_pipeline``
(what ``basicsr/train.py`` runs) and writes, for its rank, digests of the networks it trained, so
the check can see that the ranks' discriminator heads, prompts and generators stayed equal.

    python -m torch.distributed.run --nproc_per_node=2 -m sfd_lab.gpu_check.ddp_probe \\
        --probe-out DIR -opt recipe.yml --launcher pytorch

Two ranks on ONE GPU: NCCL refuses two ranks on one device, so the recipe names gloo, whose
process group stages CUDA tensors through the host for its collectives (DDP's broadcast, all-gather
and all-reduce, BasicSR's ``reduce`` of the logged losses). Nothing of the training is changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys


def digest(tensors) -> str:
    h = hashlib.sha256()
    for name, t in tensors:
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def network_digests(model) -> dict:
    """Digests of the bare networks' parameters and buffers (net_g, net_d)."""
    out = {}
    for key in ("net_g", "net_d"):
        net = getattr(model, key, None)
        if net is None:
            continue
        bare = model.get_bare_model(net)
        out[key] = {
            "params": digest(bare.named_parameters()),
            "buffers": digest((n, b) for n, b in bare.named_buffers() if b.is_floating_point()),
            "device": str(next(bare.parameters()).device),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--probe-out" not in argv:
        raise SystemExit("ddp_probe: --probe-out DIR is required")
    i = argv.index("--probe-out")
    out_dir = argv[i + 1]
    del argv[i : i + 2]
    from sfd_lab.bench.stop import ResultFile

    rank_env = int(os.environ.get("RANK", "0"))  # SIGTERM (the step's limit): this rank's JSON says so
    ResultFile(os.path.join(out_dir, f"rank{rank_env}.json"), {"rank": rank_env}, write=False).stop_on_sigterm()
    from sfd_utils.compat import install

    install()
    import basicsr.train as bt
    from sfd_utils.launcher import train_pipeline

    built = []
    inner = bt.build_model

    def capture(opt):
        model = inner(opt)
        built.append((model, network_digests(model)))
        return model

    bt.build_model = capture  # train_pipeline wraps it for its progress lines and calls it once
    sys.argv = [sys.argv[0], *argv]
    train_pipeline(os.getcwd())
    model, initial = built[-1]
    rank = int(os.environ.get("RANK", "0"))
    record = {
        "rank": rank,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "model": type(model).__name__,
        "dist": bool(model.opt.get("dist")),
        "backend": model.opt.get("dist_params", {}).get("backend"),
        "initial": initial,
        "final": network_digests(model),
        "status": "ok",
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
