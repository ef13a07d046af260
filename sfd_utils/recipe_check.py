"""Start-up check of a training recipe's structure, before basicsr parses it or a model is built.

BasicSR indexes a recipe's sections as it goes (``opt['logger']['print_freq']``, ``build_network(**section)``,
``get_optimizer(type, params, **section)``, ...), so a missing section, a string where a number
belongs or a misspelt ``type:`` surfaces as a KeyError or TypeError deep inside, minutes into a run.
:func:`check_recipe` finds these on the options dict and raises one :class:`RecipeError` line
``<recipe>: <key>: <problem>``:

- required sections and keys (``name``, ``model_type``, ``num_gpu``, ``datasets.train`` with its
  batch keys, ``path``, ``network_g``, ``train`` with ``total_iter`` and ``scheduler``, ``logger``
  with ``print_freq`` and ``save_checkpoint_freq``; ``val.val_freq`` / ``save_img`` when ``val`` is given);
- every ``type:`` (model, networks, data sets, losses, validation metrics) looked up in BasicSR's
  registries, with the closest registered names;
- network, loss and metric options against the constructor's signature (unknown names with the
  closest ones, missing required ones, and the value's kind where an annotation or a numeric /
  boolean default states it);
- optimizers and the scheduler built once on a one-element dummy parameter through the model class's
  own ``get_optimizer`` / ``setup_schedulers`` (so a fork's supported types are the ones accepted);
- what the model class needs: SFDModel/SFDRealModel (an SFDDiscriminator, ``feat_gan_opt`` /
  ``text_gan_opt``, ``amp``), SFDRealModel/RealESRGANModel (the degradation keys), CSUDModel
  (``network_t``, ``optim_t``, ``gan_opt``), the stock GAN hosts (``network_d``, ``optim_d``,
  ``gan_opt``; RealESRGANModel needs CUDA).

Then the values' ranges (:func:`sfd_utils.recipe_values.check_values`: the run's name, the seed,
iteration counts, sizes, ratios, optimizer numbers). Returns warnings (lines) for what is allowed but
probably unintended. Files are checked by :mod:`sfd_utils.options_check`; this module reads nothing
from disk.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Mapping

from sfd_utils.option_kinds import GOT, accepts, describe, expected_kinds, kind, signature_params
from sfd_utils.recipe import RecipeError
from sfd_utils.recipe_values import check_values

# RealESRGANModel / SFDRealModel read these at the top level of the recipe: kind, or list length
SR_DEGRADATIONS = {
    **dict.fromkeys(("resize_prob", "resize_prob2"), 3),  # up, down, keep
    **dict.fromkeys(("resize_range", "noise_range", "poisson_scale_range", "jpeg_range"), 2),
    **dict.fromkeys(("resize_range2", "noise_range2", "poisson_scale_range2", "jpeg_range2"), 2),
    **dict.fromkeys(("gaussian_noise_prob", "gray_noise_prob", "second_blur_prob"), "number"),
    **dict.fromkeys(("gaussian_noise_prob2", "gray_noise_prob2"), "number"),
    "gt_size": "integer",
}
_ROOTS = {"string", "list"}  # a data folder (or, in some forks, a list of them)
# Keys basicsr's data sets index directly (``opt[key]``): kind, or the length of a list of numbers
DATASET_KEYS = {
    "PairedImageDataset": {
        "train": {
            **{"dataroot_gt": _ROOTS, "dataroot_lq": _ROOTS, "gt_size": "integer"},
            **{"use_hflip": "boolean", "use_rot": "boolean"},
        },
        "val": {"dataroot_gt": _ROOTS, "dataroot_lq": _ROOTS},
    },
    "RealESRGANDataset": {
        "train": {
            "dataroot_gt": _ROOTS,
            **{f"blur_kernel_size{s}": "integer" for s in ("", "2")},
            **{f"kernel_list{s}": "list" for s in ("", "2")},
            **{f"kernel_prob{s}": "list" for s in ("", "2")},
            **{f"{k}{s}": 2 for k in ("blur_sigma", "betag_range", "betap_range") for s in ("", "2")},
            **{k: "number" for k in ("sinc_prob", "sinc_prob2", "final_sinc_prob")},
            "use_hflip": "boolean",
            "use_rot": "boolean",
        }
    },
}
CUDA_ONLY_MODELS = ("RealESRGANModel", "RealESRGANModel_basicsr")  # their constructors call .cuda()
PARAMETER_FREE_GENERATORS = ("SFDBicubicUpsampler",)


def _closest(name: str, registry) -> str:
    names = list(registry._obj_map)
    low = name.lower()
    close = [n for n in names if n.lower() == low] or difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    close = close or [n for n in names if low in n.lower()][:3]
    if close:
        return f"; closest: {', '.join(close)}"
    if len(names) <= 12:
        return f"; registered: {', '.join(sorted(names))}"
    return f"; none of the {len(names)} registered names is close"


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []

    def fail(self, key: str, problem: str):
        raise RecipeError(f"{self.source}: {key}: {problem}")

    def warn(self, key: str, problem: str) -> None:
        self.warnings.append(f"{self.source}: {key}: {problem}")

    # -- values --------------------------------------------------------------------------------------
    def value(self, key: str, value, expected: set[str], strict: bool = True) -> None:
        if strict and not accepts(expected, value):
            hint = self._number_hint(value) if expected & {"integer", "number"} else ""
            self.fail(key, f"expected {describe(expected)}, got {self._shown(value)}{hint}")
        if not strict and isinstance(value, str) and expected & {"integer", "number", "boolean"}:
            self.fail(key, f"expected {describe(expected)}, got {self._shown(value)}{self._number_hint(value)}")
        if not strict and value is None and "null" not in expected:  # a numeric default: None breaks arithmetic
            self.fail(key, f"expected {describe(expected)}, got null")

    @staticmethod
    def _shown(value) -> str:
        """``'abc' (a string)``, ``[] (a list)``, ``a mapping``, ``null``."""
        if isinstance(value, Mapping):
            return "a mapping"
        if value is None:
            return "null"
        text = repr(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        return f"{text} ({GOT.get(kind(value), 'a ' + kind(value))})"

    @staticmethod
    def _number_hint(value) -> str:
        if not isinstance(value, str):
            return ""
        try:
            float(value)
        except ValueError:
            return ""
        return f" (YAML reads {value} as a string: write it with a dot, e.g. 1.0e-4, or as `!!float {value}`)"

    def need(self, section: Mapping, path: str, key: str, expected: set[str] | str | int, why: str = ""):
        """``section[key]`` must exist and be of ``expected`` kind(s); an int means a list of that many
        numbers."""
        length = expected if isinstance(expected, int) else None
        expected = {"list"} if length else {expected} if isinstance(expected, str) else expected
        full = f"{path}.{key}" if path else key
        if key not in section:
            self.fail(
                full, f"missing{why}; expected {describe(expected)}" + (f" of {length} numbers" if length else "")
            )
        self.value(full, section[key], expected)
        if length:
            value = section[key]
            if len(value) != length or not all(accepts({"number"}, v) for v in value):
                self.fail(full, f"{self._shown(value)}: expected a list of {length} numbers")
        return section[key]

    def at_least(self, key: str, value, low: int) -> None:
        if accepts({"number"}, value) and value < low:
            self.fail(key, f"{value!r}: must be at least {low}")

    def optional(self, section: Mapping, path: str, key: str, expected: set[str] | str):
        expected = {expected} if isinstance(expected, str) else expected
        if key in section:
            self.value(f"{path}.{key}" if path else key, section[key], expected | {"null"})
        return section.get(key)

    def mapping(self, opt: Mapping, key: str, required: bool = True, why: str = "", label: str = "") -> Mapping | None:
        """``opt[key]`` (a dotted path; ``label`` prefixes the name reported) as a mapping."""
        parts = key.split(".")
        node, prefix = opt, [label] if label else []
        for i, part in enumerate(parts):
            if not isinstance(node, Mapping) or part not in node or node[part] is None:
                if required:
                    self.fail(".".join(prefix + parts[: i + 1]), f"missing{why}; expected a mapping of options")
                return None
            node = node[part]
        if not isinstance(node, Mapping):
            self.fail(".".join(prefix + parts), f"expected a mapping of options, got {self._shown(node)}")
        return node

    # -- registered components -------------------------------------------------------------------------
    def registered(self, key: str, section: Mapping, registry, what: str, field: str = "type"):
        name = self.need(section, key, field, "string")
        found = registry._obj_map.get(name) or registry._obj_map.get(f"{name}_basicsr")
        if found is None:
            self.fail(
                f"{key}.{field}" if key else field, f"{name!r} is not a registered {what}{_closest(name, registry)}"
            )
        return found

    def arguments(self, key: str, section: Mapping, target, skip: tuple[str, ...] = ()) -> None:
        """``section`` (without ``type``) as keyword arguments of ``target``'s signature."""
        params, open_kwargs = signature_params(target)
        # a constructor whose **kwargs only collects unknown names to refuse them in its own words
        open_kwargs = open_kwargs and not getattr(target, "REFUSES_UNKNOWN_OPTIONS", False)
        label = f"{key} ({section.get('type')})"
        given = {k: v for k, v in section.items() if k != "type"}
        for name, value in given.items():
            if name not in params:
                close = difflib.get_close_matches(str(name), list(params), n=2, cutoff=0.6)
                hint = f"; did you mean {' or '.join(close)}?" if close else f"; it takes {', '.join(params) or 'none'}"
                if open_kwargs:
                    self.warn(
                        f"{key}.{name}", f"not a named option of {section.get('type')}; passed on as **kwargs{hint}"
                    )
                else:
                    self.fail(f"{key}.{name}", f"{section.get('type')} has no option {name!r}{hint}")
                continue
            expected, strict = expected_kinds(params[name])
            if expected is not None:
                self.value(f"{key}.{name}", value, expected, strict)
        for name, p in params.items():
            if p.default is p.empty and name not in given and name not in skip:
                self.fail(label, f"missing {name!r}, which {section.get('type')} requires")

    # -- sections ------------------------------------------------------------------------------------
    def top(self, opt: Mapping, model_cls) -> None:
        self.need(opt, "", "name", "string")
        num_gpu = self.need(opt, "", "num_gpu", {"integer", "string"})
        if isinstance(num_gpu, str) and num_gpu != "auto":
            self.fail("num_gpu", f"{num_gpu!r}: expected an integer or 'auto'")
        self.at_least("num_gpu", num_gpu, 0)
        self.optional(opt, "", "manual_seed", "integer")
        self.at_least("scale", self.optional(opt, "", "scale", "integer"), 1)
        if model_cls is not None and self._is(model_cls, "SRModel") and "scale" not in opt:
            self.fail("scale", "missing; expected an integer (the upscaling factor, e.g. 4)")

    def datasets(self, opt: Mapping, registry) -> None:
        datasets = self.mapping(opt, "datasets")
        self.mapping(opt, "datasets.train", why=" (the training data set)")
        for phase, section in datasets.items():
            key = f"datasets.{phase}"
            if phase != "train" and not str(phase).startswith("val"):
                self.fail(key, "a data set section is named train or val, val_1, val_2, ... in a training recipe")
            section = self.mapping(datasets, str(phase), label="datasets")
            self.registered(key, section, registry, "data set")
            self.need(section, key, "name", {"string", "integer"})
            backend = section.get("io_backend")
            if backend is not None or section.get("type") in DATASET_KEYS:
                backend = self.mapping(
                    section, "io_backend", label=key, why=f" in {key} (e.g. io_backend: {{type: disk}})"
                )
                self.io_backend(f"{key}.io_backend", backend)
            phase_kind = "train" if phase == "train" else "val"
            for name, expected in DATASET_KEYS.get(section.get("type"), {}).get(phase_kind, {}).items():
                self.need(section, key, name, expected, f" ({section['type']} reads it)")
            for suffix in ("", "2"):
                kernels, probs = section.get(f"kernel_list{suffix}"), section.get(f"kernel_prob{suffix}")
                if isinstance(kernels, list) and isinstance(probs, list) and len(kernels) != len(probs):
                    self.fail(f"{key}.kernel_prob{suffix}", f"{len(probs)} probabilities for {len(kernels)} kernels")
            for name, value in section.items():
                if str(name).startswith("dataroot"):
                    items = value if isinstance(value, list) else [value]
                    for item in items:
                        self.value(f"{key}.{name}", item, {"string", "null"})
            self.at_least(f"{key}.gt_size", self.optional(section, key, "gt_size", "integer"), 1)
            self.optional(section, key, "dataset_enlarge_ratio", "number")
            for name in ("use_hflip", "use_rot", "use_shuffle"):
                self.optional(section, key, name, "boolean")
            mode = self.optional(section, key, "prefetch_mode", "string")
            if mode not in (None, "cpu", "cuda"):
                self.fail(f"{key}.prefetch_mode", f"{mode!r}: expected null, cpu or cuda")
        train = datasets["train"]
        self.at_least(
            "datasets.train.batch_size_per_gpu", self.need(train, "datasets.train", "batch_size_per_gpu", "integer"), 1
        )
        self.at_least(
            "datasets.train.num_worker_per_gpu", self.need(train, "datasets.train", "num_worker_per_gpu", "integer"), 0
        )

    def io_backend(self, key: str, backend: Mapping) -> None:
        from basicsr.utils.file_client import FileClient

        name = self.need(backend, key, "type", "string")
        known = sorted(getattr(FileClient, "_backends", {"disk": 0, "lmdb": 0, "memcached": 0}))
        if name not in known:
            close = [k for k in known if k == str(name).lower()] or difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            self.fail(f"{key}.type", f"{name!r} is not a storage backend basicsr reads ({', '.join(known)}){hint}")
        backend_cls = getattr(FileClient, "_backends", {}).get(name)
        if backend_cls is not None:  # the data set passes the other keys to the backend's constructor
            self.arguments(key, backend, backend_cls, skip=("db_paths",))

    def networks(self, opt: Mapping, registry) -> None:
        self.mapping(opt, "network_g", why=" (the generator)")
        for key in [k for k in opt if str(k).startswith("network_")]:
            if opt[key] is None:
                continue
            section = self.mapping(opt, key)
            self.arguments(key, section, self.registered(key, section, registry, "architecture"))

    def path(self, opt: Mapping) -> None:
        path = self.mapping(opt, "path", why=" (it may be empty: `path: {}`)")
        for name, value in path.items():
            name = str(name)
            if name.startswith(("pretrain_network_", "param_key_")) or name == "resume_state":
                self.value(f"path.{name}", value, {"string", "null"})
            elif name.startswith("strict_load_"):
                self.value(f"path.{name}", value, {"boolean"})

    def train(self, opt: Mapping, model_cls, losses) -> None:
        train = self.mapping(opt, "train", why=" (optimizers, scheduler, losses, total_iter)")
        self.at_least("train.total_iter", self.need(train, "train", "total_iter", {"integer", "number"}), 1)
        for name in ("warmup_iter", "ema_decay", "net_d_iters", "net_d_init_iters"):
            self.optional(train, "train", name, "number")
        for name, section in train.items():
            name = str(name)
            if name.endswith("_opt") and section is not None:
                section = self.mapping(train, name, label="train")
                self.arguments(f"train.{name}", section, self.registered(f"train.{name}", section, losses, "loss"))
            elif name.startswith("optim_") and section is not None:
                self.optimizer(f"train.{name}", self.mapping(train, name, label="train"), model_cls)
        if model_cls is None or self._is(model_cls, "SRModel"):  # SRModel.init_training_settings sets it up
            why = " (e.g. {type: MultiStepLR, milestones: [...], gamma: 0.5})"
            self.scheduler(self.mapping(train, "scheduler", label="train", why=why), model_cls)

    def optimizer(self, key: str, section: Mapping, model_cls) -> None:
        import torch

        name = self.need(section, key, "type", "string")
        kwargs = {k: v for k, v in section.items() if k != "type"}
        if "lr" not in kwargs:
            self.fail(f"{key}.lr", "missing; expected a number (the learning rate)")
        self.value(f"{key}.lr", kwargs["lr"], {"number"}, strict=True)
        torch_cls = getattr(torch.optim, name, None)
        if inspect.isclass(torch_cls) and issubclass(torch_cls, torch.optim.Optimizer):
            self.arguments(key, section, torch_cls, skip=("params",))
        if model_cls is None:
            return
        params = [torch.nn.Parameter(torch.zeros(1))]
        try:
            model_cls.get_optimizer(object.__new__(model_cls), name, params, **copy.deepcopy(kwargs))
        except NotImplementedError:
            supported = self._supported_optimizers(model_cls)
            close = difflib.get_close_matches(name, supported, n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            supports = f"{model_cls.__name__} supports ({', '.join(supported)})"
            self.fail(f"{key}.type", f"{name!r} is not an optimizer {supports}{hint}")
        except (TypeError, ValueError, KeyError) as err:
            self.fail(key, f"{name} refuses these options: {str(err).splitlines()[0]}")
        except Exception:  # a fork's get_optimizer that needs a built model: not checkable here
            return

    @staticmethod
    def _supported_optimizers(model_cls) -> list[str]:
        import torch

        names = ["Adam", "AdamW", "Adamax", "SGD", "ASGD", "RMSprop", "Rprop", "Adagrad", "Adadelta", "NAdam", "RAdam"]
        found = []
        for name in names:
            try:
                model_cls.get_optimizer(object.__new__(model_cls), name, [torch.nn.Parameter(torch.zeros(1))], 1e-4)
            except NotImplementedError:
                continue
            except Exception:  # noqa: S112  (supported, just not with these arguments)
                pass
            found.append(name)
        return found

    def scheduler(self, section: Mapping, model_cls) -> None:
        import torch
        from basicsr.models import lr_scheduler

        name = self.need(section, "train.scheduler", "type", "string")
        known = {
            "MultiStepLR": (lr_scheduler.MultiStepRestartLR, "milestones"),
            "MultiStepRestartLR": (lr_scheduler.MultiStepRestartLR, "milestones"),
            "CosineAnnealingRestartLR": (lr_scheduler.CosineAnnealingRestartLR, "periods"),
        }
        if name in known:
            cls, steps = known[name]
            for item in self.need(section, "train.scheduler", steps, "list"):
                self.value(f"train.scheduler.{steps}", item, {"integer", "number"})
            self.arguments("train.scheduler", section, cls, skip=("optimizer",))
        if model_cls is None:
            return
        model = object.__new__(model_cls)
        model.opt = {"train": {"scheduler": copy.deepcopy(dict(section))}}
        model.optimizers = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)]
        model.schedulers = []
        try:
            model_cls.setup_schedulers(model)
        except NotImplementedError:
            known_names = "basicsr's: MultiStepLR, MultiStepRestartLR, CosineAnnealingRestartLR"
            self.fail(
                "train.scheduler.type", f"{name!r} is not a scheduler {model_cls.__name__} supports ({known_names})"
            )
        except (TypeError, ValueError, KeyError, IndexError) as err:
            self.fail("train.scheduler", f"{name} refuses these options: {str(err).splitlines()[0]}")
        except Exception:  # a fork's scheduler set-up that needs more of the model: not checkable here
            return

    def val(self, opt: Mapping, metrics) -> None:
        val = self.mapping(opt, "val", required=False)
        if val is None:
            return
        self.at_least("val.val_freq", self.need(val, "val", "val_freq", {"integer", "number"}), 1)
        self.need(val, "val", "save_img", "boolean")
        section = self.mapping(val, "metrics", required=False, label="val") or {}
        for name in section:
            key = f"val.metrics.{name}"
            metric = self.mapping(section, str(name), label="val.metrics")
            function = self.registered(key, metric, metrics, "metric")
            given = {k: v for k, v in metric.items() if k != "better"}  # read by basicsr, passed on too
            self.arguments(key, given, function, skip=("img", "img2"))
            self.optional(metric, key, "crop_border", "integer")
            better = metric.get("better", "higher")
            if better not in ("higher", "lower"):
                self.fail(f"{key}.better", f"{better!r}: expected higher or lower")

    def logger(self, opt: Mapping) -> None:
        logger = self.mapping(opt, "logger", why=" (print_freq, save_checkpoint_freq, use_tb_logger)")
        self.at_least("logger.print_freq", self.need(logger, "logger", "print_freq", "integer"), 1)
        freq = self.need(logger, "logger", "save_checkpoint_freq", {"integer", "number"})
        self.at_least("logger.save_checkpoint_freq", freq, 1)
        self.optional(logger, "logger", "use_tb_logger", "boolean")
        wandb = logger.get("wandb")
        if wandb is not None:
            self.mapping(logger, "wandb", label="logger")

    # -- what a model class needs ------------------------------------------------------------------------
    @staticmethod
    def _is(cls, name: str) -> bool:
        return any(c.__name__ == name for c in getattr(cls, "__mro__", ()))

    def model_needs(self, opt: Mapping, model_cls) -> None:
        if model_cls is None:
            return
        train = opt["train"]
        model = opt["model_type"]
        d_type = (opt.get("network_d") or {}).get("type")
        if self._is(model_cls, "SRModel"):
            if not (self._is(model_cls, "SFDModel") and opt["network_g"].get("type") in PARAMETER_FREE_GENERATORS):
                self.mapping(opt, "train.optim_g", why=f" ({model} trains network_g with it)")
        if self._is(model_cls, "SRGANModel"):
            self.mapping(opt, "network_d", why=f" ({model} trains a discriminator)")
            self.mapping(opt, "train.optim_d", why=f" ({model} trains network_d with it)")
        if self._is(model_cls, "SFDModel"):
            if d_type != "SFDDiscriminator":
                others = "use SRGANModel/ESRGANModel for other discriminators"
                self.fail("network_d.type", f"{d_type!r}: {model} needs SFDDiscriminator ({others})")
            if train.get("gan_opt"):
                self.fail("train.gan_opt", f"{model} takes train.feat_gan_opt / train.text_gan_opt instead")
            for head, loss in (("use_feat", "feat_gan_opt"), ("use_text", "text_gan_opt")):
                if opt["network_d"].get(head, True) and not train.get(loss):
                    problem = f"missing while network_d.{head} is on; expected a mapping with type: SFDGANLoss"
                    self.fail(f"train.{loss}", problem)
            amp = train.get("amp")
            if amp not in (None, False, "bf16", "fp16"):
                self.fail("train.amp", f"{amp!r}: expected null, bf16 or fp16")
        elif self._is(model_cls, "CSUDModel"):
            self.mapping(opt, "network_t", why=" (CSUDModel's rain generator)")
            for key in ("optim_t", "gan_opt"):
                self.mapping(opt, f"train.{key}", why=" (required by CSUDModel)")
        elif self._is(model_cls, "SRGANModel"):
            self.mapping(opt, "train.gan_opt", why=f" ({model} computes its adversarial loss with it)")
            if d_type == "SFDDiscriminator":
                for loss in ("feat_gan_opt", "text_gan_opt"):
                    if train.get(loss):
                        self.warn(f"train.{loss}", f"ignored by {model}: it trains SFDDiscriminator with train.gan_opt")
        if self._is(model_cls, "RealESRGANModel") or self._is(model_cls, "SFDRealModel"):
            for key, expected in SR_DEGRADATIONS.items():
                self.need(opt, "", key, expected, f" ({model} synthesises LR with it)")
        if model in CUDA_ONLY_MODELS:
            import torch

            if not torch.cuda.is_available() or opt.get("num_gpu") == 0:
                cpu = "on CPU use SFDRealModel, which takes the same options"
                self.fail("model_type", f"{model} needs CUDA (its constructor calls .cuda()); {cpu}")


