"""Choose the numeric precision the hardware runs fastest with good accuracy."""

import logging

import torch

log = logging.getLogger(__name__)


def cpu_supports_fast_bf16() -> bool:
    """oneDNN runs bf16 convolutions natively on CPUs with AVX-512 BF16 or AMX."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private op: absent in some builds
        return False


def resolve_precision(requested: str | int, accelerator: str) -> str | int:
    """`auto` means bf16 mixed precision where it is fast (recent GPUs, bf16-capable CPUs),
    16-bit mixed on older GPUs, and full float32 elsewhere. Anything else passes through."""
    if str(requested) != "auto":
        return requested
    use_gpu = accelerator in ("gpu", "cuda") or (
        accelerator == "auto" and torch.cuda.is_available()
    )
    if use_gpu:
        chosen = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    else:
        chosen = "bf16-mixed" if cpu_supports_fast_bf16() else "32-true"
    log.info("precision=auto chose %s", chosen)
    return chosen
