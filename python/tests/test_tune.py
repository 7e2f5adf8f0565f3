"""Sweeps on Ray Tune: a real two-node Ray cluster on this machine (every node on 127.0.0.1)
runs trials of `minivgg train` that report each epoch with its checkpoint; a finished trial
is the command line's run, row for row and byte for byte; a trial whose worker is killed
goes on from its checkpoint to the same weights; bad sweep files are refused before Ray
starts, naming the key."""

import csv
import json
import os
import signal
import shutil
import subprocess
import sys
import threading
import time

import pytest
from conftest import run_minivgg

# Ray takes the machine's network address unless told; the test's traffic stays on loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray  # noqa: E402
from ray import tune as ray_tune  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from minivgg import tune  # noqa: E402

LIMIT = 1024


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray cluster of two nodes of one CPU each, started as separate processes."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def history(csv_path):
    """A history CSV's rows without their wall time."""
    with open(csv_path) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def command_line_run(tmp_path, flags, name):
    """`minivgg train` with `flags`: its history and model bytes."""
    out = tmp_path / name
    done = run_minivgg("train", *flags, "--output", out / "plot.png", "--save", out / "model.safetensors")
    assert done.returncode == 0, done.stderr
    return history(out / "plot.csv"), (out / "model.safetensors").read_bytes()


def trial_files(result, tmp_path, name):
    """A finished trial's replay flags, history and model bytes, from its last checkpoint."""
    target = tmp_path / name
    with result.checkpoint.as_directory() as saved:

        shutil.copytree(saved, target)
    flags = json.loads((target / tune.FINISHED).read_text())["flags"]
    csv_path = next(target.glob("*minivgg*.csv"))
    return flags, history(csv_path), (target / tune.MODEL).read_bytes()


def test_a_sweep_runs_on_both_nodes_and_each_finished_trial_is_the_command_lines_run(two_nodes, tmp_path):
    nodes = ray.nodes()
    assert [node["NodeManagerAddress"] for node in nodes] == ["127.0.0.1", "127.0.0.1"]
    sweep = {
        "train": {"epochs": 2, "limit": LIMIT, "seed": 3},
        "search": {"lr": [0.01, 0.03], "augment": [False, True]},
        "tune": {"cpus_per_trial": 1, "grace_period": 1, "metric": "val_loss", "mode": "min"},
    }
    results = tune.run_sweep(sweep, tmp_path / "sweep")
    assert len(results) == 4 and not results.errors
    ran_on = {result.metrics["node_id"] for result in results}
    assert ran_on == {node["NodeID"] for node in nodes}, "the trials ran on one node only"
    finished = [r for r in results if r.metrics["epoch"] == 2]
    assert finished, "ASHA stopped every trial"
    for i, result in enumerate(finished):
        flags, trial_history, trial_model = trial_files(result, tmp_path, f"trial{i}")
        assert flags[flags.index("--threads") + 1] == "1"
        cli_history, cli_model = command_line_run(tmp_path, flags, f"cli{i}")
        assert trial_history == cli_history
        assert len(trial_history) == 2
        assert trial_model == cli_model
        # What Tune was told each epoch is what the history says.
        reported = result.metrics_dataframe
        assert list(reported["epoch"]) == [1, 2]
        assert float(reported["val_loss"].iloc[-1]) == pytest.approx(float(trial_history[-1]["val_loss"]), rel=1e-12)
    best = tmp_path / "sweep" / "best"
    assert (best / "replay.sh").read_text().count("minivgg train") == 1
    with open(tmp_path / "sweep" / "trials.csv") as f:
        assert len(list(csv.DictReader(f))) == 4


class KillAfterFirstEpoch(ray_tune.Callback):
    """Kills the trial's worker (SIGKILL) 0.3 s after its first epoch's report."""

    def __init__(self):
        self.killed = None
        self.epochs_reported = []
        self.by_worker = {}
        self.recovered = 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.epochs_reported.append(result["epoch"])
        self.by_worker.setdefault(result["pid"], []).append(result["epoch"])
        if self.killed is None and result["epoch"] == 1:
            # From another thread, so Tune files the epoch's checkpoint first, as it would
            # before any real failure.
            self.killed = result["pid"]
            threading.Timer(0.3, os.kill, (self.killed, signal.SIGKILL)).start()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.recovered += 1


def test_a_trial_whose_worker_is_killed_goes_on_from_its_checkpoint_to_the_same_weights(two_nodes, tmp_path):
    sweep = {
        "train": {"epochs": 3, "limit": LIMIT, "seed": 11},
        "search": {"lr": [0.02]},
        "tune": {"cpus_per_trial": 1, "scheduler": "fifo", "max_failures": 1},
    }
    killer = KillAfterFirstEpoch()
    results = tune.run_sweep(sweep, tmp_path / "sweep", callbacks=[killer])
    assert killer.killed is not None and killer.recovered == 1
    # Killed during its second epoch: it had reported the first only.
    assert killer.by_worker[killer.killed] == [1]
    # Epoch 1 is not trained again: the restarted worker went on from its checkpoint.
    assert killer.epochs_reported == [1, 2, 3]
    (result,) = results
    assert result.metrics["pid"] != killer.killed
    flags, trial_history, trial_model = trial_files(result, tmp_path, "trial")
    cli_history, cli_model = command_line_run(tmp_path, flags, "cli")
    assert trial_model == cli_model
    assert trial_history == cli_history


@pytest.mark.parametrize(
    "sweep_file, key, message",
    [
        ("[search]\nlerning_rate = [0.01]\n", "search.lerning_rate = 0.01", "unexpected argument '--lerning-rate'"),
        ("[train]\nmomentum = 1.5\n", "train.momentum", "--momentum"),
        ("[search]\nepochs = [2, 0]\n", "search.epochs = 0", "--epochs"),
        ("[train]\ndata = \"no/such/folder\"\n", "train.data", "data path no/such/folder (from --data) does not exist"),
        ("[train]\nthreads = 2\n", "train.threads", "set by the sweep"),
        ("[tune]\nschedular = \"asha\"\n", "tune.schedular", "unknown setting"),
        ("[search]\nlr = {loguniform = [0.1, 0.01]}\n", "search.lr", "not a search"),
    ],
)
def test_a_bad_sweep_file_is_refused_before_ray_starts_naming_the_key(tmp_path, sweep_file, key, message):
    path = tmp_path / "bad.toml"
    path.write_text(sweep_file)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "minivgg.tune", str(path), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {path}: {key}: "), done.stderr
    assert message in done.stderr
    assert "Ray" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - started < 30


def test_paths_in_a_sweep_are_made_absolute_for_the_trials_and_other_values_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pictures").mkdir()
    (tmp_path / "linear").mkdir()
    sweep = tune.load_sweep(
        {"train": {"data": "pictures", "schedule": "linear"}, "search": {"model": ["lenet", "shallownet"]}}
    )
    assert sweep.fixed == {"data": str(tmp_path / "pictures"), "schedule": "linear", "seed": 42, "epochs": 40}
    assert sweep.search == {"model": ["lenet", "shallownet"]}
    assert sweep.trial_flags({"model": "lenet"}, 2) == [
        "--data", str(tmp_path / "pictures"), "--schedule", "linear", "--seed", "42", "--epochs", "40",
        "--model", "lenet", "--threads", "2",
    ]
