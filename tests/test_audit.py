"""The data audit on real photos with planted problems (flipped labels, copies of training
images in the test set, digits among the photos): what fraction of each it finds, the
report it leaves, and acting on it (data.exclude, data.relabel); and its messages for bad
input."""

import csv
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from imgclf.data.builtin_datamodule import BuiltinDataModule
from imgclf.data.image_files_datamodule import ImageFilesDataModule

from cli import run_script, run_train
from configs import require_real_data
from made_once import made_once
from weights import random_weights

# Photos of three classes a small CNN tells apart within seconds, read at 32 px.
AUDIT = ["data.image_size=32", "audit.epochs=12", "audit.grid_size=16"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="session")
def planted(unplanted_photos: Path, shared_dir: Path) -> Path:
    """The audit's photos with problems planted by scripts/plant_problems.py, and a
    labels.csv of them all with their folders' splits."""

    def plant(folder: Path) -> None:
        shutil.copytree(unplanted_photos, folder)
        result = run_script(
            "scripts/plant_problems.py", str(folder), data_dir=require_real_data("MNIST")
        )
        assert result.returncode == 0, result.stderr[-3000:]

    return made_once(shared_dir, "planted", plant)


@pytest.fixture(scope="session")
def planted_audit(planted: Path, shared_dir: Path) -> Path:
    """The audit's folder, with its defaults (2 folds) on the planted photos' CSV."""

    def audit(output: Path) -> None:
        result = run_script(
            "scripts/audit.py", "data=image_csv", f"data.csv_path={planted / 'labels.csv'}",
            *AUDIT, f"hydra.run.dir={output}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]

    return made_once(shared_dir, "planted_audit", audit)


# What each planted kind should be found as, and the share of them found at least: what the
# audit found here (flipped labels 0.9, exact, resized and JPEG copies 1.0, mirrored copies
# 0.75, digits 0.4), less a margin for other CPUs' arithmetic.
EXPECTED = {
    "flipped_label": ({"label_issue"}, 0.6),
    "exact_copy": ({"leakage"}, 1.0),
    "resized_copy": ({"leakage"}, 0.75),
    "jpeg_copy": ({"leakage"}, 0.75),
    "mirrored_copy": ({"leakage"}, 0.5),
    "foreign": ({"outlier", "label_issue"}, 0.2),
}


def test_the_audit_finds_most_planted_problems(planted: Path, planted_audit: Path) -> None:
    issues = read_rows(planted_audit / "issues.csv")
    found_as: dict[str, set[str]] = {}
    for row in issues:
        found_as.setdefault(row["image"], set()).add(row["type"])
    shares = {}
    for kind, (types, least) in EXPECTED.items():
        rows = [row for row in read_rows(planted / "planted.csv") if row["kind"] == kind]
        found = [row for row in rows if found_as.get(row["path"], set()) & types]
        shares[kind] = len(found) / len(rows)
        assert shares[kind] >= least, (kind, shares)
    # A copy's partner is the training image it was made from.
    for row in read_rows(planted / "planted.csv"):
        if row["kind"].endswith("_copy"):
            leaks = [i for i in issues if i["image"] == row["path"] and i["type"] == "leakage"]
            for leak in leaks:
                assert leak["partner_image"] == row["original"] and leak["partner_split"] == "train"
    # A flipped image's label issue names the folder it was put in, and mostly suggests the
    # class it came from.
    flipped = {r["path"]: r["original"] for r in read_rows(planted / "planted.csv")
               if r["kind"] == "flipped_label"}  # fmt: skip
    found = [row for row in issues if row["type"] == "label_issue" and row["image"] in flipped]
    for row in found:
        assert row["given_label"] == Path(row["image"]).parent.name
    suggested_right = [
        row for row in found if row["suggested_label"] == Path(flipped[row["image"]]).parent.name
    ]
    assert len(suggested_right) >= 0.75 * len(found), (len(suggested_right), len(found))


def test_the_report_counts_what_issues_csv_lists(planted_audit: Path) -> None:
    issues = read_rows(planted_audit / "issues.csv")
    counts = Counter((row["type"], row["split"]) for row in issues)
    report = (planted_audit / "audit.md").read_text()
    for kind in ("label_issue", "leakage", "outlier"):
        by_split = [counts[(kind, split)] for split in ("train", "val", "test")]
        assert f"| {kind} | {' | '.join(map(str, by_split))} | {sum(by_split)} |" in report
    # What the findings came from, loadable without pickle: no code runs on loading it.
    saved = np.load(planted_audit / "predictions.npz")
    assert saved["probabilities"].shape == (len(saved["ids"]), 3)
    assert saved["neighbour_indices"].shape == saved["neighbour_distances"].shape
    relabel = read_rows(planted_audit / "relabel.csv")
    assert [row["image"] for row in relabel] == [
        row["image"] for row in issues if row["type"] == "label_issue"
    ]
    # Every grid in the folder and in TensorBoard.
    events = EventAccumulator(str(planted_audit), size_guidance={"images": 0})
    events.Reload()
    for name in ("label_issues", "duplicates", "outliers"):
        assert (planted_audit / "figures" / f"{name}.png").stat().st_size > 10_000
        assert f"audit/{name}" in events.Tags()["images"]


def test_the_cleaned_csv_leaves_out_every_flagged_image(planted: Path, planted_audit: Path) -> None:
    flagged = {row["image"] for row in read_rows(planted_audit / "issues.csv")}
    listed = read_rows(planted / "labels.csv")
    cleaned = read_rows(planted_audit / "labels_cleaned.csv")
    kept = {os.path.normpath(planted / row["path"]) for row in cleaned}
    assert kept == {os.path.normpath(planted / row["path"]) for row in listed} - flagged
    assert len(cleaned) == len(listed) - len(flagged)


def test_exclude_leaves_images_out_of_every_split_and_keeps_the_others_where_they_were(
    planted: Path, planted_audit: Path, tmp_path: Path
) -> None:
    def splits(**options: object) -> dict[str, list[str]]:
        datamodule = ImageFilesDataModule(
            dataset="image_folder", data_dir=planted / "train", num_classes=3, in_channels=3,
            image_size=32, cache="none", **options,
        )  # fmt: skip
        datamodule.setup("fit")
        return {split: data.ids.tolist() for split, data in datamodule.splits.items()}

    whole = splits()
    # The audit's findings among the training folder's images, which this data splits.
    flagged = {
        row["image"] for row in read_rows(planted_audit / "issues.csv")
        if row["split"] == "train"
    }  # fmt: skip
    issues = tmp_path / "issues.csv"
    with issues.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "type"])
        writer.writerows([image, "label_issue"] for image in flagged)
    excluded = splits(exclude=str(issues))
    for split, ids in whole.items():
        assert excluded[split] == [image for image in ids if image not in flagged]
    assert sum(map(len, excluded.values())) == sum(map(len, whole.values())) - len(flagged)


