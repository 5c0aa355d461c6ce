"""The CIFAR-10 speedrun's parts: patch whitening, Muon, the schedule, the frozen whitening
bias, alternating flips, and the preset end to end on the CIFAR-10 fixture."""

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import Callback

from imgclf.builders import build_model, build_trainer
from imgclf.classifier import EvaluationViews, augmented_view_logits
from imgclf.data.loader import InMemoryBatches
from imgclf.data.splits import LabelledImages
from imgclf.errors import UserError
from imgclf.models import AirbenchNet
from imgclf.module import load_checkpoint
from imgclf.optim import Muon, orthogonalise
from imgclf.schedulers import linear_decay
from imgclf.train import train

from cli import exported
from configs import compose_train_config

SGD_GROUPS = {name: {"lr": 0.1, "momentum": 0.85} for name in ("norm_biases", "head")}


def test_whitening_layer_decorrelates_image_patches() -> None:
    torch.manual_seed(0)
    # Strongly correlated pixels: a smooth random field per channel plus a little noise.
    images = torch.nn.functional.interpolate(torch.randn(64, 3, 8, 8), size=32, mode="bilinear")
    images = images + 0.05 * torch.randn_like(images)
    net = AirbenchNet(3, 10, 32)
    net.initialise_from_data(images, eps=0)
    whitened = torch.nn.functional.conv2d(images, net.whiten.weight[:12])  # the + half
    features = whitened.permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = features.T @ features / len(features)
    assert torch.allclose(covariance, torch.eye(12), atol=1e-3)


def test_parameter_groups_hold_every_trainable_parameter_once() -> None:
    net = AirbenchNet(1, 10, 28)
    groups = net.parameter_groups()
    grouped = [id(p) for params in groups.values() for p in params]
    trainable = [id(p) for p in net.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable)
    assert groups["whitening_bias"] == [net.whiten.bias]
    assert all(p.ndim == 4 for p in groups["filters"])


def test_orthogonalise_brings_singular_values_near_one() -> None:
    torch.manual_seed(0)
    # Rows ten times apart in scale: three Newton-Schulz steps even them out.
    matrix = torch.randn(64, 576) * torch.logspace(-1, 0, 64)[:, None]
    singular_values = torch.linalg.svdvals(orthogonalise(matrix).float())
    assert singular_values.min() > 0.3 and singular_values.max() < 1.6


def test_muon_steps_unit_norm_filters_and_the_rest_with_sgd() -> None:
    torch.manual_seed(0)
    net = AirbenchNet(3, 10, 32)
    groups = [{"name": name, "params": p} for name, p in net.parameter_groups().items() if p]
    optimizer = Muon(groups, lr=0.1, sgd_groups={**SGD_GROUPS, "whitening_bias": {"lr": 0.0}})
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    net(torch.randn(4, 3, 32, 32)).square().sum().backward()
    optimizer.step()
    filters = net.parameter_groups()["filters"]
    for weight in filters:
        # Renormalised to unit norm per filter on average, then moved by an update of
        # about lr per filter.
        norm_per_filter = weight.detach().norm() / len(weight) ** 0.5
        assert 0.95 < norm_per_filter < 1.1
    assert torch.equal(net.whiten.bias, before["whiten.bias"])  # lr 0
    assert not torch.equal(net.head.weight, before["head.weight"])


def test_muon_names_what_is_missing() -> None:
    with pytest.raises(UserError, match="names its parameter groups"):
        Muon([torch.nn.Parameter(torch.zeros(2, 2))], lr=0.1)
    net = AirbenchNet(3, 10, 32)
    groups = [{"name": name, "params": p} for name, p in net.parameter_groups().items()]
    with pytest.raises(UserError, match="sgd_groups.whitening_bias"):
        Muon(groups, lr=0.1, sgd_groups=SGD_GROUPS)


def test_linear_decay_ends_a_named_group_early() -> None:
    parameters = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.SGD(
        [{"name": "early", "params": parameters[:1]}, {"name": "rest", "params": parameters[1:]}],
        lr=1.0,
    )
    scheduler = linear_decay(optimizer, total_steps=80, max_epochs=8, group_epochs={"early": 3})
    rates = []
    for _ in range(80):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert rates[0] == [1.0, 1.0]
    assert rates[15] == pytest.approx([0.5, 1 - 15 / 80])
    assert rates[30][0] == 0.0 and rates[79][0] == 0.0
    assert rates[79][1] == pytest.approx(1 / 80)


