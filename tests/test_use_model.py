"""Using a trained model: evaluate a checkpoint, classify image files, export to ONNX and
TorchScript and run the exports with onnxruntime and torch.jit."""

import csv
import json
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from imgclf.data import sources
from imgclf.module import load_checkpoint

from cli import exported, free_loopback_port, run_script
from configs import REAL_DATA_DIR, finished_run, require_real_data
from dataset_files import write_image_folder


def evaluate_mnist_run(mnist_run: tuple, output_dir: Path, *overrides: str) -> CompletedProcess:
    """scripts/eval.py on the MNIST run's best checkpoint."""
    checkpoint = mnist_run[1]["best_checkpoint"]
    return run_script(
        "scripts/eval.py", f"ckpt_path={checkpoint}", *overrides,
        f"hydra.run.dir={output_dir}", data_dir=REAL_DATA_DIR,
    )  # fmt: skip


def test_eval_reproduces_the_test_accuracy_training_reported(
    mnist_run: tuple, tmp_path: Path
) -> None:
    _, trained = mnist_run
    result = evaluate_mnist_run(mnist_run, tmp_path)  # no data=: the checkpoint's own, MNIST
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    assert evaluated["dataset"] == "mnist"
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    report = json.loads((tmp_path / "classification_report.json").read_text())
    assert report["support"] == 10_000
    assert (tmp_path / "figures" / "confusion_matrix.png").is_file()
    assert (
        "![Confusion matrix (test set)](figures/confusion_matrix.png)"
        in (tmp_path / "report.md").read_text()
    )


def test_eval_on_data_of_another_shape_names_the_mismatch(mnist_run: tuple, tmp_path: Path) -> None:
    result = evaluate_mnist_run(mnist_run, tmp_path, "data=cifar10")
    assert result.returncode == 2
    assert "takes 10 classes of 1x28x28 images (mnist)" in result.stderr
    assert "10 classes of 3x32x32 images" in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_on_data_with_other_class_names_warns_naming_both(
    mnist_run: tuple, tmp_path: Path
) -> None:
    """Fashion-MNIST has MNIST's shape and class count: it evaluates, with a warning."""
    require_real_data("FashionMNIST/raw")
    result = evaluate_mnist_run(mnist_run, tmp_path, "data=fashion_mnist")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the model's classes ['0', '1', " in result.stdout  # Hydra logs to stdout
    assert "are not the data's ['T-shirt/top', 'Trouser', " in result.stdout


@pytest.fixture
def user_images(tmp_path: Path) -> tuple[Path, Path]:
    """PNGs and JPEGs of many sizes in RGB, grey, RGBA and palette modes, and one file that
    only pretends to be a PNG."""
    folder = write_image_folder(tmp_path / "photos", per_class=3)
    corrupt = folder / "dog" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing an image needs")
    return folder, corrupt


