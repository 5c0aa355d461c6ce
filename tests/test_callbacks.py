"""The views of a run: every figure, text and scalar reaches TensorBoard and the run folder."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from imgclf.callbacks.examples import ExamplePicker
from imgclf.callbacks.exploration import stratified_sample
from imgclf.callbacks.report import classification_report
from imgclf.tasks import SingleLabel

from cli import run_script, run_train
from views import IMAGE_TAGS, assert_real_picture, load_events

FIGURE_FILES = [
    "samples", "class_distribution", "curves", "confusion_matrix", "misclassified", "correct",
    "gradcam", "first_layer_filters",
]  # fmt: skip


def test_every_view_is_a_real_image_in_tensorboard(cifar_run: tuple) -> None:
    run_dir, _ = cifar_run
    events = load_events(run_dir)
    assert set(IMAGE_TAGS) <= set(events.Tags()["images"])
    for tag in IMAGE_TAGS:
        assert_real_picture(events.Images(tag)[-1].encoded_image_string)
    # One learning-curve figure per epoch, one validation confusion matrix per epoch here.
    assert len(events.Images("curves/loss_accuracy")) == 2
    assert len(events.Images("val/confusion_matrix")) == 2


def test_classification_report_is_text_and_per_class_scalars(cifar_run: tuple) -> None:
    run_dir, _ = cifar_run
    events = load_events(run_dir)
    text = events.Tensors("test/classification_report/text_summary")[-1]
    markdown = text.tensor_proto.string_val[0].decode()
    assert "| airplane |" in markdown and "macro avg" in markdown
    scalars = set(events.Tags()["scalars"])
    for name in ("airplane", "truck"):
        assert {f"test/precision/{name}", f"test/recall/{name}", f"test/f1/{name}"} <= scalars


@pytest.mark.parametrize("run", ["cifar_run", "timm_run"])
def test_figures_and_reports_are_written_to_the_run_folder(
    run: str, request: pytest.FixtureRequest
) -> None:
    run_dir, metrics = request.getfixturevalue(run)
    for name in FIGURE_FILES:
        assert_real_picture((run_dir / "figures" / f"{name}.png").read_bytes())
    matrix = json.loads((run_dir / "figures" / "confusion_matrix.json").read_text())
    assert np.sum(matrix["rows_true_columns_predicted"]) == 20  # the fixture's test images
    report = json.loads((run_dir / "classification_report.json").read_text())
    assert report["support"] == 20
    assert report["accuracy"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert "| truck |" in (run_dir / "classification_report.md").read_text()
    curves = json.loads((run_dir / "figures" / "curves.json").read_text())
    assert [row["epoch"] for row in curves] == [1, 2]
    assert curves[-1]["val/acc"] == pytest.approx(metrics["val/acc"])


def test_run_report_embeds_every_figure_and_the_final_metrics(cifar_run: tuple) -> None:
    run_dir, metrics = cifar_run
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# deep_cnn (AirbenchNet) on cifar10")  # as chosen, and its class
    for name in FIGURE_FILES:
        assert f"(figures/{name}.png)" in report
    assert f"| test/acc | {metrics['test/acc']:.2%} |" in report
    assert "| optimizer | `Muon` lr=0.24" in report
    assert "| macro avg |" in report or "**macro avg**" in report


def test_classification_report_matches_its_definition() -> None:
    # Rows true, columns predicted: class a 2 right, 1 taken for b; class b 3 right, c never.
    matrix = torch.tensor([[2, 1, 0], [0, 3, 0], [0, 0, 0]])
    report = classification_report(matrix, ["a", "b", "c"])
    a, b, c = (report["classes"][name] for name in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"]) == (pytest.approx(3 / 4), 1.0)
    assert a["f1"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["accuracy"] == pytest.approx(5 / 6)
    assert report["macro avg"]["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert report["weighted avg"]["recall"] == pytest.approx(report["accuracy"])


def test_stratified_sample_shows_every_class() -> None:
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 20)
    picked = stratified_sample(labels, 9)
    assert len(picked) == len(set(picked.tolist())) == 9
    assert set(labels[picked].tolist()) == {0, 1, 2}


def test_picker_keeps_the_most_confident_mistakes_across_batches() -> None:
    picker = ExamplePicker(count=2, kind="wrong")
    for confidences in ([0.9, 0.6, 0.3], [0.95, 0.2, 0.7]):
        probabilities = torch.tensor([[1 - p, p] for p in confidences])
        outputs = {
            "probabilities": probabilities,
            "predictions": (probabilities[:, 1] > 0.5).long(),
            "targets": torch.zeros(3, dtype=torch.long),
        }
        picker.update(torch.arange(3.0)[:, None, None, None], outputs, SingleLabel())
    assert picker.kept.probabilities[:, 1].tolist() == pytest.approx([0.95, 0.9])
    assert picker.kept.predictions.tolist() == [1, 1]


def test_views_under_ddp_are_drawn_once_from_every_rank_s_predictions(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = run_train(
        "trainer=ddp_cpu",
        "data.download=false",
        "data.batch_size=8",
        "trainer.max_epochs=1",
        "callbacks.gradcam=null",
        f"hydra.run.dir={run_dir}",
        data_dir=fixture_data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [path.name for path in tmp_path.iterdir()] == ["run"]  # one run folder
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Each rank tests 10 of the 20 images; the matrix and report count all of them.
    matrix = json.loads((run_dir / "figures" / "confusion_matrix.json").read_text())
    assert np.sum(matrix["rows_true_columns_predicted"]) == 20
    report = json.loads((run_dir / "classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert_real_picture((run_dir / "figures" / "misclassified.png").read_bytes())
    # The view switched off left nothing behind.
    assert not (run_dir / "figures" / "gradcam.png").exists()
    assert "test/gradcam_misclassified" not in load_events(run_dir).Tags()["images"]


def test_explore_data_script_writes_the_exploration_figures(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_script(
        "scripts/explore_data.py",
        "data=mnist",
        "data.download=false",
        f"hydra.run.dir={tmp_path}",
        data_dir=fixture_data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("samples", "class_distribution"):
        assert_real_picture((tmp_path / "figures" / f"{name}.png").read_bytes())
