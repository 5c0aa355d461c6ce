"""Load a trained model from its checkpoint, safely, with what it needs to be applied: the
input it expects and the names of the classes it outputs."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from imgclf.data.datamodule import ImageDataModule
from imgclf.data.transforms import evaluation_transform
from imgclf.errors import UserError
from imgclf.module import ImageClassifier


@dataclass(frozen=True)
class InputSpec:
    """How the model was trained to see images (saved by ImageDataModule.state_dict)."""

    dataset: str
    class_names: list[str]
    in_channels: int
    image_size: int
    mean: list[float]
    std: list[float]
    # The short side an image is resized to before the central image_size crop (0.2
    # checkpoints, trained on images of image_size, lack it: the crop is then the whole).
    resize_size: int | None = None

    def view(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """How an image file becomes the model's input, as in evaluation during training."""
        return evaluation_transform(self.image_size, self.resize_size or self.image_size)

    def describe(self) -> str:
        return (
            f"{len(self.class_names)} classes of {self.in_channels}x{self.image_size}x"
            f"{self.image_size} images ({self.dataset})"
        )


def load_checkpoint(path: str | Path) -> tuple[ImageClassifier, InputSpec]:
    """The model in eval mode on the CPU, and its input spec. `weights_only` loading: a
    checkpoint holds only tensors and plain data, so no code in it can run."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist. Pass ckpt_path=<file>, e.g. a run's "
            "checkpoints/last.ckpt or the best_checkpoint in its metrics.json."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        hyper_parameters, state_dict = checkpoint["hyper_parameters"], checkpoint["state_dict"]
    except Exception as error:  # unpickling, truncation, a dict without our keys: all unusable
        raise UserError(
            f"{path} is not a readable imgclf checkpoint ({type(error).__name__}: {error}). "
            "Pass a .ckpt file written by `python train.py`."
        ) from error
    data_state = checkpoint.get(ImageDataModule.__qualname__)
    if data_state is None:
        raise UserError(
            f"{path} does not record the data it was trained on (class names, normalisation); "
            "it was written by imgclf 0.1. Train it again with this version."
        )
    model = ImageClassifier(**hyper_parameters)
    model.load_state_dict(state_dict)
    return model.eval(), InputSpec(**data_state)


def check_fits_data(spec: InputSpec, num_classes: int, in_channels: int, image_size: int) -> None:
    """A model applies only to data of its own class count and image shape."""
    if (num_classes, in_channels, image_size) != (
        len(spec.class_names),
        spec.in_channels,
        spec.image_size,
    ):
        raise UserError(
            f"the checkpoint's model takes {spec.describe()}, but the data config gives "
            f"{num_classes} classes of {in_channels}x{image_size}x{image_size} images. Evaluate "
            f"on data=<dataset> with the same classes and image shape (e.g. data={spec.dataset})."
        )
