"""Load a trained model for use: it carries the input it expects (channels, size, resize side,
normalisation) and the names of the classes it outputs, so nothing else is needed."""

from pathlib import Path

from imgclf.checkpoint_io import read_checkpoint
from imgclf.errors import UserError
from imgclf.module import ImageClassifier


def load_checkpoint(path: str | Path) -> ImageClassifier:
    """The model in eval mode on the CPU. The file is read with `weights_only` (only tensors
    and plain data), and the model is rebuilt from its hyperparameters without fetching its
    starting weights again: the checkpoint's own replace them."""
    checkpoint = read_checkpoint(path, "ckpt_path")
    hyper_parameters = {**checkpoint["hyper_parameters"], "pretrained": False, "init_from": None}
    model = ImageClassifier(**hyper_parameters)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def check_fits_data(
    model: ImageClassifier, num_classes: int, in_channels: int, image_size: int
) -> None:
    """A model applies only to data of its own class count and image shape."""
    expected = (model.hparams.num_classes, model.hparams.in_channels, model.hparams.image_size)
    if (num_classes, in_channels, image_size) != expected:
        raise UserError(
            f"the checkpoint's model takes {model.describe_input()}, but the data config gives "
            f"{num_classes} classes of {in_channels}x{image_size}x{image_size} images. Evaluate "
            "on data=<dataset> with the same classes and image shape "
            f"(e.g. data={model.hparams.dataset})."
        )
