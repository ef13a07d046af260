"""``network_d`` options of SFDDiscriminator: checked before anything is built, every error one line
naming ``network_d.<key>`` (with close matches for a misspelt key).

Both hosts build the discriminator as ``SFDDiscriminator(**network_d)``. traiNNer-redux's ``train.py``
prints an uncaught start-up error with rich's traceback, a box with the code of every frame (about
90 lines for a misspelt ``clip_model``, before the message). :func:`raise_option_error` raises from a
frame that tells rich to leave out the frames above it, so the box holds one short frame and the
message. Python's own traceback (BasicSR's ``train.py``) is unchanged.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from typing import NoReturn

from sfd_arch.cuda_graphs import FAST_PATHS
from sfd_arch.feat_discriminator_arch import FEAT_NORMS

KEY = "network_d"
CLIP_DTYPES = ("auto", "fp32", "bf16", "fp16")


class NetworkOptionError(ValueError):
    """A ``network_d`` option SFDDiscriminator cannot use; the message names the key."""


def raise_option_error(exc: BaseException) -> NoReturn:
    """Raise ``exc`` (a one-line option error) without the chained error it replaces.

    ``_rich_traceback_guard`` is rich's frame marker (since rich 12.3, next to the documented
    ``_rich_traceback_omit``): its traceback renderer, which traiNNer-redux installs, drops every
    frame above the one that holds it. Without rich the variable does nothing.
    """
    _rich_traceback_guard = True  # noqa: F841  (read by rich.traceback from this frame's locals)
    raise exc from None


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _text(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _path(v) -> bool:
    return _text(v) or (isinstance(v, os.PathLike) and bool(os.fspath(v)))


# option -> (accepts the value?, what it must be)
CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "clip_model": (_text, "an open_clip model name (RN50, ViT-B-16, ...)"),
    "clip_pretrained": (lambda v: v is None or _path(v), "an open_clip tag, a file path, or null (random weights)"),
    "feat_layers": (
        lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) > 0 and all(_int(i) for i in v)),
        "null or a list of layer numbers, e.g. [1, 2, 3]",
    ),
    "feat_mid_channels": (lambda v: _int(v) and v >= 1, "a positive integer"),
    "feat_norm": (lambda v: v in FEAT_NORMS, " | ".join(FEAT_NORMS)),
    "feat_head_depth": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "feat_head_kernel": (lambda v: _int(v) and v >= 1 and v % 2 == 1, "an odd positive integer (1, 3, 5, ...)"),
    "n_ctx": (lambda v: _int(v) and v >= 1, "a positive integer"),
    "pos_words": (_text, "non-empty text"),
    "neg_words": (_text, "non-empty text"),
    "ctx_init": (lambda v: v is None or _text(v), "null or a phrase"),
    "use_feat": (lambda v: isinstance(v, bool), "true or false"),
    "use_text": (lambda v: isinstance(v, bool), "true or false"),
    "clip_cache_dir": (lambda v: v is None or _path(v), "null or a folder"),
    "clip_config": (lambda v: v is None or _path(v), "null or an open_clip config JSON (file or folder)"),
    "clip_input_size": (lambda v: v is None or (_int(v) and v >= 1), "null or a positive integer (e.g. 224)"),
    "clip_dtype": (lambda v: v in CLIP_DTYPES, " | ".join(CLIP_DTYPES)),
    "reuse_features": (lambda v: isinstance(v, bool), "true or false"),
    "fast_path": (lambda v: isinstance(v, bool) or v in FAST_PATHS, " | ".join(FAST_PATHS)),  # YAML: off = false
}


def unknown_option_error(unknown: Iterable[str], known: Iterable[str]) -> NetworkOptionError:
    """One line for keys SFDDiscriminator does not take, with the close matches of each."""
    known = sorted(known)
    parts = []
    for key in sorted(unknown):
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        parts.append(f"{KEY}.{key}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    many = len(parts) > 1
    return NetworkOptionError(
        f"{', '.join(parts)}: unknown option{'s' if many else ''} of SFDDiscriminator "
        "(all options: docs/options.md of sfd-basicsr)"
    )


def check_options(options: dict, known: Iterable[str]) -> None:
    """Raise (through :func:`raise_option_error`) for an unknown key or a value of the wrong kind."""
    unknown = set(options) - set(known) - {"type"}
    if unknown:
        raise_option_error(unknown_option_error(unknown, known))
    for key, value in options.items():
        accepts, what = CHECKS.get(key, (None, ""))
        if accepts is not None and not accepts(value):
            raise_option_error(NetworkOptionError(f"{KEY}.{key}: must be {what}, got {value!r}"))
    if options.get("use_feat") is False and options.get("use_text") is False:
        raise_option_error(NetworkOptionError(f"{KEY}: at least one of use_feat / use_text must be true"))


def reraise_named(err: Exception, known: Iterable[str], options: dict) -> None:
    """Re-raise an error of the build (CLIP, heads, prompts) whose message starts with an option name
    (``clip_model: unknown open_clip model ...``) as the same type, named ``network_d.<option>``;
    any other error is left to propagate as it is."""
    text = str(err.args[0]) if err.args else ""
    name = next((k for k in known if text.startswith(k) and text[len(k) : len(k) + 1] in (":", " ", "=")), None)
    if name is None or len(err.args) != 1:
        return
    if name == "clip_model" and "unknown" in text and not options.get("clip_config"):
        text += f"; a model of your own needs {KEY}.clip_config (its open_clip JSON)"
    try:
        renamed = type(err)(f"{KEY}.{text}")
    except TypeError:  # an exception type that takes other arguments: leave it alone
        return
    raise_option_error(renamed)
