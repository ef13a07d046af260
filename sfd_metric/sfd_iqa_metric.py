"""SFD-IQA as a BasicSR validation metric (METRIC_REGISTRY name ``calculate_sfd_iqa``).

Recipe usage (any model's ``val.metrics`` block)::

    metrics:
      sfd_iqa:
        type: calculate_sfd_iqa
        checkpoint: experiments/<run>/models/net_d_latest.pth   # an SFD discriminator checkpoint,
                                  # or `current`: the discriminator SFDModel is training (its validation)
        clip_pretrained: ~        # ~ = the CLIP weights recorded in the checkpoint; or a local file
        component: q              # q | q_feat | q_text
        tile: ~                   # ~ = recorded training patch size, else 256
        crop_border: 0
        better: higher

The scorer is built once per (checkpoint file, options) and reused for every image.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from basicsr.utils.registry import METRIC_REGISTRY

from sfd_metric.sfd_iqa import COMPONENTS, SFDIQA, check_component, get_scorer, metric_image

__all__ = ["COMPONENTS", "calculate_sfd_iqa", "get_scorer", "live_discriminator"]
CURRENT = "current"
_live: dict = {}  # the discriminator being trained, while SFDModel validates (live_discriminator)


@contextmanager
def live_discriminator(disc, tile: int) -> Iterator[None]:
    """Within the block, ``checkpoint: current`` scores with ``disc`` (the bare SFDDiscriminator being
    trained) at ``tile``; its train/eval mode is restored afterwards. Used by SFDModel.validation."""
    was_training = disc.training
    _live.clear()
    _live.update(disc=disc, tile=tile, scorers={})
    try:
        yield
    finally:
        _live.clear()
        disc.train(was_training)


def _live_scorer(tile: int | None, **options) -> SFDIQA:
    if not _live:
        raise ValueError(
            "calculate_sfd_iqa: `checkpoint: current` means the discriminator an SFDModel is training and "
            "works only in that model's validation; elsewhere give a net_d_<iter>.pth file"
        )
    options.pop("clip_pretrained", None)
    key = (tile, tuple(sorted((k, str(v)) for k, v in options.items())))
    if key not in _live["scorers"]:  # once per validation: prompts are fixed while it runs
        disc = _live["disc"]
        device = options.pop("device", None) or next(disc.parameters()).device
        _live["scorers"][key] = SFDIQA(disc, tile or _live["tile"], device=device, **options)
    return _live["scorers"][key]


@METRIC_REGISTRY.register()
def calculate_sfd_iqa(
    img: np.ndarray,
    crop_border: int = 0,
    checkpoint: str | None = None,
    clip_pretrained: str | None = None,
    component: str = "q",
    input_order: str = "HWC",
    tile: int | None = None,
    stride: int | None = None,
    alpha: float = 0.5,
    batch_size: int = 16,
    bf16: bool = False,
    device: str | None = None,
    **kwargs,
) -> float:
    """SFD-IQA of one image as BasicSR validation passes it: higher is better, in [0, 1].

    Args:
        img (ndarray): (H, W, 3) BGR (BasicSR's ``tensor2img`` output), uint8 in [0, 255] (uint16 and
            float in [0, 1] work too); 'CHW' with ``input_order``.
        crop_border (int): pixels cut from each edge first. Default: 0.
        checkpoint (str): SFD discriminator checkpoint (required), or ``'current'`` inside SFDModel's
            validation: the discriminator being trained, at the training crop size unless ``tile``.
        clip_pretrained (str | None): override of the recorded CLIP weights. Default: None.
        component (str): 'q' (Q), 'q_feat' or 'q_text'. Default: 'q'.
        tile, stride, alpha, batch_size, bf16, device: see :class:`SFDIQA`.
        **kwargs: other YAML keys BasicSR passes through (``img2``, ``better``, ...), ignored.
    """
    check_component(component)
    img = metric_image(img, input_order, crop_border, bgr=True)  # BasicSR passes BGR
    options = dict(stride=stride, alpha=alpha, batch_size=batch_size, bf16=bf16, device=device)
    if checkpoint == CURRENT:
        scorer = _live_scorer(tile, **options)
    else:
        scorer = get_scorer(checkpoint, clip_pretrained=clip_pretrained, tile=tile, **options)
    return float(getattr(scorer.score(img), component))
