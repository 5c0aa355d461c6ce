"""timm and torchvision networks by name, with a head for the dataset's classes and a stem for
its channels; and their pretrained weights, fetched the library's own way or read from a file.

Building a network never fetches anything: weights are loaded afterwards (`load_pretrained`),
so a checkpoint of a fine-tuned network rebuilds offline."""

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from imgclf.checkpoints import unreadable_reason
from imgclf.errors import UserError
from imgclf.models.hub import offline_unless_reachable

log = logging.getLogger(__name__)

LIBRARIES = ("timm", "torchvision")


@dataclass(frozen=True)
class PretrainedInput:
    """How a pretrained network was trained to see images: per-channel statistics on the
    [0, 1] scale, the input side, and the share of the resized image its evaluation crop keeps."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    crop_fraction: float

    def for_channels(self, channels: int) -> "PretrainedInput":
        """A grey image enters a stem whose RGB filters were summed: one channel's statistics
        are then the average of the three."""
        if channels == len(self.mean):
            return self
        mean, std = sum(self.mean) / len(self.mean), sum(self.std) / len(self.std)
        return PretrainedInput(
            (mean,) * channels, (std,) * channels, self.image_size, self.crop_fraction
        )


@dataclass(frozen=True)
class Source:
    """Which library's network a module is; kept on the network as `pretrained_source`."""

    library: str
    name: str


def unknown_name(library: str, name: str, known: list[str]) -> UserError:
    close = difflib.get_close_matches(name, known, n=6, cutoff=0.6)
    return UserError(
        f"model.name={name} is not a {library} model"
        + (f"; similar names: {', '.join(close)}" if close else "")
        + f'. List them with `python -c "import {library}'
        + (
            '.models as m; print(m.list_models(module=m))"`'
            if library == "torchvision"
            else '; print(timm.list_models())"`'
        )
    )


def timm_network(
    name: str, num_classes: int, in_channels: int, drop_rate: float = 0.0
) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise unknown_name("timm", name, timm.list_models())
    network = timm.create_model(
        name, pretrained=False, num_classes=num_classes, in_chans=in_channels, drop_rate=drop_rate
    )
    network.pretrained_source = Source("timm", name)
    return network


def torchvision_network(name: str, num_classes: int, in_channels: int) -> nn.Module:
    from torchvision import models

    if name not in models.list_models(module=models):
        raise unknown_name("torchvision", name, models.list_models(module=models))
    network = models.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3:
        replace_first_convolution(network, in_channels)
    network.pretrained_source = Source("torchvision", name)
    return network


def replace_first_convolution(network: nn.Module, in_channels: int) -> None:
    name = first_convolution(network)
    conv = network.get_submodule(name)
    parent_name, _, attribute = name.rpartition(".")
    replacement = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
    )
    setattr(network.get_submodule(parent_name), attribute, replacement)


def first_convolution(network: nn.Module) -> str:
    """The name of the convolution that sees the image."""
    configured = getattr(network, "pretrained_cfg", {}).get("first_conv")
    if isinstance(configured, str):
        return configured
    return next(name for name, module in network.named_modules() if isinstance(module, nn.Conv2d))


