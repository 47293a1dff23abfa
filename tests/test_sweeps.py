"""Sweeps: -m runs each job in its own run folder, an Optuna search, and the SLURM launcher config."""

import os
import subprocess
import sys

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from conftest import FAST

TINY_RUN = [*FAST, "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1"]


def electra_pretrain_multirun(cwd, *overrides):
    """``electra-pretrain -m ...`` run in ``cwd``, W&B offline; returns the run folders it made."""
    result = subprocess.run(
        [sys.executable, "-m", "electra_lit.cli.pretrain", "-m", *overrides],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=cwd,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return sorted(p for p in (cwd / "runs" / "pretrain").iterdir() if p.is_dir() and not p.name.startswith("."))


def compose_with_hydra(*overrides):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("pretrain", overrides=["run_dir=unused", *overrides], return_hydra_config=True)


@pytest.mark.slow
def test_multirun_jobs_get_own_run_dirs_and_one_wandb_group(tmp_path, cache_dir):
    from electra_lit.runs.naming import keys_not_in_run_names, run_name

    sweep = ["masking.mask_prob=0.15,0.2", *TINY_RUN, "logger=wandb"]
    run_dirs = electra_pretrain_multirun(tmp_path, *sweep, f"cache_dir={cache_dir}")
    assert len(run_dirs) == 2
    groups, run_ids, mask_probs = set(), set(), set()
    for run_dir in run_dirs:  # named after each job's overrides (long names end in a hash)
        assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
        assert (run_dir / "metrics.csv").is_file()
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        mask_probs.add(config["masking"]["mask_prob"])
        groups.add(config["logger"]["wandb"]["group"])
        run_id = (run_dir / "wandb_run_id").read_text().strip()
        assert list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))
        run_ids.add(run_id)
    assert mask_probs == {0.15, 0.2}  # each job got its own value
    assert len(run_ids) == 2  # a W&B run per job...
    named = sorted(o for o in sweep if o.split("=")[0] not in keys_not_in_run_names())
    assert groups == {run_name(",".join(named))}  # ...in one group, named after the sweep's overrides


# ------------------------------------------------------------------------- Optuna searches
# trials of 2 steps: shorter than the tiny recipe's validation interval (trainer.val_check_interval=100)
SHORT_TRIALS = [*FAST, "trainer.max_steps=2", "trainer.limit_val_batches=1"]
STUDY = "electra_pretrain"


def electra_pretrain_search(cwd, *overrides):
    """``electra-pretrain -m hparams_search=electra_optuna ...`` in ``cwd``, whatever its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "electra_lit.cli.pretrain", "-m", "hparams_search=electra_optuna", *overrides],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=cwd,
        env={**os.environ, "WANDB_MODE": "offline"},
    )


def run_dirs(cwd):
    return sorted(p for p in (cwd / "runs" / "pretrain").iterdir() if p.is_dir() and not p.name.startswith("."))


def journal(cwd):
    return cwd / "runs" / "pretrain" / ".optuna" / f"{STUDY}.journal"


def load_study(storage):
    """The study as a later command would see it: a journal file path or a database URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" not in str(storage):
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(storage)))
    return optuna.load_study(study_name=STUDY, storage=storage)


def trials_in(study, state):
    return study.get_trials(deepcopy=False, states=(state,))


def test_optuna_search_config():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.samplers import TPESampler

    from electra_lit.runs.optuna_search import build_sampler, search_space

    sweeper = compose_with_hydra("hparams_search=electra_optuna").hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.electra_lit_optuna.optuna_sweeper.OptunaSweeper"
    assert (sweeper.direction, sweeper.n_trials, sweeper.n_jobs) == ("minimize", 20, 1)
    assert sweeper.storage == "runs/pretrain/.optuna/electra_pretrain.journal"  # kept by default: resumable
    space, fixed = search_space(sweeper.params, ["hparams_search=electra_optuna", "recipe=tiny"])
    assert space == {  # only keys that leave val/loss comparable; the warmup up to the run's length
        "optimizer.lr": FloatDistribution(1e-4, 2e-3, log=True),
        "lr_schedule.warmup_steps": IntDistribution(1, 1000, log=True),
    }
    assert fixed == ["hparams_search=electra_optuna", "recipe=tiny"]

    command_line = [  # the command line's sweeps join the space; a value there replaces a search
        "optimizer.lr=0.001",
        "optimizer.weight_decay=interval(0, 0.1)",
        "+lr_schedule.warmup_steps=range(0, 100, 25)",
        "optimizer.eps=choice(1e-6, 1e-8)",
        "data.batch_size=8,16",
    ]
    space, fixed = search_space(sweeper.params, command_line)
    assert space == {
        "optimizer.weight_decay": FloatDistribution(0.0, 0.1),
        "+lr_schedule.warmup_steps": IntDistribution(0, 75, step=25),
        "optimizer.eps": CategoricalDistribution([1e-6, 1e-8]),
        "data.batch_size": CategoricalDistribution([8, 16]),
    }
    assert fixed == ["optimizer.lr=0.001"]

    import optuna

    def first_values(trials_so_far):
        study = optuna.create_study(sampler=build_sampler(sweeper.sampler, trials_so_far))
        return [study.ask(space).params for _ in range(2)]

    assert isinstance(build_sampler(sweeper.sampler, 0), TPESampler)
    assert first_values(0) == first_values(0)  # seeded: the first command's trials are reproducible
    assert first_values(2)[0] != first_values(0)[0]  # a resumed study does not ask for them again


