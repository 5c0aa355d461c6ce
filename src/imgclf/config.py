"""OmegaConf resolvers the configs use; registered on import."""

from pathlib import Path

from omegaconf import OmegaConf

from imgclf.data.image_folder import find_class_names


def image_folder_class_count(root: str) -> int:
    """`${imgclf_class_count:${data.data_dir}}`: the user's folder decides the class count,
    so the model is built for it with no extra flag."""
    return len(find_class_names(Path(root).expanduser()))


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("imgclf_class_count"):
        OmegaConf.register_new_resolver("imgclf_class_count", image_folder_class_count)


register_resolvers()
