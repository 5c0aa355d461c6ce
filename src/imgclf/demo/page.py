"""The page itself, in Gradio: images in (files, the camera, the clipboard or an example), and
for each its top classes, the Grad-CAM evidence for any class and the image as the model saw
it; for many, a table to download; and the model card."""

import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from imgclf.demo.answers import (
    Answer,
    answer_summary,
    class_probabilities,
    classify_files,
    displayed,
    explained_class,
    gradcam_overlay,
    table_rows,
)
from imgclf.demo.card import ModelCard
from imgclf.demo.examples import Example
from imgclf.inference import write_csv
from imgclf.module import ImageClassifier

log = logging.getLogger(__name__)


@dataclass
class Shown:
    """A visitor's images on the page, in the order given: the answers, and the messages of
    the files that are not images, by path. A file is classified once; adding files to the
    list classifies only them."""

    answers: list[Answer] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


class ModelOnPage:
    """The page's handlers around one model. Grad-CAM hooks the network while it runs, so one
    request at a time uses the model; files the page writes go into `folder`."""

    def __init__(self, model: ImageClassifier, folder: Path) -> None:
        self.model = model
        self.folder = folder
        self.lock = threading.Lock()

    def classify(self, files: list[tuple[str, str]], before: Shown | None = None) -> tuple:
        """Everything the page shows after a change of its images: what it shows (kept for
        the session), the messages of files that are not images, the table and its CSV, and
        the answer for the first new image."""
        before = before or Shown()
        known = {answer.path: answer for answer in before.answers}
        seen = known.keys() | before.problems.keys()
        new = [(path, name) for path, name in files if path not in seen]
        started = time.perf_counter()
        with self.lock:
            added, problems = classify_files(self.model, new)
            known |= {answer.path: answer for answer in added}
            problems |= before.problems
            shown = Shown(
                [known[path] for path, _ in files if path in known],
                {path: problems[path] for path, _ in files if path in problems},
            )
            paths = [answer.path for answer in shown.answers]
            first_new = paths.index(added[0].path) if added else 0
            answer = self.show(shown, first_new)
        if new:
            log.info(
                "%d image(s) classified, %d refused, in %.2f s",
                len(added), len(new) - len(added), time.perf_counter() - started,
            )  # fmt: skip
        rows = table_rows(self.model, shown.answers)
        table_file = None
        if rows:
            table_file = Path(tempfile.mkdtemp(dir=self.folder)) / "predictions.csv"
            write_csv(table_file, rows)
        choices = [(answer.name, index) for index, answer in enumerate(shown.answers)]
        return (
            shown,
            problems_text(list(shown.problems.values())),
            pd.DataFrame(rows),
            gr.DownloadButton(value=table_file, visible=table_file is not None),
            gr.Dropdown(
                choices=choices,
                value=first_new if shown.answers else None,
                visible=len(shown.answers) > 1,
            ),
            *answer,
        )

    def show(self, shown: Shown, index: int | None) -> tuple:
        """One image's probabilities, answer, Grad-CAM class (the likeliest), Grad-CAM and
        view; empty outputs when there is none."""
        if not shown.answers or index is None:
            return None, "", gr.Dropdown(value=None), None, None
        answer = shown.answers[index]
        label = explained_class(self.model, answer)
        return (
            class_probabilities(self.model, answer),
            answer_summary(self.model, answer),
            gr.Dropdown(value=self.model.class_names[label]),
            gradcam_overlay(self.model, answer, label),
            displayed(answer.view),
        )

    def select(self, shown: Shown, index: int | None) -> tuple:
        with self.lock:
            return self.show(shown, index)

    def explain(self, shown: Shown, index: int | None, class_name: str | None) -> np.ndarray | None:
        if not shown.answers or index is None or class_name is None:
            return None
        with self.lock:
            answer = shown.answers[index]
            return gradcam_overlay(self.model, answer, self.model.class_names.index(class_name))


