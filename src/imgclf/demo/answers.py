"""What the page shows of a model's answer for an image: its probabilities, the table row of
many images, the image as the model saw it, and Grad-CAM's evidence for a class. Reading and
predicting are predict's (`imgclf.inference`), Grad-CAM the test views' (`callbacks.gradcam`):
a file gets the same probabilities here as from `predict.py`."""

import math
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F

from imgclf.callbacks.gradcam import gradcam_heatmaps
from imgclf.callbacks.grids import OVERLAY_ALPHA, OVERLAY_COLOURMAP
from imgclf.inference import predict_probabilities, read_images
from imgclf.module import ImageClassifier

# The shortest side the page shows an image at: a 32-pixel view is enlarged to 224 pixels.
DISPLAY_SIDE = 224


@dataclass(frozen=True, eq=False)
class Answer:
    path: str  # the file the page was given
    name: str  # its name, as uploaded
    view: torch.Tensor  # uint8 (C, H, W): the image as the model saw it
    probabilities: torch.Tensor  # (classes,)


def classify_files(
    model: ImageClassifier, files: list[tuple[str, str]]
) -> tuple[list[Answer], dict[str, str]]:
    """The answers for the readable files of (path, name) pairs, and by path a message for
    each other file, naming it by `name` (the path is a temporary copy the visitor never
    saw)."""
    names = dict(files)
    readable, views, unreadable = read_images(list(names), model)
    problems = {path: message.replace(path, names[path]) for path, message in unreadable.items()}
    if not readable:
        return [], problems
    probabilities = predict_probabilities(model, views)
    answers = [
        Answer(path, names[path], view, image_probabilities)
        for path, view, image_probabilities in zip(readable, views, probabilities, strict=True)
    ]
    return answers, problems


def table_rows(model: ImageClassifier, answers: list[Answer]) -> list[dict]:
    """One row an image: its name, the task's answer as predict's CSV gives it, and how far
    that answer is from changing (`Task.margins`)."""
    if not answers:
        return []
    probabilities = torch.stack([answer.probabilities for answer in answers])
    margins = model.task.margins(probabilities)
    return [
        {
            "file": answer.name,
            **model.task.answer(answer.probabilities, model.class_names),
            "margin": round(float(margin), 4),
        }
        for answer, margin in zip(answers, margins, strict=True)
    ]


def class_probabilities(model: ImageClassifier, answer: Answer) -> dict[str, float]:
    return {
        name: float(probability)
        for name, probability in zip(model.class_names, answer.probabilities, strict=True)
    }


def explained_class(model: ImageClassifier, answer: Answer) -> int:
    """The class Grad-CAM shows first, as the test views choose it (`Task.explained`): the
    answer's likeliest class."""
    probabilities = answer.probabilities[None]
    _, classes = model.task.explained(model.task.decisions(probabilities), probabilities, 1)
    return int(classes[0])


def enlarged(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (C, H, W) enlarged by a whole factor, each pixel a square, to at least
    `DISPLAY_SIDE` on its short side: a 32-pixel image is visible, and still its own pixels."""
    factor = max(1, math.ceil(DISPLAY_SIDE / min(pixels.shape[-2:])))
    return pixels.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)


def displayed(pixels: torch.Tensor) -> np.ndarray:
    """uint8 (C, H, W) as an RGB array (H, W, 3) for the page, enlarged."""
    rgb = enlarged(pixels).expand(3, -1, -1) if pixels.shape[0] == 1 else enlarged(pixels)
    return rgb.permute(1, 2, 0).contiguous().numpy()


def gradcam_overlay(model: ImageClassifier, answer: Answer, label: int) -> np.ndarray:
    """The image as the model saw it, enlarged, under the Grad-CAM heat-map of `label`, in the
    colours and opacity of the test views' Grad-CAM grid."""
    heatmap = gradcam_heatmaps(model.classifier, answer.view[None], torch.tensor([label]))
    image = displayed(answer.view).astype(np.float32) / 255
    heatmap = F.interpolate(torch.from_numpy(heatmap)[None], size=image.shape[:2], mode="bilinear")[
        0, 0
    ].numpy()
    colours = matplotlib.colormaps[OVERLAY_COLOURMAP](heatmap)[..., :3]
    blended = (1 - OVERLAY_ALPHA) * image + OVERLAY_ALPHA * colours
    return np.rint(blended * 255).astype(np.uint8)


def answer_summary(model: ImageClassifier, answer: Answer) -> str:
    """The answer in words (Markdown): the class and its probability, or a multi-label
    model's label set with each label's probability."""
    decided = model.task.answer(answer.probabilities, model.class_names)
    if "confidence" in decided:
        return f"**{answer.name}**: {decided['predicted']} ({decided['confidence']:.2%})"
    labels = decided["probabilities"] or "no class reaches its threshold"
    return f"**{answer.name}**: {labels}"
