"""What the audit leaves in its folder: issues.csv (one row a finding), audit.md (the
summary tables and the grids), figures/ (label issues, duplicate pairs, outliers; the same
in TensorBoard), relabel.csv (the suggested labels, for `data.relabel`) and, for a CSV
dataset, its labels without the flagged images."""

import csv
import os
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from imgclf.audit.findings import FINDING_TYPES, LABEL_ISSUE, OUTLIER, Finding, Neighbours
from imgclf.audit.out_of_sample import AuditedImages
from imgclf.callbacks.grids import build_image_grid_figure
from imgclf.callbacks.publish import figure_path, write_figure
from imgclf.data.amend import IMAGE_COLUMN, LABEL_COLUMN
from imgclf.data.datamodule import ImageDataModule

ISSUE_COLUMNS = [
    IMAGE_COLUMN, "split", "type", "score", "given_label", "suggested_label",
    "partner_image", "partner_split", "partner_label",
]  # fmt: skip
# The grids: each figure's name, the finding types it shows, and its title.
GRIDS = {
    "label_issues": ([LABEL_ISSUE], "Suspected label errors: given and suggested label"),
    "duplicates": (
        ["leakage", "exact_duplicate", "near_duplicate"],
        "Duplicate pairs, side by side (red: their labels differ)",
    ),
    "outliers": ([OUTLIER], "Outliers: farthest from their nearest neighbours"),
}


def issue_rows(images: AuditedImages, findings: list[Finding]) -> list[dict[str, str]]:
    names = images.class_names

    def described(finding: Finding) -> dict[str, str]:
        partner = finding.partner
        return {
            IMAGE_COLUMN: str(images.ids[finding.image]),
            "split": str(images.splits[finding.image]),
            "type": finding.type,
            "score": f"{finding.score:.4f}",
            "given_label": names[images.labels[finding.image]],
            "suggested_label": "" if finding.suggested is None else names[finding.suggested],
            "partner_image": "" if partner is None else str(images.ids[partner]),
            "partner_split": "" if partner is None else str(images.splits[partner]),
            "partner_label": "" if partner is None else names[images.labels[partner]],
        }

    return [described(finding) for finding in findings]


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def short_name(name: str) -> str:
    """A file's name, or a built-in image's "train/123", for a grid's caption."""
    return Path(name).name if os.sep in name and not name.startswith(("train/", "test/")) else name


def described(images: AuditedImages, index: int) -> str:
    """An image's split, name and given label, for a pair's caption."""
    name = short_name(str(images.ids[index]))
    return f"{images.splits[index]}: {name}\n{images.class_names[images.labels[index]]}"


def pixels(datamodule: ImageDataModule, images: AuditedImages, indices: list[int]) -> torch.Tensor:
    """The images as evaluation sees them, in the order given."""
    return torch.cat(
        [
            datamodule.views(str(images.splits[i]), torch.tensor([int(images.positions[i])]))
            for i in indices
        ]
    )


def grid_figure(
    datamodule: ImageDataModule,
    images: AuditedImages,
    findings: list[Finding],
    types: list[str],
    title: str,
    count: int,
) -> Figure:
    names = images.class_names
    shown = [finding for finding in findings if finding.type in types][:count]
    if shown and shown[0].partner is not None:
        tiles, captions, colours = [], [], []
        for finding in shown:
            a, b = finding.image, finding.partner
            differ = images.labels[a] != images.labels[b]
            tiles += [a, b]
            captions += [
                f"{finding.type}\n{described(images, a)}",
                f"similarity {finding.score:.3f}\n{described(images, b)}",
            ]
            colours += ["red" if differ else "black"] * 2
        return build_image_grid_figure(
            pixels(datamodule, images, tiles), captions, title, columns=8, title_colours=colours
        )
    captions = []
    for finding in shown:
        given = names[images.labels[finding.image]]
        if finding.suggested is not None:
            probability = images.probabilities[finding.image, finding.suggested]
            captions.append(
                f"given: {given}\nsuggested: {names[finding.suggested]} {probability:.0%}"
            )
        else:
            captions.append(f"{images.splits[finding.image]} {given}\ndistance {finding.score:.2f}")
    indices = [finding.image for finding in shown]
    tiles = pixels(datamodule, images, indices) if indices else torch.empty(0)
    return build_image_grid_figure(tiles, captions, title, columns=10)


