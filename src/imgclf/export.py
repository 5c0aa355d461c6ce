"""`python scripts/export.py ckpt_path=<checkpoint> format=onnx|torchscript`: a model file that
runs without imgclf: it takes [0, 1] pixels, normalises them itself, returns probabilities,
and carries the class names in its metadata."""

import json
import logging
from pathlib import Path

import hydra
import onnx
import torch
from omegaconf import DictConfig
from torch import nn

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.classifier import Classifier
from imgclf.errors import UserError, user_errors_reported
from imgclf.module import ImageClassifier, load_checkpoint
from imgclf.tasks import Task

log = logging.getLogger(__name__)
# The ONNX exporter narrates every optimisation pass at INFO level.
for talkative in ("onnxscript", "onnx_ir", "torch.onnx"):
    logging.getLogger(talkative).setLevel(logging.WARNING)

FORMATS = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


class ExportedClassifier(nn.Module):
    """float32 (N, C, H, W) pixels in [0, 1] to (N, classes) probabilities: the classifier
    with its normalisation and test-time views, as evaluation applies them, every view
    computed (a graph of fixed shapes), and the task's probabilities."""

    def __init__(self, classifier: Classifier, task: Task) -> None:
        super().__init__()
        self.classifier = classifier.for_export()
        self.task = task

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.classifier.evaluation_logits(images, skip_confident=False)
        return self.task.probabilities(logits)


def metadata(model: ImageClassifier) -> dict[str, str]:
    channels, size = model.hparams.in_channels, model.hparams.image_size
    return {
        "class_names": json.dumps(model.class_names),
        "input": f"{INPUT_NAME}: float32 (N, {channels}, {size}, {size}), "
        f"{'RGB' if channels == 3 else 'grey'} in [0, 1]",
        "output": f"{OUTPUT_NAME}: float32 (N, {len(model.class_names)}), in class_names order",
        "trained_on": str(model.hparams.dataset),
        **model.task.metadata(),
    }


def export_onnx(
    module: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str], opset: int
) -> None:
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=65536)}},
        opset_version=opset,
        external_data=False,  # one self-contained file
        dynamo=True,
    )
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def export_torchscript(
    module: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]
) -> None:
    traced = torch.jit.trace(module, example)
    extra_files = {f"{key}.txt": value for key, value in metadata.items()}
    torch.jit.save(traced, str(path), _extra_files=extra_files)


def usage(path: Path, model: ImageClassifier, model_format: str) -> str:
    channels, size = model.hparams.in_channels, model.hparams.image_size
    shape = f"(N, {channels}, {size}, {size})"
    load = (
        f"session = onnxruntime.InferenceSession('{path}')\n"
        f"  probabilities = session.run(None, {{'{INPUT_NAME}': images}})[0]"
        if model_format == "onnx"
        else f"model = torch.jit.load('{path}')\n  probabilities = model(torch.from_numpy(images))"
    )
    colour = "RGB" if channels == 3 else "greyscale"
    names = model.class_names
    return (
        f"wrote {path}\n"
        f"input '{INPUT_NAME}': float32 {shape}, {colour} pixels scaled to [0, 1] "
        f"(resize the short side to {model.hparams.resize_size}, crop the central {size}x{size}); "
        "normalisation is built in\n"
        f"output '{OUTPUT_NAME}': float32 (N, {len(names)}), one probability per "
        f"class, in the order of the 'class_names' metadata: {', '.join(names)}\n"
        f"call it:\n  {load}"
    )


def export(cfg: DictConfig) -> Path:
    if cfg.format not in FORMATS:
        raise UserError(f"format={cfg.format} is not supported; choose one of {', '.join(FORMATS)}")
    model = load_checkpoint(cfg.ckpt_path)
    path = Path(cfg.output).expanduser()
    description, how_to_use = metadata(model), usage(path, model, cfg.format)
    size = model.hparams.image_size
    example = torch.rand(2, model.hparams.in_channels, size, size)
    module = ExportedClassifier(model.classifier, model.task).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    if cfg.format == "onnx":
        export_onnx(module, example, path, description, cfg.onnx_opset)
    else:
        export_torchscript(module, example, path, description)
    print(how_to_use)
    return path


@command_line_app("export")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        export(cfg)


if __name__ == "__main__":
    main()
