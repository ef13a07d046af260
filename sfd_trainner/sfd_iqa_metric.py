"""SFD-IQA as a traiNNer-redux validation metric (METRIC_REGISTRY name ``calculate_sfd_iqa``).

traiNNer calls every metric as ``fn(img=sr, img2=gt, **yaml_options, device=device)`` with RGB
uint8 (H, W, 3) arrays. Recipe usage::

    val:
      metrics_enabled: true
      metrics:
        sfd_iqa:
          type: calculate_sfd_iqa
          checkpoint: experiments/<run>/models/resume_models/net_d_<iter>.safetensors
          better: higher

The scorer (one per checkpoint file and options) is built once and reused for every image.
"""

from __future__ import annotations

import numpy as np
import torch

from sfd_metric.sfd_iqa import check_component, get_scorer, metric_image


def calculate_sfd_iqa(
    img: np.ndarray,
    checkpoint: str | None = None,
    device: torch.device | str | None = None,
    crop_border: int = 0,
    clip_pretrained: str | None = None,
    component: str = "q",
    input_order: str = "HWC",
    tile: int | None = None,
    stride: int | None = None,
    alpha: float = 0.5,
    batch_size: int = 16,
    bf16: bool = False,
    **kwargs,
) -> float:
    """SFD-IQA of one image as traiNNer validation passes it: higher is better, in [0, 1].

    Args:
        img (ndarray): (H, W, 3) RGB uint8 in [0, 255] (uint16 and float in [0, 1] work too);
            'CHW' with ``input_order``.
        checkpoint (str): an SFD discriminator file: traiNNer's ``net_d_<iter>.safetensors`` / ``.pth``
            or BasicSR's ``net_d_<iter>.pth`` (required).
        device: where to score (traiNNer passes its model device). Default: CUDA if available.
        crop_border (int): pixels cut from each edge first. Default: 0.
        clip_pretrained (str | None): override of the recorded CLIP weights. Default: None.
        component (str): 'q' (Q), 'q_feat' or 'q_text'. Default: 'q'.
        tile, stride, alpha, batch_size, bf16: see :class:`sfd_metric.sfd_iqa.SFDIQA`.
        **kwargs: other keys traiNNer passes (``img2``, ``better``), ignored: SFD-IQA is no-reference.
    """
    check_component(component)
    img = metric_image(img, input_order, crop_border, bgr=False)  # traiNNer passes RGB
    scorer = get_scorer(
        checkpoint,
        clip_pretrained=clip_pretrained,
        tile=tile,
        stride=stride,
        alpha=alpha,
        batch_size=batch_size,
        bf16=bf16,
        device=str(device) if device is not None else None,
    )
    return float(getattr(scorer.score(img), component))
