"""fastai's fine-tuning of a timm network, as fastai's docs teach it, for benchmarks/finetune.py:
`vision_learner(dls, name).fine_tune(...)` on the photo folder's train/ and val/ class
folders. Its weights are random, as the benchmark's are: the whole network trains from the
first step at one rate (fine_tune's default first freezes the body for an epoch, then trains
its early layers at a hundredth of the head's rate, which protects pretrained features).
Runs with fastai's own Python (fastai is no dependency of imgclf); prints the validation
accuracy after the last epoch as JSON on its last line."""

import argparse
import json
from pathlib import Path

import torch
from fastai.vision.all import (
    Callback,
    ImageDataLoaders,
    Normalize,
    RandomResizedCrop,
    accuracy,
    aug_transforms,
    imagenet_stats,
    vision_learner,
)
from safetensors.torch import load_file


class CpuAutocast(Callback):
    """Mixed precision on the CPU: fastai's own (`to_bf16`, `to_fp16`) autocasts CUDA only.
    Like it, from the batch's start to the loss (bf16 needs no loss scaling)."""

    order = 10

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def before_batch(self) -> None:
        self.autocast = torch.autocast("cpu", dtype=self.dtype)
        self.autocast.__enter__()

    def after_pred(self) -> None:
        self.learn.pred = self.pred.float()

    def after_loss(self) -> None:
        self.autocast.__exit__(None, None, None)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="holds train/ and val/ class folders")
    parser.add_argument("--model", required=True, help="a timm network name")
    parser.add_argument("--weights", type=Path, required=True, help="its state dict")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autocast", choices=["bfloat16", "float16"], help="mixed precision")
    parser.add_argument("--channels-last", action="store_true")
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    # fastai's recipe for photos: a random crop of at least 35 % of each image on the item, its
    # flips, rotations, zooms and lighting changes on the batch; the weights' normalisation
    # (vision_learner adds it only when it fetches the weights itself).
    dls = ImageDataLoaders.from_folder(
        arguments.folder, train="train", valid="val",
        item_tfms=RandomResizedCrop(arguments.image_size, min_scale=0.35),
        batch_tfms=[*aug_transforms(), Normalize.from_stats(*imagenet_stats)],
        bs=arguments.batch_size, num_workers=arguments.workers,
        device=torch.device(arguments.device),
    )  # fmt: skip
    learn = vision_learner(dls, arguments.model, pretrained=False, metrics=accuracy)
    # The body is timm's network without its head: the file's head weights do not fit it.
    loaded = learn.model[0].model.load_state_dict(load_file(arguments.weights), strict=False)
    assert not loaded.missing_keys, f"{arguments.weights} lacks {loaded.missing_keys}"
    if arguments.autocast == "bfloat16" and arguments.device == "cpu":
        learn.add_cb(CpuAutocast(torch.bfloat16))
    elif arguments.autocast == "bfloat16":
        learn.to_bf16()
    elif arguments.autocast == "float16":
        learn.to_fp16()
    if arguments.channels_last:  # its precision is set above
        learn.to_channelslast(use_amp=False)
    # One cycle over every epoch, peaking at 1e-3 (base_lr / 2) for every layer, as imgclf's
    # and timm's rate.
    learn.fine_tune(arguments.epochs, base_lr=2e-3, freeze_epochs=0, lr_mult=1)
    print(json.dumps({"val_acc": float(learn.recorder.values[-1][-1])}))


if __name__ == "__main__":
    main()
