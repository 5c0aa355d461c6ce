"""timm and torchvision networks: local weights load exactly, a file that does not fit is
refused by name, init_from carries a network to other data, fine-tuning freezes and thaws."""

import json
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch import Callback
from safetensors.torch import save_file

from imgclf.callbacks.gradcam import gradcam_heatmaps, gradcam_layer
from imgclf.errors import user_error_message
from imgclf.module import ImageClassifier, load_checkpoint
from imgclf.train import train

from cli import REPO, environment, run_script, run_train
from configs import (
    DATASETS,
    compose_train_config,
    composed_model,
    data_overrides,
    finished_run,
    fit_watched,
)  # fmt: skip
from weights import random_weights

# Networks that take images as small as MNIST's 28 pixels (ConvNeXt's stem and three
# stride-2 stages need 32).
BACKBONES = [
    ("timm", "resnet18"),
    ("timm", "efficientnet_b0"),
    ("timm", "mobilenetv3_large_100"),
    ("torchvision", "resnet18"),
    ("torchvision", "mobilenet_v3_small"),
]


def test_a_timm_model_starts_from_exactly_the_weights_of_a_local_file(tmp_path: Path) -> None:
    weights = random_weights("timm", "resnet18")
    save_file(weights, tmp_path / "resnet18.safetensors")
    model = composed_model(
        [
            "model=timm",
            "model.name=resnet18",
            f"model.pretrained={tmp_path / 'resnet18.safetensors'}",
        ],
        tmp_path,
    )
    loaded = model.classifier.net.state_dict()
    for key, value in weights.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    # CIFAR-10's 10 classes: a new head, and ImageNet's statistics came with the weights.
    assert loaded["fc.weight"].shape == (10, 512)
    normalisation = model.classifier.normalisation
    torch.testing.assert_close(normalisation.mean, torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(normalisation.std, torch.tensor([0.229, 0.224, 0.225]))


def test_grey_images_get_a_stem_of_summed_rgb_filters(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    """An RGB network's filters summed over colour answer a grey image as the RGB network
    answers the same image in three equal channels."""
    weights = random_weights("torchvision", "resnet18")
    torch.save(weights, tmp_path / "resnet18.pth")
    model = composed_model(
        ["model=torchvision", f"model.pretrained={tmp_path / 'resnet18.pth'}", "data=mnist"],
        tmp_path,
    )
    grey = torch.rand(2, 1, 28, 28)
    rgb_stem = torch.nn.functional.conv2d(
        grey.expand(-1, 3, -1, -1), weights["conv1.weight"], stride=2, padding=3
    )
    grey_stem = model.classifier.net.conv1(grey)
    torch.testing.assert_close(grey_stem, rgb_stem, rtol=1e-4, atol=1e-4)


# Builds timm's resnet18 for 10 classes, loads its pretrained weights the library's way and
# saves the result, in a process of its own, whose environment chooses the Hub and the cache.
FETCH_RESNET18 = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO)
from imgclf.models.pretrained import load_pretrained, timm_network
network = timm_network("resnet18", num_classes=10, in_channels=3)
load_pretrained(network, True)
torch.save(network.state_dict(), sys.argv[1])
"""


def fetch_offline(hub_home: Path, saved: Path) -> tuple[subprocess.CompletedProcess, float]:
    """FETCH_RESNET18 with the Hub at a name that never resolves (RFC 2606), as on a machine
    without internet: (its result, seconds)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", FETCH_RESNET18, str(saved)], cwd=REPO, capture_output=True,
        text=True, timeout=300,
        env=environment(HF_HOME=str(hub_home), HF_ENDPOINT="https://hub.invalid"),
    )  # fmt: skip
    return result, time.monotonic() - started


def test_offline_timm_weights_come_from_the_cache(tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    weights = random_weights("timm", "resnet18")
    save_file(weights, snapshot / "model.safetensors")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)

    result, _ = fetch_offline(tmp_path, tmp_path / "loaded.pt")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is unreachable: reading the weights from the local cache" in result.stderr
    loaded = torch.load(tmp_path / "loaded.pt", weights_only=True)
    for key, value in weights.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key


