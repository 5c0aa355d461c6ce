"""The smallest images a network takes, found by building it and passing it a batch on the
meta device: shapes propagate, nothing is allocated or computed, so the answer is the
network's own (pooling depth, a whitening kernel, a timm model's fixed input) for any
network at the cost of a few milliseconds, and never a rule written beside it that could
drift from it."""

from collections.abc import Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from imgclf.errors import UserError
from imgclf.models.pretrained import pretrained_image_size

# Where the search for a size the network takes gives up.
LARGEST_SIZE = 4096


def takes(net_config: Mapping[str, Any], in_channels: int, size: int) -> bool:
    """Whether the network of `net_config`, built for `size` (networks that size their head
    by the image take `image_size`), runs on a (2, in_channels, size, size) batch."""
    config = {**net_config, "image_size": size} if "image_size" in net_config else net_config
    with torch.device("meta"), torch.no_grad():
        try:
            network = instantiate(config)
        except InstantiationException as error:
            # The network's own check of `image_size`; anything else (an unknown model
            # name) is the user's to see.
            if isinstance(error.__cause__, ValueError):
                return False
            raise
        try:
            network(torch.empty(2, in_channels, size, size))
        except (ValueError, RuntimeError, AssertionError):
            # An output of zero pixels (RuntimeError), timm's check of a fixed input size
            # (AssertionError): either way the network does not take this size.
            return False
    return True


def smallest_size_above(net_config: Mapping[str, Any], in_channels: int, size: int) -> int | None:
    """The smallest size over `size` that the network takes (None: none up to LARGEST_SIZE):
    a timm or torchvision network's pretrained input size if it takes that (some, as ViTs,
    take no other), else doubling until one is taken; then halving the interval."""
    pretrained = pretrained_image_size(net_config.get("_target_"), net_config.get("name"), 0)
    if pretrained > size and takes(net_config, in_channels, pretrained):
        refused, taken = size, pretrained
    else:
        refused, taken = size, size * 2
    while not takes(net_config, in_channels, taken):
        refused, taken = taken, taken * 2
        if taken > LARGEST_SIZE:
            return None
    while taken - refused > 1:
        middle = (refused + taken) // 2
        if takes(net_config, in_channels, middle):
            taken = middle
        else:
            refused = middle
    return taken


def network_name(net_config: Mapping[str, Any]) -> str:
    """`timm resnet18`, `SimpleCNN`: the library's model name, or imgclf's network class."""
    target = str(net_config.get("_target_", "the network")).rsplit(".", 1)[-1]
    name = net_config.get("name")
    return f"{target.removesuffix('_network')} {name}" if name else target


def check_image_size(
    net_config: Mapping[str, Any], in_channels: int, image_size: int, model: str | None = None
) -> None:
    """A UserError naming the network (and the `model` config chosen) and the smallest size
    it takes, if it cannot take `image_size` (data.image_size) images."""
    if takes(net_config, in_channels, image_size):
        return
    smallest = smallest_size_above(net_config, in_channels, image_size)
    advice = (
        f"the smallest it takes is {smallest}: set data.image_size={smallest} or more"
        if smallest
        else f"it takes none up to {LARGEST_SIZE}: choose another model"
    )
    network = network_name(net_config)
    named = f"model={model} ({network})" if model else network
    raise UserError(
        f"{named} cannot take {image_size}x{image_size} images (data.image_size={image_size}); "
        f"{advice}"
    )
