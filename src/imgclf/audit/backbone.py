"""A pretrained network's embeddings of every audited image (`audit.backbone`), in place of
the fold models': features learnt from far more images than the audited ones, used as they
are, untrained here."""

import numpy as np
from omegaconf import DictConfig

from imgclf.audit.out_of_sample import predicted_outputs, trainer_for_audit
from imgclf.classifier import Classifier
from imgclf.data.datamodule import ImageDataModule
from imgclf.errors import UserError
from imgclf.models.pretrained import timm_network, torchvision_network
from imgclf.starting_weights import start_from_pretrained

NETWORKS = {"timm": timm_network, "torchvision": torchvision_network}


def pretrained_backbone(cfg: DictConfig) -> Classifier:
    """The network `audit.backbone` names, with its weights and their normalisation; built
    before any fold model trains, so that a wrong name or a missing file stops the audit at
    once."""
    backbone = cfg.audit.backbone
    if backbone.library not in NETWORKS:
        raise UserError(
            f"audit.backbone.library={backbone.library} is not a library imgclf reads networks "
            f"from; choose one of {', '.join(NETWORKS)}"
        )
    in_channels = cfg.data.in_channels
    network = NETWORKS[backbone.library](backbone.name, cfg.data.num_classes, in_channels)
    classifier = Classifier(network, in_channels)
    start_from_pretrained(classifier, backbone.weights, key="audit.backbone.weights")
    return classifier


def backbone_embeddings(
    backbone: Classifier, cfg: DictConfig, datamodule: ImageDataModule
) -> np.ndarray:
    """Every image's embedding, the splits one after another as the audited images are."""
    outputs = predicted_outputs(backbone, trainer_for_audit(cfg), datamodule)
    return np.concatenate([outputs[split].embeddings.numpy() for split in datamodule.splits])