def test_offline_timm_weights_not_cached_fail_at_once_saying_what_to_do(tmp_path: Path) -> None:
    """huggingface_hub alone retries an unresolvable Hub for about 50 s before it gives up;
    imgclf sees that the Hub is unreachable and asks the cache alone."""
    result, seconds = fetch_offline(tmp_path, tmp_path / "never.pt")
    assert result.returncode != 0
    assert "could not fetch the pretrained weights of timm resnet18" in result.stderr
    assert "pass model.pretrained=<file>" in result.stderr
    assert seconds < 30


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("resnet34", "do not fit the network: unexpected 96"),
        ("garbage", "is not a readable weights file"),
        ("nothing", "no such file"),
    ],
)
def test_weights_that_do_not_fit_are_one_clear_error(
    content: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "weights.pth"
    if content == "resnet34":
        torch.save(random_weights("timm", "resnet34"), path)
    elif content == "garbage":
        path.write_bytes(b"not a tensor file")
    with pytest.raises(InstantiationException) as error:
        composed_model(["model=timm", f"model.pretrained={path}"], tmp_path)
    message = user_error_message(error.value)  # what the command line would print
    assert expected in message and str(path) in message


def test_from_the_command_line_a_mismatching_file_exits_2_naming_it(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "resnet34.pth"
    torch.save(random_weights("timm", "resnet34"), path)
    result = run_train(
        "model=timm", f"model.pretrained={path}", "data.download=false",
        f"hydra.run.dir={tmp_path / 'run'}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"the weights in {path} for timm resnet18 do not fit" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_from_a_checkpoint_of_another_network_names_both_and_the_fix(
    cifar_run: tuple, image_folder: Path, tmp_path: Path
) -> None:
    checkpoint = cifar_run[0] / "checkpoints" / "last.ckpt"  # deep_cnn; photos train vgg_cnn
    photos = data_overrides("image_folder", Path(), image_folder)
    with pytest.raises(InstantiationException) as error:
        composed_model([*photos, f"model.init_from={checkpoint}"], tmp_path)
    assert (
        "the checkpoint's network is imgclf.models.AirbenchNet, this run's is "
        "imgclf.models.VggCNN; choose the model it was trained with"
    ) in user_error_message(error.value)


def test_init_from_keeps_the_network_and_its_normalisation_with_a_new_head(
    cifar_run: tuple, image_folder: Path, tmp_path: Path
) -> None:
    checkpoint = cifar_run[0] / "checkpoints" / "last.ckpt"
    trained = torch.load(checkpoint, weights_only=True)["state_dict"]
    overrides = [
        *data_overrides("image_folder", Path(), image_folder), "model=deep_cnn",
        f"model.init_from={checkpoint}",
    ]  # fmt: skip
    model = composed_model(overrides, tmp_path)
    # As fitting starts: the photos must not replace the trained patch whitening.
    datamodule = instantiate(compose_train_config(overrides, tmp_path).data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model.adapt_to(datamodule.description())
    started = model.state_dict()
    head = "classifier.net.head"  # deep_cnn's (AirbenchNet's) linear layer
    assert started[f"{head}.weight"].shape[0] == len(list(image_folder.iterdir()))
    assert started[f"{head}.weight"].shape != trained[f"{head}.weight"].shape
    for key, value in trained.items():
        if key.startswith("classifier.net.") and not key.startswith(head):
            assert torch.equal(started[key], value), key
    for key in ("classifier.normalisation.mean", "classifier.normalisation.std"):
        assert torch.equal(started[key], trained[key])


class Snapshots(Callback):
    """The backbone's and the head's parameters and batch-norm statistics after each epoch."""

    def __init__(self) -> None:
        self.taken: list[dict[str, torch.Tensor]] = []

    def take(self, module: ImageClassifier) -> None:
        state = module.classifier.net.state_dict()
        self.taken.append({key: value.detach().clone() for key, value in state.items()})

    def on_fit_start(self, trainer: L.Trainer, pl_module: ImageClassifier) -> None:
        self.take(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: ImageClassifier) -> None:
        self.take(pl_module)


def test_finetune_trains_the_head_alone_then_thaws_the_backbone_at_its_own_rate(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    snapshots = Snapshots()
    trainer = fit_watched(
        ["model=timm", "model.name=resnet18", "model.finetune.freeze_epochs=1",
         "model.finetune.backbone_lr_ratio=0.1", "scheduler=none",
         *data_overrides("mnist", fixture_data_dir, Path())],
        tmp_path, snapshots, max_epochs=2, limit_train_batches=3, limit_val_batches=1,
        num_sanity_val_steps=0,
    )  # fmt: skip
    start, frozen, thawed = snapshots.taken
    head = {"fc.weight", "fc.bias"}
    backbone = [key for key in start if key not in head]
    assert any("running_mean" in key for key in backbone)
    for key in backbone:  # weights and batch-norm statistics alike
        assert torch.equal(frozen[key], start[key]), key
    assert not torch.equal(frozen["fc.weight"], start["fc.weight"])
    assert not torch.equal(thawed["conv1.weight"], frozen["conv1.weight"])
    assert not torch.equal(thawed["bn1.running_mean"], frozen["bn1.running_mean"])
    rates = {group["name"]: group["lr"] for group in trainer.optimizers[0].param_groups}
    assert rates["backbone"] == pytest.approx(0.1 * rates["head"])


@pytest.mark.parametrize(("library", "name"), BACKBONES)
@pytest.mark.parametrize("dataset", DATASETS)
def test_listed_backbones_fit_and_test_on_every_dataset(
    library: str, name: str, dataset: str, fixture_data_dir: Path, image_folder: Path,
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    """From a local weights file, as on a machine without internet: grey datasets get an
    adapted stem, each dataset a new head."""
    weights = tmp_path_factory.getbasetemp() / f"{library}_{name}.pth"
    if not weights.exists():
        torch.save(random_weights(library, name), weights)
    cfg = compose_train_config(
        ["debug=fast_dev_run", "data.batch_size=8", "trainer.accelerator=cpu", "callbacks=minimal",
         f"model={library}", f"model.name={name}", f"model.pretrained={weights}",
         *data_overrides(dataset, fixture_data_dir, image_folder)],
        tmp_path,
    )  # fmt: skip
    metrics = train(cfg)
    assert {"train/loss", "val/acc", "test/acc"} <= metrics.keys()


def test_eval_reads_a_folder_at_the_size_and_crop_the_model_was_trained_with(
    fixture_data_dir: Path, image_folder: Path, tmp_path: Path
) -> None:
    """eval.yaml knows nothing of the model's 40 px and 0.8 crop: the checkpoint tells it."""
    run_dir, trained = finished_run(
        tmp_path / "run", fixture_data_dir,
        "model=timm", "data=image_folder", f"data.data_dir={image_folder}",
        "data.image_size=40", "data.crop_fraction=0.8", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "callbacks=minimal",
    )  # fmt: skip
    checkpoint = Path(trained["best_checkpoint"])
    model = load_checkpoint(checkpoint)
    assert (model.hparams.image_size, model.hparams.resize_size) == (40, 50)
    result = run_script(
        "scripts/eval.py", f"ckpt_path={checkpoint}", "data=image_folder",
        f"data.data_dir={image_folder}", f"hydra.run.dir={tmp_path / 'eval'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-5)


def test_gradcam_looks_at_timm_s_last_feature_stage_not_a_convolution_after_pooling(
    tmp_path: Path,
) -> None:
    """MobileNetV3's last convolution (conv_head) sees the pooled 1x1 map: a heat-map there
    would be one flat value. Its last feature stage keeps the image's layout."""
    model = composed_model(["model=timm", "model.name=mobilenetv3_large_100"], tmp_path).eval()
    assert gradcam_layer(model.classifier.net) is model.classifier.net.blocks[-1]
    pixels = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    heatmaps = gradcam_heatmaps(model.classifier, pixels, torch.tensor([0, 1]))
    assert heatmaps.shape == (2, 64, 64)
    # An untrained network's evidence may be negative everywhere for one image (then 0 after
    # Grad-CAM's ReLU); conv_head's 1x1 map would be flat for both.
    assert heatmaps.reshape(2, -1).std(axis=1).max() > 0.01, "flat heat-maps"