def summary_markdown(
    images: AuditedImages,
    findings: list[Finding],
    dataset: str,
    settings: dict[str, object],
    seconds: dict[str, float],
    files: list[str],
) -> str:
    split_names = list(dict.fromkeys(images.splits.tolist()))
    images_per_split = Counter(images.splits.tolist())
    by_split = Counter((f.type, str(images.splits[f.image])) for f in findings)
    by_class = Counter((f.type, int(images.labels[f.image])) for f in findings)
    pairs = [f for f in findings if f.partner is not None]
    differing = sum(images.labels[f.image] != images.labels[f.partner] for f in pairs)
    lines = [
        f"# Data audit: {dataset}",
        "",
        f"Images audited: {', '.join(f'{s} {images_per_split[s]:,}' for s in split_names)}.",
        f"Predictions: {images.predicted_by}.",
        "",
        "## Findings by split",
        "",
        f"| type | {' | '.join(split_names)} | all |",
        f"|---|{'---:|' * (len(split_names) + 1)}",
    ]
    for kind in FINDING_TYPES:
        counts = [by_split[(kind, split)] for split in split_names]
        lines.append(f"| {kind} | {' | '.join(f'{c:,}' for c in counts)} | {sum(counts):,} |")
    lines += [
        "",
        f"Duplicate and leakage pairs whose labels differ: {differing:,} of {len(pairs):,}.",
        "",
        "## Findings by given class",
        "",
        f"| class | {' | '.join(FINDING_TYPES)} |",
        f"|---|{'---:|' * len(FINDING_TYPES)}",
    ]
    for label, name in enumerate(images.class_names):
        lines.append(
            f"| {name} | {' | '.join(f'{by_class[(kind, label)]:,}' for kind in FINDING_TYPES)} |"
        )
    for name, (_, title) in GRIDS.items():
        lines += ["", f"## {title}", "", f"![{name}](figures/{name}.png)"]
    lines += [
        "",
        "## Files",
        "",
        *[f"- `{file}`" for file in files],
        "",
        "## Settings and cost",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in settings.items()],
        "",
        "| step | seconds |",
        "|---|---:|",
        *[f"| {step} | {value:.1f} |" for step, value in seconds.items()],
    ]
    return "\n".join(lines) + "\n"


def cleaned_csv_rows(csv_path: Path, flagged: set[str]) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV's rows without those of the flagged images (their paths as the data lists
    them: normalised, from the CSV's folder)."""
    with csv_path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = [
            row
            for row in reader
            if os.path.normpath(csv_path.parent / (row.get("path") or "")) not in flagged
        ]
        return list(reader.fieldnames or []), rows


def write_report(
    output_dir: Path,
    datamodule: ImageDataModule,
    images: AuditedImages,
    neighbours: Neighbours,
    findings: list[Finding],
    settings: dict[str, object],
    seconds: dict[str, float],
    grid_size: int,
    cleaned_csv: bool,
) -> list[str]:
    """Everything the audit leaves in `output_dir`; returns the files written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = issue_rows(images, findings)
    write_csv(output_dir / "issues.csv", ISSUE_COLUMNS, rows)
    # What the findings were made from, for a look of one's own (numpy.load).
    np.savez_compressed(
        output_dir / "predictions.npz",
        ids=images.ids, splits=images.splits, labels=images.labels,
        probabilities=images.probabilities, out_of_sample=images.out_of_sample,
        class_names=np.array(images.class_names), neighbour_indices=neighbours.indices,
        neighbour_distances=neighbours.distances,
    )  # fmt: skip
    files = ["issues.csv", "predictions.npz"]
    suggestions = [
        {IMAGE_COLUMN: row[IMAGE_COLUMN], LABEL_COLUMN: row["suggested_label"]}
        for row in rows
        if row["type"] == LABEL_ISSUE
    ]
    write_csv(output_dir / "relabel.csv", [IMAGE_COLUMN, LABEL_COLUMN], suggestions)
    files.append("relabel.csv")
    csv_path = getattr(datamodule, "csv_path", None)
    if cleaned_csv and csv_path is not None:
        flagged = {str(images.ids[finding.image]) for finding in findings}
        columns, kept = cleaned_csv_rows(csv_path, flagged)
        write_csv(output_dir / f"{csv_path.stem}_cleaned.csv", columns, kept)
        files.append(f"{csv_path.stem}_cleaned.csv")
    writer = SummaryWriter(str(output_dir))
    try:
        for name, (types, title) in GRIDS.items():
            figure = grid_figure(datamodule, images, findings, types, title, grid_size)
            write_figure(figure, figure_path(output_dir, name), [writer], f"audit/{name}")
            files.append(f"figures/{name}.png")
        markdown = summary_markdown(
            images, findings, datamodule.dataset, settings, seconds, [*files, "audit.md"]
        )
        writer.add_text("audit/summary", markdown)
    finally:
        writer.close()
        plt.close("all")
    (output_dir / "audit.md").write_text(markdown)
    return [*files, "audit.md"]
