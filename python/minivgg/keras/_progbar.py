"""Keras 2's progress bar (``tf.keras.utils.Progbar``), as fit, evaluate and predict print it."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Iterable, Optional


def _stdout_is_dynamic() -> bool:
    stream = sys.stdout
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        tty = False
    return tty or "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def _format_time(seconds: float, unit_name: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit_name}"
    return f" {seconds * 1e6:.0f}us/{unit_name}"


def _format_value(value: float) -> str:
    return f" {value:.4f}" if abs(value) > 1e-3 else f" {value:.4e}"


class Progbar:
    """Keras' progress bar: ``Progbar(target)`` then ``update(current, values)``.

    verbose=1 draws ``"64/782 [=>....] - ETA: 40s - loss: 1.2345"``, redrawn in place (at most
    every ``interval`` seconds) when stdout is a terminal or a notebook, and ends with
    ``"782/782 [====] - 45s 57ms/step - loss: …"``. Difference from tf.keras: when stdout is
    not a terminal (a pipe or a file) only that final line is printed, not one line per redraw.
    verbose=2 prints only the final ``"782/782 - 45s - loss: … - 45s/epoch - 57ms/step"``.
    ``values`` are ``(name, value)`` pairs; those not in ``stateful_metrics`` are averaged over
    the steps, as Keras averages them.
    """

    def __init__(
        self,
        target: Optional[int],
        width: int = 30,
        verbose: int = 1,
        interval: float = 0.05,
        stateful_metrics: Optional[Iterable[str]] = None,
        unit_name: str = "step",
    ) -> None:
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics or ())
        self._dynamic_display = _stdout_is_dynamic()
        self._total_width = 0
        self._seen_so_far = 0
        self._values: dict[str, list[float]] = {}
        self._values_order: list[str] = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: Optional[float] = None
        self._time_at_epoch_start = self._start
        self._time_at_epoch_end: Optional[float] = None

    def update(
        self,
        current: int,
        values: Optional[Iterable[tuple[str, Any]]] = None,
        finalize: Optional[bool] = None,
    ) -> None:
        """Moves the bar to step ``current`` with these ``(name, value)`` pairs."""
        if finalize is None:
            finalize = bool(self.target is not None and current >= self.target)
        for name, value in values or ():
            if name not in self._values_order:
                self._values_order.append(name)
            if name in self.stateful_metrics:
                self._values[name] = [float(value), 1.0]
            else:
                steps = max(current - self._seen_so_far, 1)
                if name not in self._values:
                    self._values[name] = [float(value) * steps, float(steps)]
                else:
                    self._values[name][0] += float(value) * steps
                    self._values[name][1] += steps
        self._seen_so_far = current
        now = time.time()
        info = f" - {now - self._start:.0f}s"
        if current == self.target:
            self._time_at_epoch_end = now
        time_per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1:
            if not finalize and (
                not self._dynamic_display or now - self._last_update < self.interval
            ):
                return
            prev_total_width = self._total_width
            out = "\r" if self._dynamic_display else ""
            if self.target is not None:
                numdigits = int(math.log10(self.target)) + 1 if self.target > 0 else 1
                bar = f"{current:{numdigits}d}/{self.target} ["
                prog = current / self.target if self.target else 1.0
                prog_width = int(self.width * prog)
                if prog_width > 0:
                    bar += "=" * (prog_width - 1)
                    bar += ">" if current < self.target else "="
                bar += "." * (self.width - prog_width)
                bar += "]"
            else:
                bar = f"{current:7d}/Unknown"
            self._total_width = len(bar)
            if self.target is None or finalize:
                info += _format_time(time_per_unit, self.unit_name)
            else:
                eta = time_per_unit * (self.target - current)
                if eta > 3600:
                    eta_format = f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:{int(eta % 60):02d}"
                elif eta > 60:
                    eta_format = f"{int(eta // 60)}:{int(eta % 60):02d}"
                else:
                    eta_format = f"{int(eta)}s"
                info = f" - ETA: {eta_format}"
            info += self._values_text()
            self._total_width += len(info)
            if prev_total_width > self._total_width:
                info += " " * (prev_total_width - self._total_width)
            if finalize:
                info += "\n"
            sys.stdout.write(out + bar + info)
            sys.stdout.flush()
            self._last_update = now
        elif self.verbose == 2 and finalize:
            target = self.target if self.target is not None else current
            numdigits = int(math.log10(target)) + 1 if target > 0 else 1
            line = f"{current:{numdigits}d}/{target}" + info + self._values_text()
            end = self._time_at_epoch_end if self._time_at_epoch_end is not None else now
            time_per_epoch = end - self._time_at_epoch_start
            line += " -" + _format_time(time_per_epoch, "epoch")
            line += " -" + _format_time(time_per_epoch / max(target, 1), self.unit_name)
            self._time_at_epoch_start = now
            self._time_at_epoch_end = None
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def add(self, n: int, values: Optional[Iterable[tuple[str, Any]]] = None) -> None:
        """``update(current + n, values)``."""
        self.update(self._seen_so_far + n, values)

    def _values_text(self) -> str:
        text = ""
        for name in self._values_order:
            total, count = self._values[name]
            text += f" - {name}:" + _format_value(total / max(1.0, count))
        return text

    def _estimate_step_duration(self, current: int, now: float) -> float:
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_unit
