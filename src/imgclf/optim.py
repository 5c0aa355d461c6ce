"""What the optimizer is given: the network's parameter groups; and Muon (Jordan et al.
2024) for conv filters, Nesterov SGD for everything else, as one optimizer so that Lightning's
automatic optimization, gradient accumulation and schedulers work unchanged."""

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from imgclf.errors import UserError
from imgclf.models.pretrained import head_and_backbone

# Quintic Newton-Schulz coefficients chosen for the steepest slope at zero: three steps turn
# a gradient into roughly U S' V^T with S' in [0.5, 1.5], which trains as well as U V^T.
NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def fine_tuning(finetune: Mapping[str, float]) -> bool:
    return finetune["freeze_epochs"] > 0 or finetune["backbone_lr_ratio"] != 1.0


def parameter_groups(net: nn.Module, lr: float, finetune: Mapping[str, float]) -> Any:
    """Fine-tuning (`model.finetune`): the head, and the backbone at `backbone_lr_ratio` times
    the learning rate `lr`. Otherwise the network's named param groups where it defines them
    (for optimizers that treat filters, biases and heads differently; others just see several
    groups), else all its parameters."""
    if fine_tuning(finetune):
        heads, backbone = head_and_backbone(net)
        return [
            {"name": "head", "params": [p for head in heads for p in head.parameters()]},
            {
                "name": "backbone",
                "params": [p for module in backbone for p in module.parameters(recurse=False)],
                "lr": lr * finetune["backbone_lr_ratio"],
            },
        ]
    if not hasattr(net, "parameter_groups"):
        return net.parameters()
    groups = net.parameter_groups().items()
    return [{"name": name, "params": params} for name, params in groups if params]


def orthogonalise(matrix: Tensor, steps: int = 3, eps: float = 1e-7) -> Tensor:
    """Approximately the nearest semi-orthogonal matrix to `matrix` (its zeroth power)."""
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    x = matrix.bfloat16()
    x = x / (x.norm() + eps)  # top singular value <= 1, where the iteration converges
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if transposed else x).to(matrix.dtype)


class Muon(Optimizer):
    """Param groups named "filters" (see `AirbenchNet.parameter_groups`) take Muon steps:
    Nesterov momentum, then the update orthogonalised, applied to weights renormalised each
    step to unit norm per output filter on average (which makes weight decay unnecessary).
    Every other named group takes Nesterov SGD steps with the options in `sgd_groups[name]`.

    SGD's `weight_decay` is the fraction of a weight removed per step at the group's peak
    learning rate: it follows the schedule but not the choice of learning rate.
    """

    def __init__(
        self,
        params: Iterable[Mapping[str, Any]],
        lr: float,
        momentum: float = 0.6,
        nesterov: bool = True,
        sgd_groups: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        sgd_groups = dict(sgd_groups or {})
        groups = []
        for group in params:
            if not isinstance(group, Mapping) or "name" not in group:
                raise UserError(
                    "optimizer=muon needs a network that names its parameter groups "
                    "(model=airbench); use optimizer=sgd or adam with this model"
                )
            name = group["name"]
            if name == "filters":
                options = {"lr": lr, "momentum": momentum, "use_muon": True}
            elif name in sgd_groups:
                options = {"weight_decay": 0.0, **sgd_groups[name], "use_muon": False}
            else:
                raise UserError(
                    f"optimizer.sgd_groups has no settings for the parameter group {name!r}; "
                    f"add optimizer.sgd_groups.{name}.lr=..."
                )
            groups.append({**group, **options, "peak_lr": options["lr"]})
        super().__init__(groups, {"momentum": momentum, "nesterov": nesterov})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                if group["use_muon"]:
                    self._muon_step(parameter, group)
                else:
                    self._sgd_step(parameter, group)
        return loss

    def _momentum(self, parameter: Tensor, gradient: Tensor, group: Mapping) -> Tensor:
        state = self.state[parameter]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(gradient)
        buffer = state["momentum_buffer"]
        buffer.mul_(group["momentum"]).add_(gradient)
        return gradient.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer

    def _muon_step(self, parameter: Tensor, group: Mapping) -> None:
        update = self._momentum(parameter, parameter.grad, group)
        parameter.mul_(len(parameter) ** 0.5 / parameter.norm())
        update = orthogonalise(update.reshape(len(update), -1)).view_as(parameter)
        parameter.add_(update, alpha=-group["lr"])

    def _sgd_step(self, parameter: Tensor, group: Mapping) -> None:
        # Decay enters the gradient (and so the momentum), as in torch.optim.SGD.
        decay = group["weight_decay"] / group["peak_lr"] if group["peak_lr"] else 0.0
        update = self._momentum(parameter, parameter.grad.add(parameter, alpha=decay), group)
        parameter.add_(update, alpha=-group["lr"])
