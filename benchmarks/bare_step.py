"""`python benchmarks/bare_step.py NETWORK [--compile]`: a timm network's training step alone,
with and without torch.compile. A plain loop on one random batch already in memory (no data
loading, no framework): forward and loss under autocast, backward, AdamW step, channels-last,
in the precision `precision=auto` chooses; with --compile, the network compiled by
torch.compile first. Prints the first step's seconds (compiling, where asked) and the
training images per second of the steps after it. (benchmarks/benchmark.py times the plain
loop on a dataset's real batches, beside imgclf's Trainer.)"""

import argparse
import time

import timm
import torch

from imgclf.precision import resolve_precision

from benchmark import autocast_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network", help="a timm network name")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6, help="timed steps after two untimed")
    arguments = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = str(resolve_precision("auto", "gpu" if device.type == "cuda" else "cpu"))
    torch.manual_seed(0)
    network = timm.create_model(arguments.network, num_classes=10)
    network = network.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    size = arguments.image_size
    images = torch.randn(arguments.batch_size, 3, size, size, device=device)
    images = images.to(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (arguments.batch_size,), device=device)
    forward = torch.compile(network) if arguments.compile else network

    def step() -> None:
        with autocast_for(precision, device):
            loss = torch.nn.functional.cross_entropy(forward(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    started = time.perf_counter()
    step()
    first = time.perf_counter() - started
    step()
    started = time.perf_counter()
    for _ in range(arguments.steps):
        step()
    rate = arguments.steps * arguments.batch_size / (time.perf_counter() - started)
    compiled = "compiled" if arguments.compile else "eager"
    print(f"{arguments.network} ({compiled}): first step {first:.1f} s, then {rate:.1f} images/s")


if __name__ == "__main__":
    main()
