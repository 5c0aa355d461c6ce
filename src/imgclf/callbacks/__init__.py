"""Lightning callbacks, one per view of a run: each logs to TensorBoard and writes its files
into the run folder. Each can be switched off in the `callbacks` config group."""

import matplotlib

# Draw off-screen before any of the modules below imports pyplot: runs happen on servers,
# in subprocesses and in DDP workers, never in front of a screen.
matplotlib.use("Agg")

from imgclf.callbacks.confusion import ConfusionMatrixCallback  # noqa: E402
from imgclf.callbacks.curves import LearningCurvesCallback  # noqa: E402
from imgclf.callbacks.divergence import DivergenceGuard  # noqa: E402
from imgclf.callbacks.ema import WeightEMA, weight_ema  # noqa: E402
from imgclf.callbacks.exploration import DataExplorationCallback  # noqa: E402
from imgclf.callbacks.filters import FirstLayerFiltersCallback  # noqa: E402
from imgclf.callbacks.freeze import FreezeParameters  # noqa: E402
from imgclf.callbacks.gradcam import GradCamCallback  # noqa: E402
from imgclf.callbacks.label_views import LabelViewsCallback  # noqa: E402
from imgclf.callbacks.predictions import PredictionGridCallback  # noqa: E402
from imgclf.callbacks.report import ClassificationReportCallback  # noqa: E402
from imgclf.callbacks.run_report import RunReportCallback  # noqa: E402
from imgclf.callbacks.startup import StartupTimer  # noqa: E402

__all__ = [
    "ClassificationReportCallback",
    "ConfusionMatrixCallback",
    "DataExplorationCallback",
    "DivergenceGuard",
    "FirstLayerFiltersCallback",
    "FreezeParameters",
    "GradCamCallback",
    "LabelViewsCallback",
    "LearningCurvesCallback",
    "PredictionGridCallback",
    "RunReportCallback",
    "StartupTimer",
    "WeightEMA",
    "weight_ema",
]
