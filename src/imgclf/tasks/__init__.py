"""What kind of classification a model does: its loss, what its outputs mean, its metrics and
what counts as a right answer. The LightningModule, the callbacks and predict ask the task,
and never branch on which it is."""

from imgclf.tasks.single_label import SingleLabel
from imgclf.tasks.task import StageMetrics, Task

__all__ = ["SingleLabel", "StageMetrics", "Task"]
