"""Ready BasicSR options dicts for building SFD models in code (checks, benchmarks, tests)."""

from __future__ import annotations

import copy
import os

DEFAULT_TRAIN = {
    "ema_decay": 0,
    "optim_g": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]},
    "optim_d": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]},
    "scheduler": {"type": "MultiStepLR", "milestones": [10**9], "gamma": 0.5},
    "total_iter": 10**9,
    "warmup_iter": -1,
    "pixel_opt": {"type": "L1Loss", "loss_weight": 1e-2},
    "feat_gan_opt": {"type": "SFDGANLoss", "loss_weight": 5e-3},
    "text_gan_opt": {"type": "SFDGANLoss", "loss_weight": 5e-3},
    "net_d_iters": 1,
    "net_d_init_iters": 0,
}
TINY_RRDB = {
    "type": "RRDBNet",
    "num_in_ch": 3,
    "num_out_ch": 3,
    "num_feat": 8,
    "num_block": 1,
    "num_grow_ch": 8,
    "scale": 4,
}


def sfd_options(
    exp_dir: str,
    network_d: dict,
    network_g: dict | None = None,
    train: dict | None = None,
    model_type: str = "SFDModel",
    scale: int = 4,
    device: str = "cpu",
) -> dict:
    """Options for ``basicsr.models.build_model``: SFDModel with ``network_d`` (SFDDiscriminator
    kwargs), ``network_g`` (default: a tiny RRDBNet) and ``train`` keys overriding DEFAULT_TRAIN
    (a None value removes the key). Model/state folders are created under ``exp_dir``."""
    paths = {k: os.path.join(exp_dir, k) for k in ("models", "training_states", "visualization", "log")}
    for p in paths.values():
        os.makedirs(p, exist_ok=True)
    train_opt = copy.deepcopy(DEFAULT_TRAIN)
    for key, value in (train or {}).items():
        if value is None:
            train_opt.pop(key, None)
        else:
            train_opt[key] = value
    return {
        "name": os.path.basename(os.path.normpath(exp_dir)),
        "model_type": model_type,
        "scale": scale,
        "num_gpu": 1 if device == "cuda" else 0,
        "dist": False,
        "rank": 0,
        "world_size": 1,
        "is_train": True,
        "network_g": copy.deepcopy(network_g or TINY_RRDB),
        "network_d": {"type": "SFDDiscriminator", **network_d},
        "path": {
            "pretrain_network_g": None,
            "pretrain_network_d": None,
            "strict_load_g": True,
            "resume_state": None,
            **paths,
        },
        "train": train_opt,
        "val": None,
        "logger": {"print_freq": 1, "use_tb_logger": False},
    }
