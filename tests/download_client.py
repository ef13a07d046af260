"""The plugin's download code in a fresh interpreter, for tests/test_downloads.py.

huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE / HF_HOME when it is imported, so each scenario
runs here with the loopback server in its environment. Usage:
``python tests/download_client.py '<json list of [step, argument]>'``; prints one line
``RESULT <json>`` with one entry per step (``ok`` + what it returned, or the error's type and
message, and the seconds it took) and whether ``os.environ`` is unchanged.

Tags of the tiny CLIP (``tiny-rn``) are registered here as open_clip registers its own
(``<tag>`` -> hub repo ``sfd-test/tiny-rn-<tag>/``), so the real tag code path runs on a 2 MB file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

# Third-party libraries set variables when imported (cv2: QT_*, open_clip's tokenizer:
# TOKENIZERS_PARALLELISM, torch's inductor: TORCHINDUCTOR_CACHE_DIR): import them before the
# snapshot; the plugin itself must add or change nothing.
import cv2  # noqa: F401
import huggingface_hub  # noqa: F401
import open_clip.tokenizer  # noqa: F401
import torch

import basicsr  # noqa: F401  (the pip package; ruff sees the repo's basicsr/ launcher folder as ours)

ENV_AT_START = dict(os.environ)
TINY_TAGS = ("loopback", "badhash", "dropped", "resumed")


def register_tiny_tags() -> None:
    import open_clip
    from open_clip.pretrained import _PRETRAINED, _pcfg

    from sfd_arch.clip_weights import TINY_CLIP_CONFIGS

    open_clip.add_model_config(TINY_CLIP_CONFIGS)
    for tag in TINY_TAGS:
        _PRETRAINED.setdefault("tiny-rn", {})[tag] = _pcfg(hf_hub=f"sfd-test/tiny-rn-{tag}/", quick_gelu=True)


def step_disc(tag: str) -> dict:
    """SFDDiscriminator on the tiny CLIP with a tag: what it records about the weights."""
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    disc = SFDDiscriminator(clip_model="tiny-rn", clip_pretrained=tag, feat_mid_channels=8, n_ctx=2)
    keys = ("clip_pretrained", "clip_weights_file", "clip_weights_sha256", "clip_weights_size")
    return {k: disc.config.get(k) for k in keys}


def step_iqa(tag: str) -> dict:
    """Save a tiny discriminator, score a photo with SFD-IQA from that checkpoint (the CLIP weights
    are found again by the recorded tag)."""
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
    from sfd_metric.sfd_iqa import SFDIQA
    from sfd_utils.photos import load_photo

    disc = SFDDiscriminator(clip_model="tiny-rn", clip_pretrained=tag, feat_mid_channels=8, n_ctx=2)
    path = os.path.join(tempfile.mkdtemp(), "net_d.pth")
    torch.save(disc.state_dict(), path)
    score = SFDIQA.from_checkpoint(path, tile=64, device="cpu").score(load_photo("chelsea")[:128, :128])
    return {"q": score.q}


def step_resolve(arg: list) -> dict:
    from sfd_arch.clip_weights import resolve_clip_weights

    model, tag = arg
    path, _ = resolve_clip_weights(model, tag)
    return {"path": path}


def step_rn50_recipe(recipe: str) -> dict:
    """The recipe's network_d exactly as written (RN50, clip_pretrained: openai): the start-up check,
    then the network, as the training does."""
    import yaml

    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    with open(recipe) as f:
        section = dict(yaml.safe_load(f)["network_d"])
    section.pop("type")
    SFDDiscriminator.check_options(section)
    disc = SFDDiscriminator(**section)
    keys = ("clip_model", "clip_pretrained", "clip_weights_file", "clip_weights_sha256")
    return {k: disc.config.get(k) for k in keys}


def step_hub_other(arg: list) -> dict:
    """Another library's hub download in the same process (huggingface_hub directly)."""
    import hashlib

    from huggingface_hub import hf_hub_download

    repo, name = arg
    path = hf_hub_download(repo, name)
    return {"path": path, "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}


def step_url(arg: list) -> dict:
    """sfd_utils.downloads.fetch_url of torchvision's file ``name`` with the base URL at ``base``."""
    from sfd_utils import downloads

    base, name = arg
    downloads.TORCHVISION_URL = base
    return {"path": downloads.fetch_url(downloads.torchvision_url(name), "test.key", "supply it by hand")}


def step_vgg(base: str) -> dict:
    """SFDPerceptualLoss's VGG19 lookup (``vgg_weights: ~``) with torchvision's base URL at ``base``."""
    from sfd_loss.sfd_loss import find_vgg19_weights
    from sfd_utils import downloads

    downloads.TORCHVISION_URL = base
    return {"path": find_vgg19_weights(None)}


STEPS = {
    "disc": step_disc,
    "iqa": step_iqa,
    "resolve": step_resolve,
    "rn50_recipe": step_rn50_recipe,
    "hub_other": step_hub_other,
    "url": step_url,
    "vgg": step_vgg,
}


def main(steps: list) -> None:
    register_tiny_tags()
    results = []
    for name, arg in steps:
        start = time.monotonic()
        try:
            entry = {"ok": True, **STEPS[name](arg)}
        except Exception as err:  # reported to the test, which judges it
            entry = {"ok": False, "type": type(err).__name__, "error": str(err)}
            entry["file_not_found"] = isinstance(err, FileNotFoundError)
        entry.update(step=name, seconds=round(time.monotonic() - start, 2))
        results.append(entry)
    now = dict(os.environ)
    changed = sorted(k for k in set(now) | set(ENV_AT_START) if now.get(k) != ENV_AT_START.get(k))
    print("RESULT " + json.dumps({"steps": results, "environ_changed": changed}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