def test_interrupted_trials_run_again_with_their_values():
    """A trial its command left RUNNING (killed) fails, and its values are the next trial's."""
    import optuna
    from optuna.trial import TrialState

    from electra_lit.runs.optuna_search import TrialStopped, TrialTask, requeue_interrupted

    study = optuna.create_study()
    space = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-3, log=True)}
    study.tell(study.ask(space), 1.0)
    killed = study.ask(space)
    assert requeue_interrupted(study) == [killed.number]
    assert study.trials[killed.number].state == TrialState.FAIL
    again = study.ask(space)
    assert again.params == killed.params and study.trials[again.number].user_attrs == {"retry_of": killed.number}
    assert requeue_interrupted(study) == [again.number]  # a retry killed too is retried again

    def stops(cfg):
        sys.exit(2)  # what a one-line error (a diverged loss) does in electra-pretrain

    with pytest.raises(TrialStopped):  # the trial fails; the search goes on
        TrialTask(stops)(None)


@pytest.mark.slow
def test_optuna_search_of_short_trials_completes_and_reports_the_best(tmp_path, cache_dir):
    from optuna.trial import TrialState

    result = electra_pretrain_search(
        tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", f"cache_dir={cache_dir}", *SHORT_TRIALS
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 2 and all((d / "checkpoints" / "last.ckpt").is_file() for d in dirs)
    results = yaml.safe_load((tmp_path / "runs" / "pretrain" / "optimization_results.yaml").read_text())
    assert results["best_value"] > 0 and (results["n_complete"], results["n_failed"]) == (2, 0)
    assert set(results["best_params"]) == {"optimizer.lr", "lr_schedule.warmup_steps"}
    study = load_study(journal(tmp_path))  # kept in the sweep folder
    assert len(trials_in(study, TrialState.COMPLETE)) == 2 and study.best_value == results["best_value"]


@pytest.mark.slow
def test_trials_without_a_value_fail_and_the_search_says_so(tmp_path, cache_dir):
    from optuna.trial import TrialState

    no_validation = [*SHORT_TRIALS, "trainer.limit_val_batches=0"]  # no val/loss: the trials return None
    result = electra_pretrain_search(tmp_path, "hydra.sweeper.n_trials=2", f"cache_dir={cache_dir}", *no_validation)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Trial 1 failed" in result.stdout  # the second trial ran too
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("electra-pretrain: error: no trial of Optuna study 'electra_pretrain' completed (2 failed")
    )
    assert len(trials_in(load_study(journal(tmp_path)), TrialState.FAIL)) == 2


@pytest.mark.slow
def test_sqlite_storage_and_a_rerun_runs_only_the_missing_trials(tmp_path, cache_dir):
    from optuna.trial import TrialState

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = [f"hydra.sweeper.storage={storage}", f"cache_dir={cache_dir}", *SHORT_TRIALS]
    for n_trials in (1, 2):
        result = electra_pretrain_search(tmp_path, f"hydra.sweeper.n_trials={n_trials}", *common)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("Launching 1 jobs") == 1  # the second command ran one trial: 2 - 1
    study = load_study(storage)
    assert len(trials_in(study, TrialState.COMPLETE)) == 2 and len(run_dirs(tmp_path)) == 2


