"""Searches over minivgg runs on Ray Tune, on one machine or a Ray cluster.

A sweep file (TOML) names the flags every trial shares and the ones to search, with
``minivgg train``'s names (``weight_decay`` for ``--weight-decay``)::

    [train]                      # every trial
    epochs = 10
    seed = 42                    # the default: trials differ only in what is searched

    [search]                     # a list: each value (a grid); or a Tune distribution
    lr = [0.01, 0.02]
    weight_decay = {loguniform = [1e-5, 1e-3]}
    augment = [false, true]

    [tune]                       # how Ray runs it (all optional)
    metric = "val_accuracy"      # with mode: which trial is best, what ASHA compares
    mode = "max"
    scheduler = "asha"           # or "fifo": every trial to its end
    grace_period = 2             # ASHA: epochs before a trial may be stopped
    reduction_factor = 2
    num_samples = 1              # how many times the search space is drawn
    cpus_per_trial = 2           # each trial's --threads
    max_failures = 2             # restarts from the last checkpoint after a lost worker

One trial is one ``minivgg train`` run in the trial's process: it reports every epoch's
``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and ``lr`` to Tune with that epoch's
checkpoint, and a trial restarted from one ends with the same weights, bit for bit, as a run
never stopped. ``python -m minivgg.tune SWEEP.toml`` runs a sweep (``--address`` joins a
cluster) and writes Tune's table, the best trial's files and the ``minivgg train`` command
that replays it; see docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import _minivgg

__all__ = ["Sweep", "load_sweep", "run_sweep", "train_flags", "main"]

# The flags the sweep sets for each trial: where its files go and how many threads it has.
SET_PER_TRIAL = {
    "output": "each trial writes its files in its own directory",
    "save": "each trial saves its model with its files",
    "save_best": "each trial saves its final model",
    "checkpoint_dir": "Tune keeps each trial's checkpoints",
    "keep_checkpoints": "Tune keeps each trial's checkpoints",
    "resume": "Tune resumes a trial from its checkpoint",
    "tensorboard": "Tune writes TensorBoard files of every trial (docs/sweeps.md)",
    "threads": "a trial's threads are the CPUs Tune gives it: set [tune] cpus_per_trial",
}
# A sweep's [tune] table and its defaults.
TUNE_DEFAULTS: dict[str, Any] = {
    "metric": "val_accuracy",
    "mode": "max",
    "scheduler": "asha",
    "grace_period": 1,
    "reduction_factor": 2,
    "num_samples": 1,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "max_failures": 2,
    "max_concurrent_trials": 0,
}
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")
# What a finished trial's last checkpoint holds besides its files: its last figures.
FINISHED = "finished.json"
# Where a trial works, in its own directory: its checkpoint and its files.
TRIAL_CHECKPOINT = Path("checkpoint")
TRIAL_OUTPUT = Path("output")
MODEL = "model.safetensors"


def train_flags(knobs: Mapping[str, Any]) -> list[str]:
    """``minivgg train``'s flags for ``knobs``: ``{"lr": 0.02, "augment": True}`` gives
    ``["--lr", "0.02", "--augment"]``; a knob that is ``False`` gives no flag."""
    flags: list[str] = []
    for key, value in knobs.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags += [flag] if value else []
        else:
            flags += [flag, str(value)]
    return flags


class Sweep:
    """A checked sweep file: the knobs every trial shares, the search space and Tune's
    settings."""

    def __init__(self, source: str, fixed: dict[str, Any], search: dict[str, Any], tune: dict[str, Any]):
        self.source = source
        self.fixed = fixed
        self.search = search
        self.tune = tune

    def param_space(self) -> dict[str, Any]:
        """The search as Tune's search space."""
        from ray import tune

        def domain(value: Any) -> Any:
            if isinstance(value, list):
                return tune.grid_search(value)
            (kind, arguments), = value.items()
            return tune.choice(arguments) if kind == "choice" else getattr(tune, kind)(*arguments)

        return {key: domain(value) for key, value in self.search.items()}

    def trial_flags(self, config: Mapping[str, Any], threads: int) -> list[str]:
        """The flags of the trial with ``config``: as the replay command gives them."""
        return train_flags({**self.fixed, **config, "threads": threads})


def _refuse(source: str, where: str, message: str) -> ValueError:
    return ValueError(f"{source}: {where}: {message}")


