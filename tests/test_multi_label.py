"""Multi-label classification: the loss and metrics on a batch worked out by hand, splits that
keep every label, a real run on mosaics of CIFAR-10 images with thresholds tuned on
validation, its figures' counts, predict and export with those thresholds, and the messages
for bad input."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from omegaconf import OmegaConf

from imgclf.data.image_files_datamodule import ImageFilesDataModule
from imgclf.module import load_checkpoint
from imgclf.tasks import MultiLabel

from cli import exported, run_script, run_train, stopped_run
from configs import composed_model

# Three images, two classes; thresholds 0.5 and 0.3 predict [[1, 0], [0, 1], [1, 0]].
PROBABILITIES = torch.tensor([[0.9, 0.2], [0.4, 0.35], [0.6, 0.1]])
LABELS = torch.tensor([[1, 0], [1, 1], [0, 1]])


def csv_rows(mosaics: Path) -> list[dict[str, str]]:
    with (mosaics / "labels.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def test_loss_is_binary_cross_entropy_weighing_positives_and_smoothing_targets() -> None:
    task = MultiLabel(2)
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    weighted = task.loss(torch.tensor([2.0, 1.0]), 0.0)(logits, targets)
    # -(w y log s(x) + (1 - y) log(1 - s(x))) per entry, with log s(x) = -log(1 + e^-x).
    by_hand = (2 * math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)) + 2 * math.log(2)
               + math.log1p(math.exp(-1))) / 4  # fmt: skip
    assert float(weighted) == pytest.approx(by_hand, rel=1e-6)
    # Smoothing 0.2 makes a positive's target 0.9.
    smoothed = task.loss(None, 0.2)(torch.tensor([[2.0]]), torch.tensor([[1.0]]))
    assert float(smoothed) == pytest.approx(
        0.9 * math.log1p(math.exp(-2)) + 0.1 * (2 + math.log1p(math.exp(-2))), rel=1e-6
    )


def test_metrics_match_a_batch_worked_out_by_hand() -> None:
    task = MultiLabel(2)
    task.thresholds.copy_(torch.tensor([0.5, 0.3]))
    logits = torch.logit(PROBABILITIES)
    predictions = task.predictions(logits)
    assert predictions.tolist() == [[1, 0], [0, 1], [1, 0]]
    metrics = task.metrics("test", 2)
    metrics.update(torch.tensor(0.0), task.probabilities(logits), predictions, LABELS)
    scores = {name: float(metric.compute()) for name, metric in metrics.logged().items()}
    # Class 0: TP 1, FP 1, FN 1 (F1 1/2); class 1: TP 1, FN 1 (F1 2/3); all: TP 2, FP 1, FN 2.
    assert scores["f1_macro"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert scores["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert scores["subset_acc"] == pytest.approx(1 / 3)  # only the first image's set is right
    assert scores["hamming_loss"] == pytest.approx(3 / 6)
    # Each class ranks positive, negative, positive: AP (1 + 2/3) / 2.
    assert scores["map"] == pytest.approx(5 / 6)
    assert metrics.confusion.compute().tolist() == [[[0, 1], [1, 1]], [[1, 0], [1, 1]]]


def test_tuned_thresholds_are_the_first_with_the_best_f1_on_validation() -> None:
    task = MultiLabel(2, "tuned")
    metrics = task.metrics("val", 2)
    # Class 0 is separated by any threshold in (0.55, 0.62], class 1 in (0.1, 0.2].
    probabilities = torch.tensor([[0.62, 0.2], [0.81, 0.25], [0.3, 0.1], [0.55, 0.05]])
    labels = torch.tensor([[1, 1], [1, 1], [0, 0], [0, 0]])
    metrics.update(torch.tensor(0.0), probabilities, labels, labels)
    task.tune(metrics)
    assert task.thresholds.tolist() == pytest.approx([0.56, 0.11])


def test_iterative_stratification_keeps_every_label_in_every_split(mosaics: Path) -> None:
    datamodule = ImageFilesDataModule(
        dataset="image_csv", data_dir=None, csv_path=mosaics / "labels.csv", num_classes=10,
        in_channels=3, image_size=32, val_ratio=0.2, cache="none",
    )  # fmt: skip
    datamodule.setup()
    # The CSV's training rows are split into train and val; its test rows stay the test set.
    rows = csv_rows(mosaics)
    train_rows = [row for row in rows if row["split"] == "train"]
    # Iterative stratification balances the labels first, the image counts within an image
    # or two.
    assert abs(len(datamodule.splits["val"]) - 0.2 * len(train_rows)) <= 2
    counts = {split: data.labels.sum(dim=0) for split, data in datamodule.splits.items()}
    assert all((count > 0).all() for count in counts.values())
    # Each label's share of validation is the ratio's, within an image or two.
    share = counts["val"] / (counts["val"] + counts["train"])
    assert (share - 0.2).abs().max() < 2 / counts["train"].min()
    names = datamodule.class_names
    val = datamodule.splits["val"]
    for path, label in zip(val.paths, val.labels, strict=True):
        row = next(row for row in train_rows if path.endswith(row["path"]))
        assert sorted(row["labels"].split(";")) == [names[i] for i in label.nonzero().flatten()]


def test_a_run_tunes_thresholds_and_draws_the_test_counts(
    multi_label_run: tuple, mosaics: Path
) -> None:
    run_dir, metrics = multi_label_run
    for name in ("map", "f1_micro", "f1_macro", "subset_acc", "hamming_loss"):
        assert 0 <= metrics[f"test/{name}"] <= 1
    assert metrics["best_checkpoint"].endswith(".ckpt")
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    thresholds = checkpoint["state_dict"]["task.thresholds"]
    assert not torch.equal(thresholds, torch.full_like(thresholds, 0.5))
    # The test set's true labels, counted from the CSV.
    test_rows = [row for row in csv_rows(mosaics) if row["split"] == "test"]
    confusion = json.loads((run_dir / "figures" / "confusion_matrix.json").read_text())
    names = confusion["class_names"]
    support = {name: sum(name in row["labels"].split(";") for row in test_rows) for name in names}
    matrices = np.array(confusion["per_class_rows_true_columns_predicted"])
    assert matrices.sum(axis=(1, 2)).tolist() == [len(test_rows)] * len(names)
    assert matrices[:, 1].sum(axis=1).tolist() == [support[name] for name in names]
    report = json.loads((run_dir / "classification_report.json").read_text())
    assert {name: row["support"] for name, row in report["classes"].items()} == support
    # Average precision per class, and its mean is the logged mAP.
    mean_ap = np.mean([row["ap"] for row in report["classes"].values()])
    assert mean_ap == pytest.approx(metrics["test/map"], abs=1e-5)
    predicted = matrices[:, :, 1].sum(axis=1)
    assert [row["precision"] for row in report["classes"].values()] == pytest.approx(
        [m[1, 1] / p if p else 0 for m, p in zip(matrices, predicted, strict=True)]
    )
    # Of the images holding class i, how many were given class j: its diagonal is each
    # class's true positives.
    co_occurrence = json.loads((run_dir / "figures" / "co_occurrence.json").read_text())
    given = np.array(co_occurrence["rows_true_columns_predicted"])
    assert given.diagonal().tolist() == matrices[:, 1, 1].tolist()
    assert (given.max(axis=1) <= [support[name] for name in names]).all()
    figures = ["confusion_matrix", "missed", "spurious", "gradcam", "samples",
               "class_distribution", "curves", "precision_recall", "co_occurrence"]  # fmt: skip
    for figure in figures:
        assert (run_dir / "figures" / f"{figure}.png").stat().st_size > 10_000, figure
    # Two epochs may get no image's whole label set right: then the grid says so.
    assert (run_dir / "figures" / "correct.png").is_file()
    report_page = (run_dir / "report.md").read_text()
    assert "val/map" in report_page and "figures/precision_recall.png" in report_page


def test_predict_and_export_answer_with_the_tuned_thresholds(
    multi_label_run: tuple, mosaics: Path, tmp_path: Path
) -> None:
    checkpoint = multi_label_run[1]["best_checkpoint"]
    model = load_checkpoint(checkpoint)
    thresholds = model.task.thresholds
    images = sorted((mosaics / "images" / "test").glob("*.jpg"))[:24]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for image in images:
        (inputs / image.name).write_bytes(image.read_bytes())
    result = run_script(
        "scripts/predict.py", f"ckpt_path={checkpoint}", f"inputs={inputs}", "top_k=10",
        f"hydra.run.dir={tmp_path / 'predict'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "predict" / "predictions.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(images)
    names = model.class_names
    for row in rows:
        probability = {
            name: float(value.rstrip("%")) / 100
            for name, value in (entry.rsplit(" ", 1) for entry in row["top_10"].split("; "))
        }
        expected = {
            name for name in names if probability[name] >= float(thresholds[names.index(name)])
        }
        near = {
            name for name in names
            if abs(probability[name] - float(thresholds[names.index(name)])) < 0.001
        }  # fmt: skip
        assert set(filter(None, row["predicted"].split(";"))) - near == expected - near
    output = exported(checkpoint, tmp_path / "model.onnx", tmp_path / "export")
    session = onnxruntime.InferenceSession(str(output))
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["task"] == "multi_label"
    assert json.loads(metadata["thresholds"]) == pytest.approx(thresholds.tolist(), abs=1e-4)
    output = exported(checkpoint, tmp_path / "model.pt", tmp_path / "export_ts", "torchscript")
    extra_files = {"task.txt": "", "thresholds.txt": ""}
    torch.jit.load(str(output), _extra_files=extra_files)
    assert extra_files["task.txt"] == b"multi_label"
    assert json.loads(extra_files["thresholds.txt"]) == pytest.approx(thresholds.tolist(), abs=1e-4)


def test_init_from_a_multi_label_checkpoint_starts_from_its_network_not_its_thresholds(
    multi_label_run: tuple, mosaics: Path, tmp_path: Path
) -> None:
    checkpoint = multi_label_run[1]["best_checkpoint"]
    trained = torch.load(checkpoint, weights_only=True)["state_dict"]
    model = composed_model(
        ["data=image_csv", f"data.csv_path={mosaics / 'labels.csv'}", "model=simple_cnn",
         "model.threshold=tuned", f"model.init_from={checkpoint}"], tmp_path,
    )  # fmt: skip
    assert isinstance(model.task, MultiLabel)
    started = model.state_dict()
    for key, value in trained.items():
        if key.startswith("classifier."):  # the network, head included, and normalisation
            assert torch.equal(started[key], value), key
    # This run tunes its own thresholds on its own validation images.
    assert model.task.thresholds.tolist() == [0.5] * len(model.class_names)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mosaic_rows(mosaics: Path, count: int) -> list[list[str]]:
    rows = csv_rows(mosaics)[:count]
    return [[str(mosaics / row["path"]), row["labels"]] for row in rows]


def test_an_unknown_label_is_named_when_data_classes_lists_them(
    mosaics: Path, tmp_path: Path
) -> None:
    rows = mosaic_rows(mosaics, 30)
    rows[4][1] = "cat;unicorn"
    labels = write_csv(tmp_path / "labels.csv", ["path", "labels"], rows)
    classes = "[airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck]"
    result = run_train("data=image_csv", f"data.csv_path={labels}", f"data.classes={classes}",
                       "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "line 6: 'unicorn'" in result.stderr
    assert "not among data.classes" in result.stderr


def test_a_csv_with_both_label_and_labels_is_refused(mosaics: Path, tmp_path: Path) -> None:
    rows = [[path, labels.split(";")[0], labels] for path, labels in mosaic_rows(mosaics, 10)]
    labels = write_csv(tmp_path / "labels.csv", ["path", "label", "labels"], rows)
    result = run_train("data=image_csv", f"data.csv_path={labels}", "trainer.max_epochs=1",
                       f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "both a label and a labels column" in result.stderr


def test_a_multi_label_checkpoint_is_refused_by_a_single_label_eval(
    multi_label_run: tuple, fixture_data_dir: Path, tmp_path: Path
) -> None:
    checkpoint = multi_label_run[1]["best_checkpoint"]
    result = run_script(
        "scripts/eval.py", f"ckpt_path={checkpoint}", "data=cifar10", "data.download=false",
        "data.image_size=64", f"hydra.run.dir={tmp_path / 'eval'}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "the model is a multi_label classifier" in result.stderr
    assert not (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.parametrize("cache", ["ram", "none"])  # the two data paths
def test_ddp_counts_every_test_image_once(cache: str, mosaics: Path, tmp_path: Path) -> None:
    rows = csv_rows(mosaics)
    train = [row for row in rows if row["split"] == "train"][:41]
    test = [row for row in rows if row["split"] == "test"][:13]  # shares that do not divide by 2
    labels = write_csv(
        tmp_path / "labels.csv", ["path", "labels", "split"],
        [[str(mosaics / row["path"]), row["labels"], row["split"]] for row in train + test],
    )  # fmt: skip
    result = run_train(
        "trainer=ddp_cpu", "data=image_csv", f"data.csv_path={labels}", f"data.cache={cache}",
        "data.num_workers=0", "data.batch_size=8", "trainer.max_epochs=1",
        "callbacks.gradcam=null", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    confusion = json.loads((run_dir / "figures" / "confusion_matrix.json").read_text())
    matrices = np.array(confusion["per_class_rows_true_columns_predicted"])
    assert matrices.sum(axis=(1, 2)).tolist() == [len(test)] * len(confusion["class_names"])
    support = {
        name: sum(name in row["labels"].split(";") for row in test)
        for name in confusion["class_names"]
    }
    report = json.loads((run_dir / "classification_report.json").read_text())
    assert {name: row["support"] for name, row in report["classes"].items()} == support


def test_eval_of_a_multi_label_checkpoint_tests_it_as_training_did(
    multi_label_run: tuple, mosaics: Path, tmp_path: Path
) -> None:
    metrics = multi_label_run[1]
    result = run_script(
        "scripts/eval.py", f"ckpt_path={metrics['best_checkpoint']}", "data=image_csv",
        f"data.csv_path={mosaics / 'labels.csv'}", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("test/map", "test/f1_micro", "test/subset_acc"):
        assert evaluated[name] == pytest.approx(metrics[name], abs=1e-4), name
    assert (tmp_path / "figures" / "precision_recall.png").is_file()


def test_a_stopped_multi_label_run_resumes_with_its_tuned_thresholds(
    mosaics: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    stopped = stopped_run(
        "fit", "SIGTERM", "data=image_csv", f"data.csv_path={mosaics / 'labels.csv'}",
        "model=simple_cnn", "model.threshold=tuned", "data.batch_size=32",
        "trainer.max_epochs=2", "callbacks=minimal", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    first_epoch = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    tuned = first_epoch["state_dict"]["task.thresholds"]
    assert not torch.equal(tuned, torch.full_like(tuned, 0.5))
    resumed = run_train(f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and "test/map" in metrics
    best = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert best["hyper_parameters"]["threshold"] == "tuned"


def test_an_optuna_sweep_maximises_the_validation_map(mosaics: Path, tmp_path: Path) -> None:
    # Each job reads the CSV the command line names: the sweeper composes the config before
    # the overrides, and what it resolved then must not stay.
    result = run_train(
        "hparams_search=optuna", "hydra.sweeper.n_trials=2", "model=vgg_cnn", "data=image_csv",
        f"data.csv_path={mosaics / 'labels.csv'}", "trainer.max_epochs=1", "callbacks=minimal",
        f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "summary.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 and {row["status"] for row in rows} == {"completed"}
    assert "val/acc_best" not in rows[0]
    best = max(float(row["val/map_best"]) for row in rows)
    assert float(rows[0]["val/map_best"]) == best  # best first
    for row in rows:
        metrics = json.loads((tmp_path / row["job"] / "metrics.json").read_text())
        assert float(row["val/map_best"]) == pytest.approx(metrics["val/map_best"])
        assert Path(metrics["best_checkpoint"]).name.startswith("epoch_")
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert results.best_value == pytest.approx(best, abs=1e-6)