def check_recipe(opt: Mapping, source: str = "recipe") -> list[str]:
    """Check a training recipe's structure (see the module doc). Raises :class:`RecipeError` (one line,
    ``<source>: <key>: <problem>``) at the first problem; returns warnings as lines."""
    from basicsr.utils.registry import (
        ARCH_REGISTRY,
        DATASET_REGISTRY,
        LOSS_REGISTRY,
        METRIC_REGISTRY,
        MODEL_REGISTRY,
    )

    c = _Checker(source)
    if not isinstance(opt, Mapping) or not opt:
        c.fail("recipe", "empty; a training recipe needs name, model_type, datasets, network_g, path, train, logger")
    train = opt.get("train")
    if "model_type" not in opt and isinstance(train, Mapping) and isinstance(train.get("losses"), list):
        c.fail(
            "model_type",
            "missing: this looks like a traiNNer-redux recipe (train.losses); run it with traiNNer's train.py",
        )
    c.need(opt, "", "model_type", "string")
    model_cls = c.registered("", opt, MODEL_REGISTRY, "model", field="model_type")
    c.top(opt, model_cls)
    c.datasets(opt, DATASET_REGISTRY)
    c.networks(opt, ARCH_REGISTRY)
    c.path(opt)
    c.train(opt, model_cls, LOSS_REGISTRY)
    c.val(opt, METRIC_REGISTRY)
    c.logger(opt)
    c.model_needs(opt, model_cls)
    check_values(c, opt)
    return c.warnings