def test_relabel_gives_the_listed_images_their_new_class(planted: Path, tmp_path: Path) -> None:
    flipped = [r for r in read_rows(planted / "planted.csv") if r["kind"] == "flipped_label"]
    relabel = tmp_path / "relabel.csv"
    with relabel.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "label"])
        writer.writerows([r["path"], Path(r["original"]).parent.name] for r in flipped)
    datamodule = ImageFilesDataModule(
        dataset="image_folder", data_dir=planted, num_classes=3, in_channels=3, image_size=32,
        cache="none", relabel=str(relabel),
    )  # fmt: skip
    datamodule.setup("fit")
    train = datamodule.splits["train"]
    names = datamodule.class_names
    for row in flipped:
        (index,) = (train.ids == row["path"]).nonzero()[0]
        assert names[int(train.labels[index])] == Path(row["original"]).parent.name


def test_exclude_names_built_in_images_by_their_file_and_index(fixture_data_dir: Path) -> None:
    def built(**options: object) -> BuiltinDataModule:
        datamodule = BuiltinDataModule(
            dataset="cifar10", data_dir=fixture_data_dir, num_classes=10, in_channels=3,
            image_size=32, download=False, **options,
        )  # fmt: skip
        datamodule.setup("fit")
        return datamodule

    whole = built()
    val_image = str(whole.splits["val"].ids[0])
    excluded = built(exclude=[val_image, "test/0"])
    assert val_image not in excluded.splits["val"].ids
    assert "test/0" not in excluded.splits["test"].ids
    assert torch.equal(excluded.splits["test"].images, whole.splits["test"].images[1:])