def test_predict_classifies_every_readable_image_and_names_the_corrupt_one(
    cifar_run: tuple, user_images: tuple[Path, Path], tmp_path: Path
) -> None:
    run_dir, _ = cifar_run
    folder, corrupt = user_images
    output = tmp_path / "predict"
    result = run_script(
        "scripts/predict.py",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"inputs={folder}",
        "save_grid=true",
        f"hydra.run.dir={output}",
    )
    assert result.returncode == 2  # a file was skipped
    assert f"skipped {corrupt}" in result.stdout + result.stderr  # Hydra logs to stdout
    with (output / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 9
    assert str(corrupt) not in {row["file"] for row in rows}
    classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"}  # fmt: skip
    for row in rows:
        assert row["predicted"] in classes
        assert 0.1 <= float(row["confidence"]) <= 1.0  # the top of 10 probabilities
        assert len(row["top_3"].split("; ")) == 3
    shown = Path(rows[0]["file"]).relative_to(folder)  # named from the inputs' folder
    assert "predicted" in result.stdout and f" {shown} " in result.stdout
    assert Image.open(output / "predictions.png").size[0] > 200


def test_predict_matches_the_model_on_the_same_pixels(cifar_run: tuple, tmp_path: Path) -> None:
    """The file path gives the probabilities the model gives the same resized pixels."""
    run_dir, _ = cifar_run
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "one.png")
    result = run_script(
        "scripts/predict.py",
        f"ckpt_path={checkpoint}",
        f"inputs={tmp_path / '*.png'}",  # a glob
        f"hydra.run.dir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / "out" / "predictions.csv").open() as file:
        (row,) = list(csv.DictReader(file))
    model = load_checkpoint(checkpoint)
    with torch.no_grad():
        probabilities = model.classifier.evaluation_logits(
            torch.from_numpy(pixels).permute(2, 0, 1)[None]
        )
    probabilities = probabilities.softmax(dim=1)[0]
    assert row["predicted"] == model.class_names[int(probabilities.argmax())]
    assert float(row["confidence"]) == pytest.approx(float(probabilities.max()), abs=1e-4)


def test_predict_with_a_missing_input_or_checkpoint_is_one_clear_error(
    cifar_run: tuple, tmp_path: Path
) -> None:
    run_dir, _ = cifar_run
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    missing = run_script(
        "scripts/predict.py", f"ckpt_path={checkpoint}", f"inputs={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'a'}",
    )  # fmt: skip
    assert missing.returncode == 2
    assert f"inputs={tmp_path / 'nowhere'}: no such file or folder" in missing.stderr
    not_a_checkpoint = tmp_path / "model.ckpt"
    not_a_checkpoint.write_bytes(b"definitely not a checkpoint")
    garbage = run_script(
        "scripts/predict.py", f"ckpt_path={not_a_checkpoint}", f"inputs={checkpoint}",
        f"hydra.run.dir={tmp_path / 'b'}",
    )  # fmt: skip
    assert garbage.returncode == 2
    assert f"{not_a_checkpoint} is not a readable imgclf checkpoint" in garbage.stderr
    for result in (missing, garbage):
        assert "Traceback" not in result.stderr


# A checkpoint whose unpickling would run a shell command, and a checkpoint cut short.
HOSTILE_CHECKPOINT = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"hyper_parameters": Payload(), "state_dict": {}}, sys.argv[1])
"""


@pytest.mark.parametrize("script", ["scripts/eval.py", "scripts/predict.py", "train.py"])
def test_a_hostile_or_truncated_file_is_refused_without_pytorchs_advice(
    script: str, cifar_run: tuple, tmp_path: Path
) -> None:
    """PyTorch's message suggests loading with weights_only=False, which would run it."""
    hostile, marker = tmp_path / "hostile.ckpt", tmp_path / "it_ran"
    subprocess.run([sys.executable, "-c", HOSTILE_CHECKPOINT, hostile, marker], check=True)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((cifar_run[0] / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    key = "model.init_from" if script == "train.py" else "ckpt_path"
    for path, reason in [
        (hostile, "it holds objects (posix.system) that only running code could rebuild"),
        (truncated, "it is truncated or not a PyTorch file"),
    ]:
        extra = [f"inputs={path}"] if "predict" in script else []
        result = run_script(
            script, f"{key}={path}", *extra, f"hydra.run.dir={tmp_path / path.stem}"
        )
        assert result.returncode == 2, result.stderr[-2000:]
        assert reason in result.stderr
        for advice in ("weights_only", "file an issue", "Traceback"):
            assert advice not in result.stderr
    assert not marker.exists()


# imgclf's own network, a timm one (MobileNetV3: hard-swish, squeeze-excitation), and a
# multi-label one (sigmoid probabilities out).
EXPORTED_RUNS = ["cifar_run", "timm_run", "multi_label_run"]


def exported_vs_model(run_dir: Path, tmp_path: Path, model_format: str) -> tuple:
    """The export of a run's checkpoint, some [0, 1] images, and the checkpoint's own
    probabilities for them: the exported file is judged against PyTorch."""
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    output = tmp_path / f"model.{model_format}"
    result = run_script(
        "scripts/export.py", f"ckpt_path={checkpoint}", f"format={model_format}",
        f"output={output}", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    model = load_checkpoint(checkpoint)
    size = model.hparams.image_size
    assert f"input 'images': float32 (N, 3, {size}, {size})" in result.stdout
    images = torch.rand(5, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.task.probabilities(model.classifier.evaluation_logits(images))
    return output, images, expected, model


def run_exported(path: Path, model_format: str, images: torch.Tensor) -> tuple[np.ndarray, list]:
    """Probabilities from the exported file, in onnxruntime or torch.jit, and the class names
    in its metadata."""
    if model_format == "onnx":
        session = onnxruntime.InferenceSession(str(path))
        (probabilities,) = session.run(None, {"images": images.numpy()})
        metadata = session.get_modelmeta().custom_metadata_map
        return probabilities, json.loads(metadata["class_names"])
    extra_files = {"class_names.txt": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra_files)
    with torch.no_grad():
        probabilities = loaded(images).numpy()
    return probabilities, json.loads(extra_files["class_names.txt"])


@pytest.mark.parametrize("model_format", ["onnx", "torchscript"])
@pytest.mark.parametrize("run", EXPORTED_RUNS)
def test_exports_run_without_imgclf_like_the_pytorch_model(
    run: str, model_format: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_dir = request.getfixturevalue(run)[0]
    path, images, expected, model = exported_vs_model(run_dir, tmp_path, model_format)
    probabilities, class_names = run_exported(path, model_format, images)
    np.testing.assert_allclose(probabilities, expected.numpy(), atol=1e-4)
    assert class_names == model.class_names


def test_eval_of_a_class_subset_model_tests_on_those_classes(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    run_dir, _ = finished_run(
        tmp_path / "run", fixture_data_dir,
        "data.download=false", "data.classes=[dog,cat]", "data.batch_size=8",
        "trainer.max_epochs=1", "trainer.limit_train_batches=2", "callbacks=minimal", "trainer=cpu",
    )  # fmt: skip
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    result = run_script(
        "scripts/eval.py", f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path / 'eval'}",
        data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "classification_report.json").read_text())
    # The fixture's test batch holds 2 dogs and 2 cats among its 20 images.
    assert {name: row["support"] for name, row in report["classes"].items()} == {
        "dog": 2,
        "cat": 2,
    }


@pytest.mark.parametrize("change", ["os.system", "torch.save", "version_0_2"])
def test_a_checkpoint_from_elsewhere_is_refused_before_anything_in_it_runs(
    change: str, cifar_run: tuple, tmp_path: Path
) -> None:
    """torch.save (a file written wherever the checkpoint says) was let through by the old
    allow-list of packages."""
    checkpoint = torch.load(cifar_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    marker = tmp_path / "written"
    payloads = {
        "os.system": {"command": f"touch {marker}"},
        "torch.save": {"obj": 1, "f": str(marker)},
    }
    if change in payloads:
        checkpoint["hyper_parameters"]["net"] = {"_target_": change, **payloads[change]}
        expected = f"net._target_={change} is not one of the classes imgclf offers"
    else:  # 0.2 normalised outside the model
        state = checkpoint["state_dict"]
        del state["classifier.normalisation.mean"], state["classifier.normalisation.std"]
        expected = "was written by imgclf 0.2 or earlier"
    path = tmp_path / "sent.ckpt"
    torch.save(checkpoint, path)
    scripts = (
        ("scripts/predict.py", f"inputs={path}"),
        ("scripts/export.py",),
        ("scripts/demo.py", f"demo.port={free_loopback_port()}"),  # refused before it serves
    )
    for script, *others in scripts:
        result = run_script(
            script, f"ckpt_path={path}", *others, f"hydra.run.dir={tmp_path / 'out'}"
        )
        assert result.returncode == 2
        assert expected in result.stderr and "Traceback" not in result.stderr
        assert not marker.exists()


# Checkpoints the previous version (0.3) wrote, with what its eval.py and predict.py gave for
# them: `python train.py model=<vgg_cnn|deep_cnn> data=mnist model.net.widths=[8,16,32]
# (deep_cnn: [16,32,64]) trainer.max_epochs=1 trainer.limit_train_batches=<240|200>
# callbacks=minimal`, then `scripts/eval.py` on MNIST and `scripts/predict.py` on the first
# 8 MNIST test images as PNGs.
PREVIOUS_VERSION = Path(__file__).parent / "fixtures" / "previous_version"
PREVIOUS_RESULTS = json.loads((PREVIOUS_VERSION / "expected.json").read_text())


@pytest.mark.parametrize("checkpoint_name", sorted(PREVIOUS_RESULTS))
def test_a_checkpoint_of_the_previous_version_evaluates_predicts_and_exports_as_it_did(
    checkpoint_name: str, tmp_path: Path
) -> None:
    checkpoint = PREVIOUS_VERSION / checkpoint_name
    expected = PREVIOUS_RESULTS[checkpoint_name]
    data_dir = require_real_data("MNIST/raw")

    # The figures were measured in float32: precision=auto takes bf16 where the CPU has it.
    result = run_script(
        "scripts/eval.py", f"ckpt_path={checkpoint}", "trainer.precision=32-true",
        f"hydra.run.dir={tmp_path / 'eval'}", data_dir=data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(expected["test/acc"], abs=1e-6)
    assert evaluated["test/loss"] == pytest.approx(expected["test/loss"], rel=1e-5)

    images = sources.load("mnist", data_dir).test.images
    (tmp_path / "pngs").mkdir()
    for index in range(len(expected["predictions"])):
        Image.fromarray(images[index][0].numpy()).save(tmp_path / "pngs" / f"{index}.png")
    result = run_script(
        "scripts/predict.py", f"ckpt_path={checkpoint}", f"inputs={tmp_path / 'pngs'}",
        f"hydra.run.dir={tmp_path / 'predict'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "predict" / "predictions.csv").open() as file:
        predicted = {Path(row["file"]).name: row for row in csv.DictReader(file)}
    for name, (label, confidence) in expected["predictions"].items():
        assert predicted[name]["predicted"] == label, name
        assert float(predicted[name]["confidence"]) == pytest.approx(confidence, abs=1e-4), name

    output = exported(checkpoint, tmp_path / "model.onnx", tmp_path / "export")
    pixels = images[:4].float() / 255
    probabilities, _ = run_exported(output, "onnx", pixels)
    with torch.no_grad():
        model_probabilities = load_checkpoint(checkpoint).classifier.evaluation_logits(images[:4])
    np.testing.assert_allclose(probabilities, model_probabilities.softmax(dim=1).numpy(), atol=1e-4)
