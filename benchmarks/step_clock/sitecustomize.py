"""The step clock: Python imports this module at start-up when its folder is on PYTHONPATH,
as benchmarks/finetune.py puts it for each training command it measures. With
`STEP_CLOCK_FILE` set, it notes when every backward pass of the process ends (imgclf's,
timm's and fastai's loops all call `Tensor.backward`; fastai steps its own optimizers, which
torch's optimizer hooks never see) and writes the times, seconds since the epoch, to that
file as JSON when the process exits."""

import atexit
import json
import os
import time


def start_clock(path: str) -> None:
    import torch

    times: list[float] = []
    backward = torch.Tensor.backward
    depth = [0]

    def timed_backward(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        # A tensor subclass (fastai's TensorBase) calls it again from __torch_function__:
        # the outermost call is the step's.
        depth[0] += 1
        try:
            return backward(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                times.append(time.time())

    torch.Tensor.backward = timed_backward
    owner = os.getpid()

    def write() -> None:
        # Forked data-loading workers inherit the hook and never train: only the trainer writes.
        if os.getpid() == owner:
            with open(path, "w") as file:
                json.dump(times, file)

    atexit.register(write)


if os.environ.get("STEP_CLOCK_FILE"):
    start_clock(os.environ["STEP_CLOCK_FILE"])
