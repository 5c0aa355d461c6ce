"""`python scripts/audit.py data=<dataset> [model=...] [ckpt_path=...]`: audit a dataset for
label errors, duplicates, train/test leakage and outliers, and leave the findings in an
audit folder (outputs/audit/<date>_<time>/)."""

import logging
import time
from dataclasses import replace
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.audit.backbone import backbone_embeddings, pretrained_backbone
from imgclf.audit.findings import FINDING_TYPES, all_findings, nearest_neighbours
from imgclf.audit.out_of_sample import cross_validated, from_checkpoint
from imgclf.audit.report import write_report
from imgclf.builders import check_fits_data, read_as_trained
from imgclf.checks import validate
from imgclf.errors import UserError, user_errors_reported
from imgclf.module import load_checkpoint

log = logging.getLogger(__name__)


def audit(cfg: DictConfig) -> dict[str, int]:
    """Returns the number of findings of each type."""
    started = time.perf_counter()
    if cfg.audit.epochs:
        cfg.trainer.max_epochs = cfg.audit.epochs
    if cfg.get("ckpt_path"):
        model = load_checkpoint(cfg.ckpt_path)
        read_as_trained(cfg, model)
        check_fits_data(model, cfg.data.num_classes, cfg.data.in_channels, cfg.data.image_size)
    validate(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if datamodule.multi_label:
        raise UserError(
            "the audit takes single-label data (a `label` for each image); "
            f"{datamodule.source} gives each image any number of labels"
        )
    seconds = {"reading the data": time.perf_counter() - started}
    step = time.perf_counter()
    backbone = pretrained_backbone(cfg) if cfg.audit.backbone.name else None
    if cfg.get("ckpt_path"):
        images = from_checkpoint(cfg, datamodule)
    else:
        images = cross_validated(cfg, datamodule)
    if backbone is not None:
        images = replace(images, embeddings=backbone_embeddings(backbone, cfg, datamodule))
    seconds["predictions and embeddings"] = time.perf_counter() - step
    step = time.perf_counter()
    neighbours = nearest_neighbours(images.embeddings, cfg.audit.neighbours)
    findings = all_findings(
        images, neighbours, cfg.audit.near_duplicate_radius, cfg.audit.outlier_fence
    )
    seconds["finding issues"] = time.perf_counter() - step
    seconds["all"] = time.perf_counter() - started
    settings = {
        "data": cfg.data.dataset,
        "model": cfg.model.net._target_,
        "folds": "-" if cfg.get("ckpt_path") else cfg.audit.folds,
        "epochs a fold model": "-" if cfg.get("ckpt_path") else cfg.trainer.max_epochs,
        "embeddings": (
            f"pretrained {cfg.audit.backbone.library} {cfg.audit.backbone.name}"
            if cfg.audit.backbone.name
            else "the models' pooled features"
        ),
        "neighbours": cfg.audit.neighbours,
        "near-duplicate radius (x median nearest distance)": cfg.audit.near_duplicate_radius,
        "outlier fence (interquartile ranges)": cfg.audit.outlier_fence,
    }
    output_dir = Path(cfg.paths.output_dir)
    files = write_report(
        output_dir, datamodule, images, neighbours, findings, settings, seconds,
        cfg.audit.grid_size, cfg.audit.cleaned_csv,
    )  # fmt: skip
    counts = {kind: sum(finding.type == kind for finding in findings) for kind in FINDING_TYPES}
    log.info(
        "audited %s images in %.0f s: %s. See %s",
        f"{len(images.ids):,}",
        seconds["all"],
        ", ".join(f"{kind} {count:,}" for kind, count in counts.items()),
        ", ".join(str(output_dir / file) for file in files if file.endswith((".md", ".csv"))),
    )
    return counts


@command_line_app("audit")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="audit")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        audit(cfg)


if __name__ == "__main__":
    main()
