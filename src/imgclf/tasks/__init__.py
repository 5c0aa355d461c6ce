"""What kind of classification a model does: its loss, what its outputs mean, its metrics and
what counts as a right answer. The LightningModule, the callbacks and predict ask the task,
and never branch on which it is."""

from imgclf.errors import UserError
from imgclf.tasks.multi_label import TUNED, MultiLabel
from imgclf.tasks.single_label import SingleLabel
from imgclf.tasks.task import StageMetrics, Task

TASKS = {SingleLabel.name: SingleLabel, MultiLabel.name: MultiLabel}
TASK_NAMES = tuple(TASKS)


def make_task(name: str, num_classes: int, threshold: float | str = 0.5) -> Task:
    """The task called `name`; `threshold` is a multi-label model's (a number, or `tuned`)."""
    if name == SingleLabel.name:
        return SingleLabel()
    if name == MultiLabel.name:
        return MultiLabel(num_classes, threshold)
    raise UserError(f"model.task={name} is not a task: use one of {', '.join(TASK_NAMES)}")


def headline_score(name: str) -> str:
    """The score that judges a run of the task called `name` (`acc`, `map`)."""
    return TASKS.get(name, SingleLabel).headline_score


__all__ = [
    "TASK_NAMES",
    "TUNED",
    "MultiLabel",
    "SingleLabel",
    "StageMetrics",
    "Task",
    "headline_score",
    "make_task",
]
