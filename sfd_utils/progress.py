"""Training feedback for BasicSR's loop, installed by the launcher (``sfd_utils.launcher``).

- Every log line says how far the run is (percent), how fast (iterations/s) and the ETA; BasicSR's
  ETA counts one iteration too few and prints ``-1 day, 23:59:59`` on the last one.
- Between two ``print_freq`` lines a short progress line is written whenever ``HEARTBEAT_S`` seconds
  have passed, so a slow run (CPU, big crops) is never silent for long.
- BasicSR validates at ``total_iter`` inside the loop and then once more after it (labelled
  ``total_iter + 1``) with the same weights: the second call is skipped; a final validation that
  did not run inside the loop is labelled with ``total_iter``.
"""

from __future__ import annotations

import datetime
import time

HEARTBEAT_S = 20.0


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=max(0, int(round(seconds)))))


class Progress:
    """Rate and ETA from the iterations done since the run (or the resume) started."""

    def __init__(self, name: str, start_iter: int, total_iter: int) -> None:
        self.name, self.start_iter, self.total_iter = name, int(start_iter), int(total_iter)
        self.start_time = self.last_line = time.time()

    def reset(self) -> None:
        self.start_time = self.last_line = time.time()

    def summary(self, current_iter: int) -> str:
        done = max(current_iter - self.start_iter, 1)
        rate = done / max(time.time() - self.start_time, 1e-9)
        left = max(self.total_iter - current_iter, 0)
        pct = 100.0 * min(current_iter, self.total_iter) / max(self.total_iter, 1)
        return f"{pct:5.1f}%, {rate:.2f} it/s, eta {_eta(left / rate)}"


_current: Progress | None = None


def make_message_logger(base):
    """A subclass of BasicSR's ``MessageLogger`` whose lines carry percent, rate and a non-negative ETA."""

    class ProgressMessageLogger(base):
        def __init__(self, opt, start_iter=1, tb_logger=None):
            super().__init__(opt, start_iter, tb_logger)
            global _current
            _current = self.progress = Progress(self.exp_name, start_iter, self.max_iters)

        def reset_start_time(self):
            super().reset_start_time()
            self.progress.reset()

        def __call__(self, log_vars):
            from basicsr.utils.dist_util import get_dist_info

            if get_dist_info()[0] != 0:
                return
            log_vars = dict(log_vars)
            epoch, current_iter, lrs = log_vars.pop("epoch"), log_vars.pop("iter"), log_vars.pop("lrs")
            lr = ",".join(f"{v:.3e}" for v in lrs)
            message = (
                f"[{self.exp_name[:5]}..][epoch:{epoch:3d}, iter:{current_iter:8,d}/{self.max_iters:,d}, lr:({lr})] "
            )
            message += f"[{self.progress.summary(current_iter)}"
            if "time" in log_vars:
                iter_time, data_time = log_vars.pop("time"), log_vars.pop("data_time")
                message += f", time (data): {iter_time:.3f} ({data_time:.3f})"
            message += "] "
            for key, value in log_vars.items():
                message += f"{key}: {value:.4e} "
                if self.use_tb_logger and "debug" not in self.exp_name:
                    self.tb_logger.add_scalar(f"losses/{key}" if key.startswith("l_") else key, value, current_iter)
            self.logger.info(message)
            self.progress.last_line = time.time()

    ProgressMessageLogger.__name__ = ProgressMessageLogger.__qualname__ = "MessageLogger"
    return ProgressMessageLogger


def heartbeat(current_iter: int) -> None:
    """Log a progress line when nothing was logged for HEARTBEAT_S seconds (master rank only)."""
    progress = _current
    if progress is None or time.time() - progress.last_line < HEARTBEAT_S:
        return
    from basicsr.utils import get_root_logger
    from basicsr.utils.dist_util import get_dist_info

    if get_dist_info()[0] == 0:
        get_root_logger().info(
            f"[{progress.name[:5]}..] iter {current_iter:,d}/{progress.total_iter:,d}: {progress.summary(current_iter)}"
        )
    progress.last_line = time.time()


def attach(model, opt: dict):
    """Per-iteration heartbeat and the final-validation fix on a model BasicSR built (instance-level)."""
    total = int(opt.get("train", {}).get("total_iter", 0) or 0)
    optimize, validation = model.optimize_parameters, model.validation
    done = {"validated_at": None}

    def optimize_parameters(current_iter, *args, **kwargs):
        out = optimize(current_iter, *args, **kwargs)
        heartbeat(current_iter)
        return out

    def validation_once(dataloader, current_iter, *args, **kwargs):
        if total and current_iter > total:  # the call after the loop ends
            if done["validated_at"] == total:
                from basicsr.utils import get_root_logger

                get_root_logger().info(f"Final validation already done at iter {total:,d}; not repeated.")
                return None
            current_iter = total
        done["validated_at"] = current_iter
        return validation(dataloader, current_iter, *args, **kwargs)

    model.optimize_parameters = optimize_parameters
    model.validation = validation_once
    return model


def with_progress(build_model):
    """Wrap ``basicsr.models.build_model`` so every model gets :func:`attach`."""
    if getattr(build_model, "_sfd_progress", False):
        return build_model

    def build(opt):
        return attach(build_model(opt), opt)

    build._sfd_progress = True
    return build
