"""Right and wrong: grids of test images with their true and predicted classes."""

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from imgclf.callbacks.examples import CORRECT, ExamplePickingCallback, Examples
from imgclf.callbacks.grids import build_image_grid_figure
from imgclf.callbacks.publish import publish_figure
from imgclf.tasks import Task

CORRECT_TITLE = "Correctly classified test images (a random sample)"


def build_examples_figure(
    examples: Examples | None, class_names: list[str], title: str, task: Task
) -> Any:
    if examples is None or len(examples) == 0:
        return build_image_grid_figure(torch.zeros(0), [], title)
    right = task.correct(examples.predictions, task.labels(examples.targets))
    colours = ["tab:green" if is_right else "tab:red" for is_right in right.tolist()]
    return build_image_grid_figure(
        examples.images,
        examples.titles(class_names, task),
        title,
        title_colours=colours,
    )


class PredictionGridCallback(ExamplePickingCallback):
    """A grid of each kind of mistake the task names, worst first: `test/misclassified`, the
    most confident mistakes (multi-label: `test/missed` and `test/spurious`, the images with
    the most missed and the most spurious labels); and `test/correct`, a random sample of
    right answers, most confident first. Each tile: the true and the predicted class
    (multi-label: label sets) with the model's probabilities. A multi-label answer is right
    when its whole label set is."""

    def __init__(self, output_dir: str, count: int = 32) -> None:
        super().__init__(count)
        self.output_dir = output_dir

    def kinds(self, task: Task) -> tuple[str, ...]:
        return (*task.mistake_kinds, CORRECT)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        gathered = self.gather(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        names = pl_module.class_names
        titles = {**pl_module.task.mistake_kinds, CORRECT: CORRECT_TITLE}
        for name, examples in gathered.items():
            if name == CORRECT and examples is not None:
                confidences = pl_module.task.confidences(examples.probabilities)
                examples = examples.take(confidences.argsort(descending=True))
            figure = build_examples_figure(examples, names, titles[name], pl_module.task)
            publish_figure(trainer, f"test/{name}", figure, self.output_dir, name)