def test_alternating_flips_show_each_image_both_ways_over_two_epochs() -> None:
    images = torch.arange(40 * 4, dtype=torch.uint8).reshape(40, 1, 2, 2)
    data = LabelledImages(images, torch.arange(40))
    epoch = 0
    loader = InMemoryBatches(
        data, batch_size=8, shuffle=True, drop_last=False, seed=3,
        current_epoch=lambda: epoch, mirror_alternately=True,
    )  # fmt: skip

    def mirrored_labels() -> set[int]:
        seen = {}
        for batch_images, labels in loader:
            for image, label in zip(batch_images, labels, strict=True):
                original = images[label]
                assert torch.equal(image, original) or torch.equal(image, original.flip(2))
                seen[int(label)] = torch.equal(image, original.flip(2))
        assert len(seen) == 40
        return {label for label, flipped in seen.items() if flipped}

    first = mirrored_labels()
    epoch = 1
    second = mirrored_labels()
    assert 10 < len(first) < 30
    assert first.isdisjoint(second) and len(first | second) == 40


class WhiteningBiasRecorder(Callback):
    def __init__(self) -> None:
        self.biases: list[torch.Tensor] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.biases.append(pl_module.classifier.net.whiten.bias.detach().clone())


def speedrun_config(fixture_data_dir: Path, output_dir: Path, *overrides: str):  # noqa: ANN201
    return compose_train_config(
        [
            "experiment=cifar10_speedrun",
            f"paths.data_dir={fixture_data_dir}",
            "data.download=false",
            "data.batch_size=10",
            "trainer.accelerator=cpu",
            *overrides,
        ],
        output_dir,
    )


def test_speedrun_freezes_the_whitening_bias_after_its_epochs(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    cfg = speedrun_config(
        fixture_data_dir,
        tmp_path,
        "trainer.max_epochs=3",
        "trainer.accumulate_grad_batches=2",
        "callbacks.freeze_whitening_bias.after_epochs=2",
        "callbacks=minimal",
    )
    datamodule = instantiate(cfg.data)
    model = build_model(cfg)
    trainer = build_trainer(cfg)
    recorder = WhiteningBiasRecorder()
    trainer.callbacks.append(recorder)
    trainer.fit(model, datamodule=datamodule)
    first, second, third = recorder.biases
    assert not torch.equal(first, second)  # trained in epochs 0 and 1
    assert torch.equal(second, third)  # frozen from epoch 2
    assert not model.classifier.net.whiten.bias.requires_grad


def test_a_misspelt_parameter_to_freeze_stops_the_run_before_training(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    cfg = speedrun_config(
        fixture_data_dir, tmp_path, "callbacks=minimal",
        "callbacks.freeze_whitening_bias.names=[net.whiten.bais]",
    )  # fmt: skip
    with pytest.raises(UserError, match=r"no parameters \['net.whiten.bais'\]") as raised:
        train(cfg)
    assert "net.whiten.bias" in str(raised.value)  # names what there is
    assert not (tmp_path / "checkpoints").exists()  # not a single epoch ran


@pytest.fixture(scope="module")
def speedrun_run(fixture_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two epochs of the speedrun preset on the CIFAR-10 fixture (100 train, 20 test)."""
    cfg = speedrun_config(
        fixture_data_dir, tmp_path_factory.mktemp("speedrun"), "trainer.max_epochs=2"
    )
    return train(cfg)


def test_speedrun_preset_trains_on_all_images_and_tests_the_final_weights(
    speedrun_run: dict,
) -> None:
    assert "val/acc" not in speedrun_run  # no validation split: all 100 images train
    assert "test/acc" in speedrun_run
    assert Path(speedrun_run["best_checkpoint"]).name == "epoch_001.ckpt"


def test_onnx_export_keeps_the_flip_and_translate_test_time_augmentation(
    speedrun_run: dict, tmp_path: Path
) -> None:
    checkpoint = speedrun_run["best_checkpoint"]
    output = exported(checkpoint, tmp_path / "speedrun.onnx", tmp_path)
    model = load_checkpoint(Path(checkpoint))
    classifier = model.classifier
    assert classifier.views.flip and classifier.views.translate
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = classifier.evaluation_logits(images).softmax(dim=1)
        untranslated = augmented_view_logits(
            classifier.net, classifier.normalise(images), EvaluationViews(flip=True)
        )
    assert not torch.allclose(expected, untranslated.softmax(dim=1), atol=1e-4)
    (probabilities,) = onnxruntime.InferenceSession(str(output)).run(
        None, {"images": images.numpy()}
    )
    np.testing.assert_allclose(probabilities, expected.numpy(), atol=1e-4)