def test_an_exclude_list_naming_missing_images_stops_the_run(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_train(
        "data.exclude=[train/3,train/99999,photos/cat.jpg]", "data.download=false",
        f"hydra.run.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "data.exclude names 2 image(s) that the data does not have" in result.stderr
    assert "train/99999" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def planted_checkpoint(planted: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the planted photos' training folder, as a user's run leaves it."""
    run = tmp_path_factory.mktemp("planted_run")
    result = run_train(
        "data=image_folder", f"data.data_dir={planted}", "data.image_size=32",
        "trainer.max_epochs=8", "callbacks=minimal", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run / "checkpoints" / "last.ckpt"


def audited_with(planted: Path, output: Path, *overrides: str) -> Path:
    result = run_script(
        "scripts/audit.py", "data=image_folder", f"data.data_dir={planted}", "data.image_size=32",
        *overrides, f"hydra.run.dir={output}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def test_a_checkpoint_audits_the_splits_it_did_not_train_on(
    planted: Path, planted_checkpoint: Path, tmp_path: Path
) -> None:
    audit = audited_with(planted, tmp_path, f"ckpt_path={planted_checkpoint}")
    report = (audit / "audit.md").read_text()
    assert "train in-sample, val out-of-sample, test out-of-sample" in report
    saved = np.load(audit / "predictions.npz")
    assert (saved["out_of_sample"] == (saved["splits"] != "train")).all()
    issues = read_rows(audit / "issues.csv")
    # The model learnt its training images' labels, wrong ones too: only the others are judged.
    assert {row["split"] for row in issues if row["type"] == "label_issue"} <= {"val", "test"}
    # Every exact copy of a training image in the test folder is found in its embeddings.
    leaked = {row["image"] for row in issues if row["type"] == "leakage"}
    exact = [r["path"] for r in read_rows(planted / "planted.csv") if r["kind"] == "exact_copy"]
    assert exact and set(exact) <= leaked


def test_a_pretrained_backbone_gives_the_embeddings(
    planted: Path, planted_checkpoint: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "resnet18.safetensors"
    save_file(random_weights("timm", "resnet18"), weights)
    own = audited_with(planted, tmp_path / "own", f"ckpt_path={planted_checkpoint}")
    backbone = audited_with(
        planted, tmp_path / "backbone", f"ckpt_path={planted_checkpoint}",
        "audit.backbone.name=resnet18", f"audit.backbone.weights={weights}",
    )  # fmt: skip
    assert "| embeddings | pretrained timm resnet18 |" in (backbone / "audit.md").read_text()
    # The same predictions, other neighbours.
    own_saved, backbone_saved = (
        np.load(own / "predictions.npz"),
        np.load(backbone / "predictions.npz"),
    )
    assert np.array_equal(own_saved["probabilities"], backbone_saved["probabilities"])
    assert not np.array_equal(own_saved["neighbour_indices"], backbone_saved["neighbour_indices"])
    exact = [r["path"] for r in read_rows(planted / "planted.csv") if r["kind"] == "exact_copy"]
    leaked = {r["image"] for r in read_rows(backbone / "issues.csv") if r["type"] == "leakage"}
    assert set(exact) <= leaked


def test_missing_backbone_weights_are_named(
    planted: Path, planted_checkpoint: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "resnet18.safetensors"
    result = run_script(
        "scripts/audit.py", "data=image_folder", f"data.data_dir={planted}", "data.image_size=32",
        f"ckpt_path={planted_checkpoint}", "audit.backbone.name=resnet18",
        f"audit.backbone.weights={missing}", f"hydra.run.dir={tmp_path / 'audit'}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"audit.backbone.weights={missing}: no such file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["audit.folds=1"], "audit.folds=1: cross-validation needs at least 2 folds"),
        (["audit.folds=400"], "audit.folds=400 needs at least 400 training images of each class"),
    ],
)
def test_fold_counts_the_data_cannot_give_are_refused(
    overrides: list[str], message: str, planted: Path, tmp_path: Path
) -> None:
    result = run_script(
        "scripts/audit.py", "data=image_folder", f"data.data_dir={planted}", *AUDIT, *overrides,
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "issues.csv").exists()


def test_a_checkpoint_of_other_classes_is_refused(
    cifar_run: tuple, planted: Path, tmp_path: Path
) -> None:
    checkpoint = cifar_run[0] / "checkpoints" / "last.ckpt"  # CIFAR-10's 10 classes
    result = run_script(
        "scripts/audit.py", "data=image_folder", f"data.data_dir={planted}",
        f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "the checkpoint's model takes" in result.stderr
    assert "Traceback" not in result.stderr
