"""Where training starts from: a library's pretrained weights or a weights file
(`model.pretrained`), or another imgclf checkpoint (`model.init_from`). Used when a model is
built for training, never when a checkpoint is loaded: its own weights replace them."""

import logging

from imgclf.checkpoints import read_checkpoint
from imgclf.classifier import Classifier
from imgclf.errors import UserError
from imgclf.models.pretrained import load_pretrained, load_weights

log = logging.getLogger(__name__)


def start_from_pretrained(
    classifier: Classifier, pretrained: bool | str, key: str = "model.pretrained"
) -> None:
    """The weights (`load_pretrained`; `key` names them in its messages) and the statistics
    they were trained with."""
    expected = load_pretrained(classifier.net, pretrained, key)
    classifier.normalisation.set(expected.mean, expected.std)


def start_from_checkpoint(classifier: Classifier, path: str, net_target: str | None) -> bool:
    """The network of an imgclf checkpoint trained on any data: a new head where the classes
    differ, the stem adapted where the channels do. Its normalisation comes too, unless the
    channels differ; returns whether it did (if not, the data's statistics are used)."""
    checkpoint = read_checkpoint(path, "model.init_from")
    trained_net = (checkpoint["hyper_parameters"].get("net") or {}).get("_target_")
    if trained_net and net_target and trained_net != net_target:
        raise UserError(
            f"model.init_from={path}: the checkpoint's network is {trained_net}, this run's is "
            f"{net_target}; choose the model it was trained with (model=...; its run folder's "
            ".hydra/config.yaml names it)"
        )
    state = checkpoint["state_dict"]
    prefix = "classifier.net."
    weights = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    load_weights(classifier.net, weights, f"model.init_from={path}")
    trained_on = checkpoint["hyper_parameters"].get("class_names")
    log.info("started from %s (trained on %s)", path, trained_on)
    mean, std = state["classifier.normalisation.mean"], state["classifier.normalisation.std"]
    if mean.shape != classifier.normalisation.mean.shape:
        return False
    classifier.normalisation.set(mean, std)
    return True
