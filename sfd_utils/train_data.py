"""Bad data is bad input too: the training data checked where it is cheap, and named where only the run
can tell.

Up front, when the launcher builds a data set (:func:`check_dataset`) and its loader
(:func:`check_loader`): the set is not empty; the first image pair's header sizes (read without decoding)
fit the recipe's ``scale`` and ``gt_size``; a batch fits in one epoch's samples (BasicSR drops the last
incomplete batch, so a larger batch trains nothing at all) and an epoch's sample list fits in memory.

During the run, :class:`NamedDataErrors` wraps each data set: an item that fails for its data (BasicSR's
"Scale mismatches", a patch larger than the image, an unreadable file) raises :class:`DataError` naming
the data set, the files and the problem, which the launcher prints as one line (exit status 2), also
from a loader worker process.
"""

from __future__ import annotations

from sfd_utils.recipe import RecipeError

MAX_SAMPLES_PER_EPOCH = 10_000_000  # the sampler holds one epoch's order as a list (about 40 bytes each)
DATA_ERRORS = (ValueError, OSError, AssertionError)


class DataError(RecipeError):
    """Training data that does not fit the recipe; the message is one line."""


def _label(dataset_opt: dict, key: str = "") -> str:
    """``datasets.train.gt_size (set demo_sr_train)``: the YAML key, then the data set's name."""
    where = f"datasets.{dataset_opt.get('phase', '?')}" + (f".{key}" if key else "")
    return f"{where} (set {dataset_opt.get('name', '?')})"


def image_size(path: str) -> tuple[int, int] | None:
    """(height, width) from an image file's header, without decoding it; None when unknown."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            width, height = img.size
    except Exception:  # not an image PIL knows, or unreadable: the data set reports it when it reads it
        return None
    return height, width


def first_pair(dataset) -> tuple[str | None, str | None]:
    """(GT path, LQ path) of the data set's first item, where its path list says (BasicSR's paired
    and single-image sets, Real-ESRGAN's set); (None, None) otherwise."""
    paths = getattr(dataset, "paths", None)
    if not isinstance(paths, list) or not paths:
        return None, None
    first = paths[0]
    if isinstance(first, dict):
        return first.get("gt_path"), first.get("lq_path")
    return (first, None) if isinstance(first, str) else (None, None)


def check_dataset(dataset, dataset_opt: dict) -> None:
    """The data set has items, and its first pair fits ``scale`` and ``gt_size`` (disk backend only)."""
    label = _label(dataset_opt)
    try:
        size = len(dataset)
    except TypeError:
        return
    if size == 0:
        raise DataError(f"{label}: no images found; check its dataroot_* folders and meta-info file")
    if (dataset_opt.get("io_backend") or {}).get("type", "disk") != "disk":
        return
    gt_path, lq_path = first_pair(dataset)
    gt = image_size(gt_path) if gt_path else None
    lq = image_size(lq_path) if lq_path else None
    scale = dataset_opt.get("scale")
    if gt and lq and isinstance(scale, int) and (gt[0] != lq[0] * scale or gt[1] != lq[1] * scale):
        found = gt[0] / lq[0] if lq[0] else 0
        hint = f" (the pair is x{found:g})" if found and gt[1] == lq[1] * found else ""
        raise DataError(
            f"{label}: scale {scale} does not fit the first pair: GT {gt_path} is {gt[1]}x{gt[0]}, LQ {lq_path} "
            f"is {lq[1]}x{lq[0]}{hint}; set scale to the data's factor or point dataroot_lq at x{scale} images"
        )
    gt_size = dataset_opt.get("gt_size")
    if gt and dataset_opt.get("phase") == "train" and isinstance(gt_size, int) and lq_path:
        if gt_size > min(gt):
            raise DataError(
                f"{_label(dataset_opt, 'gt_size')}: {gt_size} is larger than the first GT image {gt_path} "
                f"({gt[1]}x{gt[0]}); lower gt_size or use larger images"
            )


def check_loader(opt: dict, train_loader, train_sampler) -> None:
    """One batch fits in an epoch's samples; an epoch's sample list fits in memory."""
    if train_loader is None:
        return
    train = opt["datasets"]["train"]
    n_set = len(train_loader.dataset)
    ratio = train.get("dataset_enlarge_ratio", 1)
    if n_set * ratio > MAX_SAMPLES_PER_EPOCH:
        raise DataError(
            f"datasets.train.dataset_enlarge_ratio: {ratio} x {n_set} images is {n_set * ratio:.0f} samples per "
            f"epoch; at most {MAX_SAMPLES_PER_EPOCH} (the epoch's order is held in memory)"
        )
    per_epoch = len(train_sampler) if train_sampler is not None else n_set
    batch = train_loader.batch_size or 1
    if per_epoch < batch:
        raise DataError(
            f"datasets.train.batch_size_per_gpu: a batch of {batch} is more than the {per_epoch} training samples of "
            "an epoch (the incomplete batch is dropped: nothing would train); lower it or raise dataset_enlarge_ratio"
        )


class NamedDataErrors:
    """A data set whose items' data errors (:data:`DATA_ERRORS`) raise :class:`DataError` naming the set,
    the item's files and the problem. Other attributes are the wrapped set's."""

    def __init__(self, dataset, dataset_opt: dict) -> None:
        self.dataset = dataset
        self.label = _label(dataset_opt)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name in ("dataset", "label"):  # during unpickling, before __init__ state is set
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _files(self, index) -> str:
        try:
            item = self.dataset.paths[int(index)]
        except Exception:
            return f"item {int(index)}"
        if isinstance(item, dict):
            return ", ".join(f"{k}: {v}" for k, v in item.items() if k.endswith("_path"))
        return str(item)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except DataError:
            raise
        except DATA_ERRORS as err:
            problem = (str(err).splitlines() or [type(err).__name__])[0].strip()
            raise DataError(f"{self.label}: {self._files(index)}: {problem}") from None


def one_line(err: BaseException) -> str:
    """The message of an error, also one re-raised from a loader worker (whose message carries the
    worker's traceback): its last line, without the exception's name."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())
