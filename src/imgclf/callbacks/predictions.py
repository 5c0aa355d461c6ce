"""Right and wrong: grids of test images with their true and predicted classes."""

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from imgclf.callbacks.examples import (
    ExamplePicker,
    ExamplePickingCallback,
    Examples,
)
from imgclf.callbacks.grids import build_image_grid_figure
from imgclf.callbacks.publish import publish_figure


def build_examples_figure(examples: Examples | None, class_names: list[str], title: str) -> Any:
    if examples is None or len(examples) == 0:
        return build_image_grid_figure(torch.zeros(0), [], title)
    colours = [
        "tab:green" if right else "tab:red"
        for right in (examples.predictions == examples.targets).tolist()
    ]
    return build_image_grid_figure(
        examples.images,
        examples.titles(class_names),
        title,
        title_colours=colours,
    )


class PredictionGridCallback(ExamplePickingCallback):
    """`test/misclassified`: the most confident mistakes first; `test/correct`: a random
    sample of right answers, most confident first. Each tile: true class, predicted class and
    the model's confidence."""

    def __init__(self, output_dir: str, count: int = 32) -> None:
        super().__init__(
            {
                "misclassified": ExamplePicker(count, correct=False),
                "correct": ExamplePicker(count, correct=True),
            }
        )
        self.output_dir = output_dir

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        gathered = self.gather(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        names = pl_module.class_names
        titles = {
            "misclassified": "Misclassified test images, most confident first",
            "correct": "Correctly classified test images (a random sample)",
        }
        for name, examples in gathered.items():
            if name == "correct" and examples is not None:
                examples = examples.take(examples.confidences.argsort(descending=True))
            figure = build_examples_figure(examples, names, titles[name])
            publish_figure(trainer, f"test/{name}", figure, self.output_dir, name)
