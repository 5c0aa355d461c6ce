"""Every command the README and the docs show, run as a user runs it: a real subprocess in a
checkout of its own (the files the commands name are there: photos in ~/pictures, runs and
checkpoints in outputs/, weight files beside train.py), on the real datasets, with the options
it shows and only limits added (one short epoch; a server is asked for its data and stopped).
A command that cannot run offline must fail with the message the documents promise.

A command added to a document is tested without a line here; one this file cannot run fails
until it is taught how."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cli import REPO, environment, stopped_run
from cluster import require_slurm_cluster
from configs import require_real_data
from dataset_files import write_image_csv

# The documents whose commands are tested, relative to the repository: the README and every
# page of the docs site.
DOCUMENTS = (
    "README.md",
    *sorted(str(page.relative_to(REPO)) for page in (REPO / "docs").glob("*.md")),
)

# One short epoch, for every train.py command: only keys that the command does not set.
TRAIN_LIMITS = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
)
# Extra limits where a command runs more than one epoch's worth: the learning-rate finder's
# steps, the test of a checkpoint; an Optuna study's tens of trials draw no figures (every
# figure is drawn by the single runs).
EXTRA_LIMITS = {
    # The finder suggests a rate from more than 10 steps.
    "tune=lr_find": ("tune.lr_find.num_training=30", "trainer.limit_train_batches=30"),
    "scripts/eval.py": ("trainer.limit_test_batches=2",),
    "hparams_search=optuna": ("callbacks=minimal",),
    # Each fold model a few steps; the audit still predicts every image.
    "scripts/audit.py": ("audit.epochs=1", "trainer.limit_train_batches=2"),
}
# An audit of a built-in dataset audits two of its classes: every image of them is still
# predicted, embedded and compared (CIFAR-10's in the suite: 41 s against 176 s for ten).
AUDIT_CLASSES = {"cifar10": "[cat,dog]", "fashion_mnist": "[Trouser,Bag]", "mnist": "[3,8]"}
# A search's budget, where a command shows one: two trials run what tens would (the sweeper's
# counting of trials is tested in test_search.py).
BUDGETS = {"hydra.sweeper.n_trials": "hydra.sweeper.n_trials=2"}
# What a command that needs the internet must say without it.
FETCH_FAILED = "could not fetch the pretrained weights of"
SERVER_UNREACHABLE = "the tracking server cannot be reached"
# The fine-tuning race runs timm's train.py from a clone of its repository.
NO_TIMM_CLONE = "give the train.py of a clone of github.com/huggingface/pytorch-image-models"
# The README's own "where there is internet" commands call timm and torchvision directly:
# they fail offline with those libraries' errors.
NEEDS_INTERNET = ("pretrained=True", "weights='DEFAULT'")
SERVERS = (".venv/bin/tensorboard", ".venv/bin/mlflow ui", "python scripts/demo.py")


@dataclass(frozen=True)
class Documented:
    document: str
    line: int
    text: str  # as shown, continuation lines joined

    def __str__(self) -> str:
        return f"{self.document}:{self.line} {self.text.split('#')[0].strip()}"


def documented_commands(document: str) -> list[Documented]:
    """The commands in the ```bash blocks of `document`, comment lines left out."""
    text = (REPO / document).read_text()
    commands = []
    for block in re.finditer(r"^\s*```bash\n(.*?)^\s*```", text, re.S | re.M):
        first_line = text[: block.start(1)].count("\n") + 1
        pending, start = "", 0
        for offset, line in enumerate(block.group(1).splitlines()):
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            start = start if pending else first_line + offset
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            commands.append(Documented(document, start, pending + stripped))
            pending = ""
    return commands


def unique(commands: list[Documented]) -> list[Documented]:
    """Each command once: the README shows some in its overview and again in their section."""
    first = {}
    for command in commands:
        first.setdefault(command.text.split("#")[0].strip(), command)
    return list(first.values())


COMMANDS = unique([command for document in DOCUMENTS for command in documented_commands(document)])


@dataclass(frozen=True)
class Checkout:
    """A checkout of imgclf where a user works, and that user's home."""

    root: Path
    home: Path
    placeholders: dict[str, str]

    def env(self) -> dict[str, str]:
        """The user's, with imgclf's virtual environment active (a SLURM job runs `python`)."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        return environment(require_real_data("MNIST"), HOME=str(self.home), PATH=path)


def run_here(checkout: Checkout, arguments: list[str], **variables: str):  # noqa: ANN201
    return subprocess.run(
        arguments, cwd=checkout.root, env={**checkout.env(), **variables}, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def write_weights(library: str, name: str, path: Path) -> None:
    """A state-dict file of `name`'s architecture, as the README's commands save one from the
    pretrained weights (random weights here: this machine has no internet)."""
    if library == "timm":
        import safetensors.torch
        import timm

        safetensors.torch.save_file(timm.create_model(name).state_dict(), str(path))
    else:
        import torch
        import torchvision

        torch.save(torchvision.models.get_model(name).state_dict(), path)


@pytest.fixture(scope="module")
def checkout(
    real_photos: Path, mosaics: Path, unplanted_photos: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Checkout:  # fmt: skip
    root = tmp_path_factory.mktemp("checkout")
    checkout_files = ("train.py", "conf", "scripts", "benchmarks", "src", "tests", "Makefile")
    for name in (*checkout_files, "pyproject.toml"):
        (root / name).symlink_to(REPO / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    home = tmp_path_factory.mktemp("home")
    pets = shutil.copytree(real_photos, home / "pictures" / "pets")
    write_image_csv(pets, home / "pictures" / "labels.csv")
    (home / "pets").symlink_to(pets)
    for photos in (home / "photos", root / "photos", root / "my_photos"):
        photos.mkdir()
        for photo in sorted(pets.glob("*/*.jpg"))[::8]:
            shutil.copy(photo, photos / f"{photo.parent.name}_{photo.name}")
    # The multi-label page's mosaics, in place for the commands that train on them.
    shutil.copytree(mosaics, root / "mosaics")
    # The audit page's photos: with problems planted and listed in labels.csv, and without
    # them for the command that plants them.
    shutil.copytree(unplanted_photos, root / "unplanted")
    shutil.copytree(unplanted_photos, root / "planted")
    planting = run_here(
        Checkout(root, home, {}), [sys.executable, "scripts/plant_problems.py", "planted"]
    )
    assert planting.returncode == 0, planting.stderr[-3000:]
    # An audit's lists of MNIST images, for the commands that act on one.
    audit = root / "outputs" / "audit" / "mnist"
    audit.mkdir(parents=True)
    (audit / "issues.csv").write_text("image,split,type\ntrain/59915,train,label_issue\n")
    (audit / "relabel.csv").write_text("image,label\ntrain/59915,7\n")
    (home / "weights").mkdir()
    write_weights("timm", "convnext_nano", home / "weights" / "convnext_nano.safetensors")
    write_weights("timm", "resnet18", root / "resnet18.safetensors")
    write_weights("torchvision", "resnet18", root / "tv_resnet18.pth")
    checkout = Checkout(root, home, {})
    # A finished run on the photos (the checkpoint the README's commands use), tracked in
    # outputs/mlflow.db, and a run stopped in its second epoch.
    finished = root / "outputs" / "runs" / "finished"
    result = run_here(
        checkout, [sys.executable, "train.py", "data=image_folder",
                   "data.data_dir=~/pictures/pets", "logger=mlflow", *TRAIN_LIMITS,
                   f"hydra.run.dir={finished}"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    stopped = root / "outputs" / "runs" / "stopped"
    result = stopped_run(
        "fit", "SIGTERM", "experiment=mnist_quick", "trainer.max_epochs=2",
        "trainer.limit_train_batches=4", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", f"hydra.run.dir={stopped}",
        data_dir=require_real_data("MNIST"),
    )  # fmt: skip
    assert result.returncode == 143, result.stderr[-3000:]
    best = json.loads((finished / "metrics.json").read_text())["best_checkpoint"]
    # eval.py tests a checkpoint on its own dataset: one of a built-in dataset's.
    built_in = "outputs/runs/stopped/checkpoints/last.ckpt"
    placeholders = {
        # Longest first: each is replaced before the shorter ones inside it.
        "scripts/eval.py ckpt_path=<checkpoint>": f"scripts/eval.py ckpt_path={built_in}",
        "outputs/runs/<run>/checkpoints/last.ckpt": "outputs/runs/finished/checkpoints/last.ckpt",
        "outputs/runs/<run>/checkpoints/epoch_018.ckpt": built_in,
        "outputs/runs/<run>": "outputs/runs/stopped",
        # The mosaics' maker writes a folder of its own, not the one the others read.
        "make_multilabel_folder.py mosaics": "make_multilabel_folder.py made_mosaics",
        # So do the photos' maker and the planter, for the audit's commands.
        "make_photo_folder.py planted": "make_photo_folder.py made_planted",
        "plant_problems.py planted": "plant_problems.py unplanted",
        "outputs/audit/<audit>": "outputs/audit/mnist",
        "<imgclf checkpoint>": best,
        "<checkpoint>": best,
    }
    return replace(checkout, placeholders=placeholders)


def arguments_of(command: Documented, checkout: Checkout) -> list[str]:
    """The command's arguments as the shell gives them (quotes removed, no ~ expansion in
    `key=~/...`), placeholders filled in and limits added."""
    text = command.text
    for placeholder, value in checkout.placeholders.items():
        text = text.replace(placeholder, value)
    assert "<" not in text.split("#")[0], f"{command}: a placeholder this test cannot fill"
    arguments = shlex.split(text, comments=True)
    if arguments[0] == "python":
        arguments[0] = sys.executable
    if arguments[0] == "make":
        # Else make would build .venv anew over the environment this test runs in.
        assert (Path(sys.prefix) / ".installed").exists(), "run the tests from make's .venv"
        make_limits = ["--collect-only", "-q"] if arguments[1] == "test" else TRAIN_LIMITS
        return [*arguments, f"ARGS={' '.join(make_limits)}"]
    if arguments[0] == "sbatch":
        return submitted_and_waited(arguments, text)
    arguments = [BUDGETS.get(argument.split("=", 1)[0], argument) for argument in arguments]
    return arguments + limits_for(arguments, text)


def limits_for(arguments: list[str], text: str) -> list[str]:
    """The limits a `python <script> ...` command gets, none that it sets itself."""
    # A resumed run keeps the limits of the run it continues.
    resumed = any(argument.startswith("resume=") for argument in arguments)
    limits = list(TRAIN_LIMITS) if arguments[1:2] == ["train.py"] and not resumed else []
    for marker, extra in EXTRA_LIMITS.items():
        if marker in text:
            limits += extra
    if arguments[1:2] == ["scripts/audit.py"]:
        data = dict(argument.split("=", 1) for argument in arguments[2:] if "=" in argument)
        classes = AUDIT_CLASSES.get(data.get("data", "cifar10"))
        limits += [f"data.classes={classes}"] if classes else []
    # By key, the last given (an extra limit over the short epoch's), none the command sets.
    by_key = {limit.split("=", 1)[0]: limit for limit in limits}
    shown = {argument.split("=", 1)[0] for argument in arguments}
    return [limit for key, limit in by_key.items() if key not in shown]


def submitted_and_waited(arguments: list[str], text: str) -> list[str]:
    """An sbatch command waits for its job (sbatch then exits with the job's status), and the
    training in the job gets the limits: in its `--wrap` command, or after the script's
    overrides (scripts/train.sbatch runs train.py with them)."""
    arguments = [arguments[0], "--wait", *arguments[1:]]
    if "--wrap" in arguments:
        at = arguments.index("--wrap") + 1
        # Appended to the text: the job's shell expands what the command leaves to it ($PWD).
        arguments[at] += " " + " ".join(limits_for(shlex.split(arguments[at]), text))
        return arguments
    script = next(at for at, argument in enumerate(arguments) if argument.endswith(".sbatch"))
    return arguments + limits_for(["python", "train.py", *arguments[script + 1 :]], text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serves(url: str, process: subprocess.Popen, seconds: float = 120) -> str:
    """The body `url` answers with once the server is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def check_server(command: Documented, checkout: Checkout, arguments: list[str]) -> None:
    port = free_port()
    demo = "scripts/demo.py" in command.text
    if demo:  # on a free port, whichever the command shows
        arguments = [argument for argument in arguments if not argument.startswith("demo.port=")]
        arguments.append(f"demo.port={port}")
    else:
        arguments = [*arguments, "--port", str(port)]
    process = subprocess.Popen(
        arguments, cwd=checkout.root, env=checkout.env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if "tensorboard" in command.text:
            runs = json.loads(serves(f"http://127.0.0.1:{port}/data/runs", process))
            assert any("stopped" in run for run in runs), runs
        elif demo:
            config = json.loads(serves(f"http://127.0.0.1:{port}/config", process))
            assert config["title"].startswith("imgclf: "), config["title"]
        else:
            url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
            experiments = json.loads(serves(url, process))["experiments"]
            assert "image_folder" in {experiment["name"] for experiment in experiments}
    finally:
        process.terminate()
        stopped = process.wait(timeout=30)
    assert stopped == 0 or not demo, "the demo did not stop cleanly on SIGTERM"


def offline_message(text: str) -> str | None:
    """The message a command must fail with offline; None for one that runs offline.
    experiment=finetune starts from timm's ImageNet weights unless given a file."""
    if "model.pretrained=true" in text or (
        "experiment=finetune" in text and "model.pretrained=" not in text
    ):
        return FETCH_FAILED
    if "benchmarks/finetune.py" in text and "--timm-train" in text:
        return NO_TIMM_CLONE
    return SERVER_UNREACHABLE if "tracking_uri=http://" in text else None


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_documented_command_runs(command: Documented, checkout: Checkout) -> None:
    if command.text.startswith("sbatch") or "hydra/launcher=slurm" in command.text:
        require_slurm_cluster()
    arguments = arguments_of(command, checkout)
    if any(command.text.startswith(server) for server in SERVERS):
        check_server(command, checkout, arguments)
        return
    needs_internet = any(marker in command.text for marker in NEEDS_INTERNET)
    # Offline, huggingface_hub retries for 50 s before it fails; its offline mode fails at once.
    result = run_here(checkout, arguments, **({"HF_HUB_OFFLINE": "1"} if needs_internet else {}))
    output = result.stdout + result.stderr
    expected = offline_message(command.text)
    if expected:
        assert result.returncode == 2, output[-3000:]
        assert expected in result.stderr and "Traceback" not in result.stderr, output[-3000:]
    elif needs_internet:
        assert result.returncode != 0, output[-3000:]
    else:
        assert result.returncode == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]


def test_every_document_shows_commands() -> None:
    """A change to the block syntax would otherwise leave the test above with nothing to run."""
    assert len(documented_commands("README.md")) >= 10
    for document in DOCUMENTS:
        if "```bash" in (REPO / document).read_text():
            assert documented_commands(document), document