# The knobs that may name a file: trials run in their own directories, where a relative path
# is not the user's.
PATH_KNOBS = ("data", "model")


def _absolute_if_path(key: str, value: Any) -> Any:
    if key in PATH_KNOBS and isinstance(value, str) and Path(value).exists():
        return str(Path(value).resolve())
    return value


def _values_to_check(source: str, key: str, value: Any) -> list[Any]:
    """The values of a search entry that `train` must take: each of a list, a distribution's
    ends or choices."""
    if isinstance(value, list):
        if not value:
            raise _refuse(source, f"search.{key}", "an empty list: give the values to try")
        return value
    if isinstance(value, dict) and len(value) == 1:
        (kind, arguments), = value.items()
        if kind in DISTRIBUTIONS and isinstance(arguments, list):
            if kind == "choice":
                if arguments:
                    return arguments
            elif len(arguments) == 2 and all(isinstance(a, (int, float)) for a in arguments):
                low, high = arguments
                if low < high:
                    return [low, high - 1] if kind == "randint" else [low, high]
    raise _refuse(
        source,
        f"search.{key}",
        f"{value!r} is not a search: give a list of values, or one of "
        + ", ".join(f"{{{kind} = [...]}}" for kind in DISTRIBUTIONS)
        + " (two numbers, low < high; choice: the values)",
    )


def _check_flags(source: str, where: str, knobs: dict[str, Any], threads: int) -> None:
    """Refuses ``knobs`` (with ``threads``) if ``minivgg train`` would, naming their flags."""
    try:
        _minivgg.check_train_flags(train_flags({**knobs, "threads": threads}))
    except ValueError as err:
        why = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        raise _refuse(source, where, f"minivgg train refuses {shlex.join(train_flags(knobs))}: {why}") from None


def load_sweep(sweep: str | os.PathLike | Mapping[str, Any]) -> Sweep:
    """Reads and checks a sweep file (or its contents as a dict): every trial's flags are
    checked as ``minivgg train`` checks them, before Ray starts; a bad one raises ValueError
    naming the key."""
    if isinstance(sweep, Mapping):
        source, tables = "the sweep", dict(sweep)
    else:
        source = str(sweep)
        try:
            text = Path(sweep).read_bytes()
        except OSError as err:
            raise ValueError(f"{source}: cannot read the sweep file: {err.strerror}") from None
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            import tomli as tomllib
        try:
            tables = tomllib.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"{source}: not a TOML file: {err}") from None
    for name in tables:
        if name not in ("train", "search", "tune"):
            raise _refuse(source, f"[{name}]", "unknown table: a sweep has [train], [search] and [tune]")
    for name in tables:
        if not isinstance(tables[name], Mapping):
            raise _refuse(source, name, f"[{name}] must be a table of keys")
    fixed = {key: _absolute_if_path(key, value) for key, value in tables.get("train", {}).items()}
    search = {
        key: [_absolute_if_path(key, one) for one in value] if isinstance(value, list) else value
        for key, value in tables.get("search", {}).items()
    }
    tune = dict(TUNE_DEFAULTS)
    for key, value in tables.get("tune", {}).items():
        if key not in TUNE_DEFAULTS:
            raise _refuse(source, f"tune.{key}", "unknown setting: " + ", ".join(TUNE_DEFAULTS))
        if type(value) is not type(TUNE_DEFAULTS[key]):
            kind = type(TUNE_DEFAULTS[key]).__name__
            raise _refuse(source, f"tune.{key}", f"{value!r} is not a {kind}")
        tune[key] = value
    if tune["metric"] not in METRICS:
        raise _refuse(source, "tune.metric", f"{tune['metric']!r}: one of " + ", ".join(METRICS))
    if tune["mode"] not in ("min", "max"):
        raise _refuse(source, "tune.mode", f"{tune['mode']!r}: min or max")
    if tune["scheduler"] not in ("asha", "fifo"):
        raise _refuse(source, "tune.scheduler", f"{tune['scheduler']!r}: asha or fifo")
    for key in ("grace_period", "num_samples", "cpus_per_trial"):
        if tune[key] < 1:
            raise _refuse(source, f"tune.{key}", f"{tune[key]}: at least 1")
    for key in ("gpus_per_trial", "max_failures", "max_concurrent_trials"):
        if tune[key] < 0:
            raise _refuse(source, f"tune.{key}", f"{tune[key]}: at least 0")
    if tune["reduction_factor"] < 2:
        raise _refuse(source, "tune.reduction_factor", f"{tune['reduction_factor']}: at least 2")
    cores = os.cpu_count() or 1
    for table, knobs in (("train", fixed), ("search", search)):
        for key in knobs:
            if key in SET_PER_TRIAL:
                raise _refuse(source, f"{table}.{key}", f"set by the sweep: {SET_PER_TRIAL[key]}")
            if key in fixed and key in search and table == "search":
                raise _refuse(source, f"search.{key}", "also in [train]: give it in one of them")
    # Trials differ only in what they search; a seed makes each one replayable.
    if "seed" not in fixed and "seed" not in search:
        fixed["seed"] = 42
    threads = min(tune["cpus_per_trial"], cores)
    for key, value in fixed.items():
        _check_flags(source, f"train.{key}", {key: value}, threads)
    _check_flags(source, "[train]", fixed, threads)
    for key, value in search.items():
        for one in _values_to_check(source, key, value):
            where = f"search.{key} = {json.dumps(one)}"
            _check_flags(source, where, {key: one}, threads)
            _check_flags(source, where, {**fixed, key: one}, threads)
    if "epochs" not in fixed and "epochs" not in search:
        fixed["epochs"] = 40
    return Sweep(source, fixed, search, tune)


