"""What a run shows: the TensorBoard events it wrote, and checks that a picture is a real one."""

import io
from pathlib import Path

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

IMAGE_TAGS = [
    "data/samples",
    "data/class_distribution",
    "curves/loss_accuracy",
    "val/confusion_matrix",
    "test/confusion_matrix",
    "test/misclassified",
    "test/correct",
    "test/gradcam_misclassified",
    "model/first_layer_filters",
]


def load_events(run_dir: Path) -> EventAccumulator:
    size_guidance = {"images": 0, "scalars": 0, "tensors": 0}
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance=size_guidance)
    events.Reload()
    return events


def assert_real_picture(png: bytes) -> None:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape[0] >= 100 and image.shape[1] >= 100
    assert image.std() > 5, "a blank image"
