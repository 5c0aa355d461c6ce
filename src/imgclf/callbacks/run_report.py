"""`report.md`: the run on one page, readable on GitHub or in any Markdown viewer: what was
trained, how well it did, and every figure the other callbacks saved."""

from datetime import datetime
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from omegaconf import OmegaConf

from imgclf.callbacks.publish import FIGURES_FOLDER
from imgclf.callbacks.report import REPORT_NAME

# (file stem in figures/, section title), in reading order.
SECTIONS = [
    ("curves", "Learning curves"),
    ("confusion_matrix", "Confusion matrix (test set)"),
    (REPORT_NAME, "Classification report (test set)"),
    ("precision_recall", "Precision-recall curves (test set)"),
    ("co_occurrence", "Labels together: true against predicted (test set)"),
    ("misclassified", "Misclassified test images, most confident first"),
    ("missed", "Test images with the most missed labels"),
    ("spurious", "Test images with the most spurious labels"),
    ("correct", "Correctly classified test images"),
    ("gradcam", "Grad-CAM: where the model looked on its mistakes"),
    ("first_layer_filters", "First convolution layer's filters"),
    ("samples", "Sample training images"),
    ("class_distribution", "Class distribution"),
]
CONFIG_GROUPS = ("data", "model", "optimizer", "scheduler", "trainer")
# Config entries that say nothing about the experiment itself.
UNINTERESTING_KEYS = {"_target_", "_partial_", "data_dir", "default_root_dir", "num_classes"}


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        # Interpolations (`${data.in_channels}`) repeat a value shown elsewhere.
        interpolation = isinstance(value, str) and value.startswith("${")
        if key not in UNINTERESTING_KEYS and value is not None and not interpolation:
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def config_table(config: dict[str, Any]) -> str:
    lines = ["| group | settings |", "|---|---|"]
    for group in CONFIG_GROUPS:
        section = config.get(group)
        if section is None:
            continue
        target = section.get("_target_") or (section.get("net") or {}).get("_target_", "")
        settings = ", ".join(f"{key}={value}" for key, value in flatten(section).items())
        name = f"`{target.rsplit('.', 1)[-1]}` " if target else ""
        lines.append(f"| {group} | {name}{settings} |")
    if "seed" in config:
        lines.append(f"| seed | {config['seed']} |")
    return "\n".join(lines)


# The stages whose metrics the results table lists; the learning rates the monitor logs
# beside them are not results.
RESULT_STAGES = ("train/", "val/", "test/")


def metrics_table(metrics: dict[str, float]) -> str:
    lines = ["| metric | value |", "|---|---:|"]
    results = {name: value for name, value in metrics.items() if name.startswith(RESULT_STAGES)}
    for name, value in sorted(results.items()):
        shown = f"{value:.2%}" if name.endswith("acc") or "acc_" in name else f"{value:.4f}"
        lines.append(f"| {name} | {shown} |")
    return "\n".join(lines)


def load_run_config(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The composed config and command-line overrides Hydra saved, if any."""
    hydra_dir = run_dir / ".hydra"
    config, overrides = {}, []
    if (hydra_dir / "config.yaml").is_file():
        config = OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"), resolve=False)
    if (hydra_dir / "overrides.yaml").is_file():
        overrides = list(OmegaConf.load(hydra_dir / "overrides.yaml"))
    return config, overrides


def build_run_report(
    run_dir: Path, metrics: dict[str, float], title: str, facts: dict[str, str]
) -> str:
    config, overrides = load_run_config(run_dir)
    parts = [f"# {title}", ""]
    parts += [f"- **{name}**: {value}" for name, value in facts.items()]
    parts += [f"- **overrides**: `{' '.join(overrides) or '(none: the defaults)'}`", ""]
    parts += ["## Results", "", metrics_table(metrics), ""]
    if config:
        parts += ["## Configuration", "", config_table(config), ""]
    for stem, heading in SECTIONS:
        if stem == REPORT_NAME:
            path = run_dir / f"{REPORT_NAME}.md"
            if path.is_file():
                body = path.read_text().split("\n", 2)[-1].strip()  # without its own heading
                parts += [f"## {heading}", "", body, ""]
        elif (run_dir / FIGURES_FOLDER / f"{stem}.png").is_file():
            parts += [f"## {heading}", "", f"![{heading}]({FIGURES_FOLDER}/{stem}.png)", ""]
    return "\n".join(parts)


class RunReportCallback(Callback):
    """Writes `report.md` when fitting ends and again, complete, when testing ends. Its title
    names the network's class, after `model`, the model as the command chose it (deep_cnn)."""

    def __init__(self, output_dir: str, model: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.model = model
        self.metrics: dict[str, float] = {}

    def collect(self, trainer: Trainer) -> None:
        self.metrics.update(
            {name: float(value) for name, value in trainer.callback_metrics.items()}
        )

    def write(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        network = type(pl_module.classifier.net).__name__
        if self.model:  # deep_cnn (AirbenchNet)
            network = f"{self.model} ({network})"
        dataset = getattr(trainer.datamodule, "dataset", "the data")
        facts = {
            "run folder": f"`{self.output_dir.name}`",
            "written": datetime.now().strftime("%Y-%m-%d %H:%M"),
            "parameters": f"{sum(p.numel() for p in pl_module.parameters()):,}",
            "epochs trained": str(trainer.current_epoch),
            "precision": str(trainer.precision),
            "devices": f"{trainer.world_size} x {type(trainer.accelerator).__name__}",
        }
        report = build_run_report(self.output_dir, self.metrics, f"{network} on {dataset}", facts)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "report.md").write_text(report)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.collect(trainer)
        self.write(trainer, pl_module)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.collect(trainer)
        self.write(trainer, pl_module)