def classifier_names(network: nn.Module) -> list[str]:
    """The modules that map features to class scores: timm's configured classifier, else the
    last linear layer (torchvision's `fc`, `classifier.1`, `heads.head`; imgclf's heads)."""
    configured = getattr(network, "pretrained_cfg", {}).get("classifier")
    if configured:
        return [configured] if isinstance(configured, str) else list(configured)
    linear = [name for name, module in network.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise UserError(f"{type(network).__name__} has no linear layer to serve as its head")
    return [linear[-1]]


def head_and_backbone(network: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """The classifier modules, and every other module that holds parameters or batch-norm
    statistics of its own: what fine-tuning trains first, and what it thaws later."""
    heads = [network.get_submodule(name) for name in classifier_names(network)]
    in_head = {id(module) for head in heads for module in head.modules()}
    backbone = [
        module
        for module in network.modules()
        if id(module) not in in_head
        and (
            next(module.parameters(recurse=False), None) is not None
            or isinstance(module, _BatchNorm)
        )
    ]
    return heads, backbone


def pretrained_input(library: str, name: str) -> PretrainedInput:
    """Read from the library's registry: nothing is downloaded."""
    if library == "timm":
        import timm

        config = timm.get_pretrained_cfg(name)
        if config is None:
            raise UserError(f"timm has no pretrained weights for {name}")
        return PretrainedInput(
            tuple(config.mean), tuple(config.std), config.input_size[-1], config.crop_pct
        )
    from torchvision.models import get_model_weights

    preset = get_model_weights(name).DEFAULT.transforms()
    return PretrainedInput(
        tuple(preset.mean),
        tuple(preset.std),
        preset.crop_size[0],
        preset.crop_size[0] / preset.resize_size[0],
    )


def pretrained_image_size(net_target: str | None, name: str | None, default: int) -> int:
    """The input side a timm/torchvision network was pretrained at (for the images of a
    folder); `default` for imgclf's own networks."""
    library = library_of(net_target)
    return pretrained_input(library, name).image_size if library and name else default


def pretrained_crop_fraction(net_target: str | None, name: str | None, default: float) -> float:
    library = library_of(net_target)
    return pretrained_input(library, name).crop_fraction if library and name else default


def library_of(net_target: str | None) -> str | None:
    return {
        f"{__name__}.timm_network": "timm",
        f"{__name__}.torchvision_network": "torchvision",
    }.get(net_target or "")


def load_pretrained(
    network: nn.Module, pretrained: bool | str, key: str = "model.pretrained"
) -> PretrainedInput:
    """Loads `pretrained` weights (true: the library's default ones, fetched and cached the
    library's way; a path: a state-dict file) into `network`, adapting the stem and leaving
    the head new. Returns the input the weights were trained on. `key`: the config key that
    named them, for the messages."""
    source: Source | None = getattr(network, "pretrained_source", None)
    if source is None:
        raise UserError(
            f"{key}: {type(network).__name__} is an imgclf network without published "
            "weights. Use model=timm or model=torchvision, or start from one of your own "
            "checkpoints with model.init_from=<checkpoint>."
        )
    channels = first_input_channels(network)
    expected = pretrained_input(source.library, source.name).for_channels(channels)
    if pretrained is True:
        fetch_pretrained(network, source, channels, key)
        log.info("started from %s's pretrained %s", source.library, source.name)
    else:
        path = Path(str(pretrained)).expanduser()
        load_weights(
            network, read_weights_file(path, key), f"{path} for {source.library} {source.name}"
        )
        log.info("started from the weights in %s", path)
    return expected


def first_input_channels(network: nn.Module) -> int:
    return network.get_submodule(first_convolution(network)).in_channels


def fetch_pretrained(network: nn.Module, source: Source, channels: int, key: str) -> None:
    try:
        if source.library == "timm":
            from timm.models import load_pretrained as timm_load_pretrained

            with offline_unless_reachable():
                timm_load_pretrained(network, num_classes=network.num_classes, in_chans=channels)
            return
        from torchvision.models import get_model_weights

        weights = get_model_weights(source.name).DEFAULT
        state = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as error:  # no network, a proxy, a full disk: all end the same way
        raise UserError(
            f"could not fetch the pretrained weights of {source.library} {source.name} "
            f"({type(error).__name__}: {error}). Without internet, download them on another "
            f"machine and pass {key}=<file> (README: start from a pretrained network)."
        ) from error
    load_weights(network, state, f"torchvision's {weights}")


def read_weights_file(path: Path, key: str) -> Mapping[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file, read without running code in it."""
    if not path.is_file():
        raise UserError(f"{key}={path}: no such file. Pass a state-dict file (.safetensors, .pth).")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            weights = load_file(str(path))
        else:
            weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(
            f"{key}={path} is not a readable weights file: {unreadable_reason(error)}"
            ". Pass a .safetensors file or a state dict saved with torch.save."
        ) from error
    if isinstance(weights, Mapping) and "hyper_parameters" in weights:
        raise UserError(
            f"{key}={path} is a training checkpoint; to start from an imgclf "
            "checkpoint pass model.init_from=<checkpoint> instead"
        )
    # Training scripts (timm's, torchvision's references) wrap the weights in a dict.
    for key in ("state_dict", "model"):
        if isinstance(weights, Mapping) and isinstance(weights.get(key), Mapping):
            weights = weights[key]
    if not isinstance(weights, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in weights.values()
    ):
        raise UserError(f"{key}={path} does not hold a state dict of tensors")
    return weights


def load_weights(network: nn.Module, weights: Mapping[str, torch.Tensor], described: str) -> None:
    """Load `weights` into `network` exactly, except where it must differ: a stem for another
    number of channels is adapted as timm does (summed for grey), and a head for other classes
    stays new. Anything else missing, extra or of another shape is an error naming it."""
    from timm.models import adapt_input_conv

    expected = network.state_dict()
    weights = dict(weights)
    stem = f"{first_convolution(network)}.weight"
    if stem in weights and weights[stem].ndim == 4:
        channels = expected[stem].shape[1]
        if weights[stem].shape[1] != channels:
            weights[stem] = adapt_input_conv(
                channels, weights[stem], base_chans=weights[stem].shape[1]
            )
    head = {f"{name}.{part}" for name in classifier_names(network) for part in ("weight", "bias")}
    for key in head & weights.keys():
        if weights[key].shape != expected[key].shape:
            del weights[key]
    missing = [
        key
        for key in expected
        if key not in weights and key not in head and not key.endswith("num_batches_tracked")
    ]
    extra = [key for key in weights if key not in expected]
    reshaped = [
        f"{key} {tuple(weights[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in weights
        if key in expected and weights[key].shape != expected[key].shape
    ]
    if missing or extra or reshaped:
        problems = [
            f"{label} {len(keys)}, e.g. {', '.join(keys[:3])}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", extra),
                ("of another shape", reshaped),
            )
            if keys
        ]
        raise UserError(
            f"the weights in {described} do not fit the network: {'; '.join(problems)}. "
            f"Expected a state dict of {type(network).__name__} with keys such as "
            f"{', '.join(list(expected)[:3])}."
        )
    network.load_state_dict(weights, strict=False)