def train_trial(config: dict[str, Any], sweep: Sweep, environment: dict[str, str]) -> None:
    """One trial: ``minivgg train`` with the sweep's and ``config``'s flags in this process,
    reporting each epoch to Tune with its checkpoint, or going on from Tune's checkpoint."""
    import ray
    from ray import tune

    os.environ.update(environment)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", sweep.tune["cpus_per_trial"])
    threads = max(1, int(cpus))
    node = ray.get_runtime_context().get_node_id()
    flags = sweep.trial_flags(config, threads) + [
        "--save",
        str(TRIAL_OUTPUT / MODEL),
        "--checkpoint-dir",
        str(TRIAL_CHECKPOINT),
    ]
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as saved:
            saved = Path(saved)
            if (saved / FINISHED).exists():
                # The trial had finished: its last result again.
                tune.report(json.loads((saved / FINISHED).read_text())["metrics"], checkpoint=restored)
                return
            shutil.rmtree(TRIAL_CHECKPOINT, ignore_errors=True)
            TRIAL_CHECKPOINT.mkdir()
            for file in saved.iterdir():
                shutil.copy2(file, TRIAL_CHECKPOINT / file.name)
        flags = ["--resume", str(TRIAL_CHECKPOINT), "--threads", str(threads)]
        if "data" in sweep.fixed or "data" in config:
            flags += ["--data", str(config.get("data", sweep.fixed.get("data")))]
    last: dict[str, Any] = {}

    def on_epoch(figures: dict[str, Any]) -> None:
        metrics = {key: figures[key] for key in ("epoch", *METRICS, "lr")}
        metrics["node_id"] = node
        if figures["epoch"] == figures["epochs"]:
            # Reported with the run's files once it has written them.
            last.update(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            shutil.copy2(figures["checkpoint"], directory)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))

    _minivgg.train(flags, on_epoch)
    with tempfile.TemporaryDirectory() as directory:
        shutil.copytree(TRIAL_OUTPUT, directory, dirs_exist_ok=True)
        replay = sweep.trial_flags(config, threads)
        (Path(directory) / FINISHED).write_text(json.dumps({"metrics": last, "flags": replay}))
        tune.report(last, checkpoint=tune.Checkpoint.from_directory(directory))