@pytest.mark.slow
def test_killed_search_resumes_without_losing_or_repeating_a_trial(tmp_path, cache_dir):
    import signal
    import time

    from optuna.trial import TrialState

    command = ["hydra.sweeper.n_trials=3", f"cache_dir={cache_dir}", *SHORT_TRIALS]
    search = subprocess.Popen(
        [sys.executable, "-m", "electra_lit.cli.pretrain", "-m", "hparams_search=electra_optuna", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    try:  # kill it while a trial runs, after one has completed
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and search.poll() is None:
            if journal(tmp_path).is_file():
                study = load_study(journal(tmp_path))
                if trials_in(study, TrialState.COMPLETE) and trials_in(study, TrialState.RUNNING):
                    break
            time.sleep(0.2)
        assert search.poll() is None, "the search ended before it could be killed"
        search.send_signal(signal.SIGKILL)
    finally:
        search.kill()
        search.wait()

    result = electra_pretrain_search(tmp_path, *command)  # the same command again
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    study = load_study(journal(tmp_path))
    complete, (killed,) = trials_in(study, TrialState.COMPLETE), trials_in(study, TrialState.FAIL)
    values = [tuple(sorted(t.params.items())) for t in complete]
    assert len(complete) == 3 and len(set(values)) == 3  # three trials, none repeated
    (retry,) = [t for t in complete if t.user_attrs.get("retry_of") == killed.number]
    assert retry.params == killed.params  # the killed trial's values ran again...
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 3  # ...in its own run folder, which the retry resumed
    assert all(torch.load(d / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2 for d in dirs)


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, named",
    [
        ("masking.mask_prob=interval(0.1, 0.4)", "the search varies masking.mask_prob, which changes"),
        ("objective=electra,mlm", "the search varies objective, which changes the loss itself"),
        ('+hydra.sweeper.params.masking.mask_prob="interval(0.1, 0.4)"', "the search varies masking.mask_prob"),
        ("hydra.sweeper.storage=sqlite:////nonexistent/optuna.db", "hydra.sweeper.storage=sqlite:////nonexistent"),
        ('+hydra.sweeper.params.optimizer.weight_decay="interval(0"', "hydra.sweeper.params.optimizer.weight_decay="),
    ],
    ids=["mask-rate", "objective", "mask-rate-in-params", "storage", "unparsable-param"],
)
def test_search_refused_in_one_line_before_any_trial(tmp_path, cache_dir, override, named):
    """val/loss cannot rank trials that mask differently or train another loss; a storage that
    does not open and a param Hydra cannot parse stop the command before it trains anything."""
    result = electra_pretrain_search(tmp_path, override, f"cache_dir={cache_dir}", *SHORT_TRIALS)
    assert result.returncode == 2 and result.stdout == "", result.stdout[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"electra-pretrain: error: {named}")
    assert not (tmp_path / "runs").exists()


def test_slurm_launcher_config_reaches_sbatch(tmp_path, monkeypatch):
    """No SLURM here: the launcher is built from the config and its sbatch script is captured."""
    from submitit.slurm.slurm import SlurmExecutor

    cfg = compose_with_hydra(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.tasks_per_node=4",
    )
    launcher = instantiate(cfg.hydra.launcher)
    # by name: Hydra's plugin scan imports hydra_plugins modules anew, so classes differ by identity
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["max_num_timeout"] == 0 and launcher.params["signal_delay_s"] == 300

    class Submitted(Exception):
        pass

    def capture_sbatch(executor, command):
        raise Submitted(executor.max_num_timeout, executor._make_submission_file_text(command, "uid"))

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"
    monkeypatch.setattr(SlurmExecutor, "_submit_command", capture_sbatch)
    monkeypatch.chdir(tmp_path)
    launcher.setup(hydra_context=None, task_function=print, config=cfg)
    with pytest.raises(Submitted) as submitted:
        launcher.launch([["masking.mask_prob=0.15"], ["masking.mask_prob=0.2"]], initial_job_idx=0)
    max_num_timeout, sbatch = submitted.value.args
    assert max_num_timeout == 0  # submitit requeues nothing; Lightning does, on SIGUSR1
    flags = {line for line in sbatch.splitlines() if line.startswith("#SBATCH")}
    for flag in [
        "--signal=USR1@300",
        "--partition=gpu",
        "--time=1440",
        "--nodes=1",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--cpus-per-task=8",
        "--mem=64GB",
        "--array=0-1%2",
    ]:
        assert f"#SBATCH {flag}" in flags, sbatch
    assert not any("requeue" in flag for flag in flags)