def problems_text(problems: list[str]) -> str:
    if not problems:
        return ""
    listed = "\n".join(f"- {problem}" for problem in problems)
    return f"**Not classified**: these files are not images this page can read.\n{listed}"


def uploaded(paths: list[str] | str | None) -> list[tuple[str, str]]:
    """(path, name) of each upload: Gradio keeps an upload's name in its temporary copy."""
    if not paths:
        return []
    paths = [paths] if isinstance(paths, str) else paths
    return [(path, Path(path).name) for path in paths]


def build_page(
    model: ImageClassifier, card: ModelCard, examples: list[Example], folder: Path, top_k: int
) -> gr.Blocks:
    on_page = ModelOnPage(model, folder)
    size = model.hparams.image_size
    with gr.Blocks(title=f"imgclf: {card.title}") as page:
        gr.Markdown(
            f"# {card.title}\nDrop images to see what the model makes of them: its "
            f"{min(top_k, len(model.class_names))} likeliest classes, where it found the "
            f"evidence (Grad-CAM), and the {size}x{size} pixels it saw."
        )
        shown_images = gr.State(Shown())
        with gr.Row():
            with gr.Column(scale=2):
                files = gr.File(
                    label="Images: drop or choose one or many",
                    file_count="multiple",
                    elem_id="files",
                )
                camera = gr.Image(
                    label="Or one picture from the camera, or pasted from the clipboard",
                    sources=["webcam", "clipboard"],
                    type="filepath",
                    image_mode=None,  # the file as it came: no conversion by the page
                    format="png",
                    elem_id="camera",
                )
            with gr.Column(scale=3):
                status = gr.Markdown(elem_id="status")
                choice = gr.Dropdown(label="Image", visible=False, elem_id="choice")
                summary = gr.Markdown(elem_id="summary")
                probabilities = gr.Label(
                    label="Likeliest classes",
                    num_top_classes=top_k,
                    elem_id="probabilities",
                    # A multi-label answer is a set: no single class heads it.
                    show_heading=model.task.name == "single_label",
                )
                with gr.Row():
                    explained = gr.Dropdown(
                        choices=model.class_names, label="Grad-CAM of the class", elem_id="class"
                    )
                with gr.Row():
                    gradcam = gr.Image(
                        label="Grad-CAM: the evidence for the class",
                        format="png", interactive=False, elem_id="gradcam",
                    )  # fmt: skip
                    seen = gr.Image(
                        label=f"As the model saw it: {size}x{size} pixels, enlarged",
                        format="png", interactive=False, elem_id="seen",
                    )  # fmt: skip
        with gr.Row():
            table = gr.Dataframe(label="Every image", interactive=False, elem_id="table")
        download = gr.DownloadButton("Download the table as CSV", visible=False, elem_id="csv")
        shown = [probabilities, summary, explained, gradcam, seen]
        classified = [shown_images, status, table, download, choice, *shown]
        if examples:
            gallery = gr.Gallery(
                value=[(str(example.path), example.label) for example in examples],
                label="Examples: test images of the model's data under their true class; click one",
                columns=10, height=200, allow_preview=False, elem_id="examples",
            )  # fmt: skip

            def classify_example(event: gr.SelectData) -> tuple:
                return on_page.classify(uploaded(str(examples[event.index].path)))

            gallery.select(classify_example, None, classified)
        with gr.Accordion("Model card", open=True), gr.Row():
            gr.Markdown(card.markdown, elem_id="card")
            if card.confusion_matrix is not None:
                gr.Image(
                    str(card.confusion_matrix), label="Confusion matrix (test set)",
                    interactive=False, elem_id="confusion",
                )  # fmt: skip
        # On every change of the list: files added, or taken out with their cross.
        files.change(
            lambda paths, before: on_page.classify(uploaded(paths), before),
            [files, shown_images],
            classified,
        )
        camera.input(lambda path: on_page.classify(uploaded(path)), camera, classified)
        choice.input(on_page.select, [shown_images, choice], shown)
        explained.input(on_page.explain, [shown_images, choice, explained], gradcam)
    return page