def run_sweep(
    sweep: str | os.PathLike | Mapping[str, Any] | Sweep,
    output: str | os.PathLike,
    address: str | None = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Runs the sweep on Ray Tune (``address`` names a cluster to join; without it, the Ray
    already started in this process or a new local one), then writes ``trials.csv`` (Tune's
    table), the best finished trial's files under ``best/`` and ``best/replay.sh`` (the
    ``minivgg train`` command that replays it) in ``output``. Returns Tune's ResultGrid."""
    sweep = sweep if isinstance(sweep, Sweep) else load_sweep(sweep)
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if not ray.is_initialized():
        if address is None:
            # A Ray of its own on this machine: every process on 127.0.0.1 (docs/sweeps.md).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray.init(address=address)
    settings = sweep.tune
    environment = {key: os.environ[key] for key in ("MINIVGG_DATA", "MINIVGG_CPU") if key in os.environ}
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, sweep=sweep, environment=environment),
        {"cpu": settings["cpus_per_trial"], "gpu": settings["gpus_per_trial"]},
    )
    epochs = int(sweep.fixed["epochs"]) if "epochs" in sweep.fixed else None
    if settings["scheduler"] == "asha":
        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=epochs or 10_000,
            grace_period=settings["grace_period"],
            reduction_factor=settings["reduction_factor"],
        )
    else:
        scheduler = FIFOScheduler()
    name = Path(sweep.source).stem if sweep.source != "the sweep" else "sweep"
    tuner = tune.Tuner(
        trainable,
        param_space=sweep.param_space(),
        tune_config=tune.TuneConfig(
            metric=settings["metric"],
            mode=settings["mode"],
            scheduler=scheduler,
            num_samples=settings["num_samples"],
            max_concurrent_trials=settings["max_concurrent_trials"] or None,
            reuse_actors=False,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(output / "ray"),
            failure_config=tune.FailureConfig(max_failures=settings["max_failures"]),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=list(callbacks),
        ),
    )
    results = tuner.fit()
    write_results(results, sweep, output)
    return results


def write_results(results: Any, sweep: Sweep, output: Path) -> None:
    """Tune's table as ``trials.csv`` (printed too), and the best finished trial's files and
    replay command under ``best/``."""
    table = results.get_dataframe()
    columns = ["trial_id", *[f"config/{key}" for key in sweep.search], "epoch", *METRICS, "lr"]
    table = table[[column for column in columns if column in table.columns]]
    table.to_csv(output / "trials.csv", index=False)
    print(table.to_string(index=False))
    finished = [r for r in results if r.checkpoint is not None and not r.error and _finished(r.checkpoint)]
    if not finished:
        print(f"[INFO] no trial finished: see {output / 'ray'}")
        return
    sign = 1 if sweep.tune["mode"] == "max" else -1
    best = max(finished, key=lambda r: sign * r.metrics[sweep.tune["metric"]])
    target = output / "best"
    shutil.rmtree(target, ignore_errors=True)
    with best.checkpoint.as_directory() as saved:
        shutil.copytree(saved, target)
    flags = json.loads((target / FINISHED).read_text())["flags"]
    (target / FINISHED).unlink()
    replay = ["minivgg", "train", *flags, "--output", "replay/plot.png", "--save", f"replay/{MODEL}"]
    if "--data" not in flags and "MINIVGG_DATA" in os.environ:
        # The data the trials read: CIFAR-10 where the sweep's environment said.
        replay = ["env", f"MINIVGG_DATA={os.environ['MINIVGG_DATA']}", *replay]
    (target / "replay.sh").write_text(
        "#!/bin/sh\n# The best trial's run, again: the same flags, seed and threads give the same weights.\n"
        f'cd "$(dirname "$0")" && {shlex.join(replay)}\n'
    )
    figure = best.metrics[sweep.tune["metric"]]
    print(
        f"[INFO] best trial {best.metrics['trial_id']}: {sweep.tune['metric']} {figure:.4f} "
        f"after {best.metrics['epoch']} epochs; its files are in {target}, "
        f"its replay: {target / 'replay.sh'}"
    )


def _finished(checkpoint: Any) -> bool:
    with checkpoint.as_directory() as saved:
        return (Path(saved) / FINISHED).exists()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minivgg.tune SWEEP.toml``: runs the sweep; exit 2 for a bad sweep file."""
    parser = argparse.ArgumentParser(
        prog="python -m minivgg.tune",
        description="Run a sweep of minivgg trainings on Ray Tune (docs/sweeps.md).",
    )
    parser.add_argument("sweep", help="the sweep file (TOML): [train], [search], [tune]")
    parser.add_argument("--output", help="where the table and the best trial go (default: output/sweep_NAME)")
    parser.add_argument("--address", help="a Ray cluster to join (auto, or HOST:PORT); default: a local Ray")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.sweep)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    output = args.output or f"output/sweep_{Path(args.sweep).stem}"
    run_sweep(sweep, output, address=args.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
