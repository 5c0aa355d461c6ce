"""Winograd F(4x4, 3x3) convolution against PyTorch's direct one, on the speedrun network's six
3x3 convs (batch 250, float32, forward and backward): does the 3.2x saving in multiplications
turn into time on this CPU? The README's "Towards 94 % in 12 minutes" table quotes it; the
answer here was no, so imgclf does not ship it.

    python scripts/benchmark_winograd.py [--compile] [--threads 2]

--compile builds the tile transforms with torch.compile (one fused loop each)."""

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# Lavin and Gray (arXiv 1509.09308): output tile = A^T [(G g G^T) * (B^T d B)] A, for 6x6
# input tiles d (stride 4), 3x3 filters g and 4x4 output tiles.
B_T = torch.tensor(
    [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
     [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    dtype=torch.float64,
)  # fmt: skip
G = torch.tensor(
    [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
     [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
    dtype=torch.float64,
)  # fmt: skip
A_T = torch.tensor(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    dtype=torch.float64,
)
# Both 2-D transforms of a tile as one matrix on its 36 (or 16, or 9) values.
INPUT = torch.kron(B_T, B_T).float()  # 36 x 36
OUTPUT = torch.kron(A_T, A_T).float()  # 16 x 36
FILTER = torch.kron(G, G).float()  # 36 x 9
# The speedrun network's 3x3 convs: (in channels, out channels, height = width).
SPEEDRUN_CONVS = [
    (24, 64, 31),
    (64, 64, 15),
    (64, 256, 15),
    (256, 256, 7),
    (256, 256, 7),
    (256, 256, 3),
]


def tiles(size: int) -> int:
    return -(-size // 4)


def transform_input(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [36, N * tiles, C]: each zero-padded 6x6 tile, transformed."""
    n, c, h, w = x.shape
    th, tw = tiles(h), tiles(w)
    padded = F.pad(x, (1, 4 * tw - w + 1, 1, 4 * th - h + 1))
    patches = padded.unfold(2, 6, 4).unfold(3, 6, 4)  # N C th tw 6 6
    patches = patches.permute(4, 5, 0, 2, 3, 1).reshape(36, -1)
    return (INPUT @ patches).view(36, n * th * tw, c)


def transform_output(m: Tensor, n: int, h: int, w: int) -> Tensor:
    """[36, N * tiles, O] -> [N, O, H, W]."""
    th, tw, o = tiles(h), tiles(w), m.shape[-1]
    y = (OUTPUT @ m.reshape(36, -1)).view(4, 4, n, th, tw, o)
    return y.permute(2, 5, 3, 0, 4, 1).reshape(n, o, 4 * th, 4 * tw)[:, :, :h, :w]


def transform_output_gradient(grad: Tensor) -> Tensor:
    """The adjoint of transform_output: [N, O, H, W] -> [36, N * tiles, O]."""
    n, o, h, w = grad.shape
    th, tw = tiles(h), tiles(w)
    grad = F.pad(grad, (0, 4 * tw - w, 0, 4 * th - h)).view(n, o, th, 4, tw, 4)
    grad = grad.permute(3, 5, 0, 2, 4, 1).reshape(16, -1)
    return (OUTPUT.T @ grad).view(36, n * th * tw, o)


class WinogradConv3x3(torch.autograd.Function):
    """A 3x3, stride-1, padding-1 convolution without bias."""

    transform_input: Callable[[Tensor], Tensor] = staticmethod(transform_input)
    transform_output: Callable[..., Tensor] = staticmethod(transform_output)
    transform_output_gradient: Callable[[Tensor], Tensor] = staticmethod(transform_output_gradient)

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, weight: Tensor) -> Tensor:
        out_channels, in_channels = weight.shape[:2]
        filters = weight.permute(2, 3, 1, 0).reshape(9, in_channels * out_channels)
        filters = (FILTER @ filters).view(36, in_channels, out_channels)
        tiles_in = WinogradConv3x3.transform_input(x)
        ctx.save_for_backward(tiles_in, weight)
        n, _, h, w = x.shape
        return WinogradConv3x3.transform_output(torch.bmm(tiles_in, filters), n, h, w)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple:
        tiles_in, weight = ctx.saved_tensors
        grad_tiles = WinogradConv3x3.transform_output_gradient(grad.contiguous())
        grad_filters = torch.bmm(tiles_in.transpose(1, 2), grad_tiles)
        out_channels, in_channels = weight.shape[:2]
        grad_weight = (FILTER.T @ grad_filters.reshape(36, -1)).view(
            3, 3, in_channels, out_channels
        )
        grad_input = None
        if ctx.needs_input_grad[0]:  # the convolution of grad with the flipped filters
            flipped = weight.flip(2, 3).transpose(0, 1)
            grad_input = WinogradConv3x3.apply(grad, flipped)
        return grad_input, grad_weight.permute(3, 2, 0, 1)


def milliseconds(step: Callable[[], None], repeats: int = 5) -> float:
    step()
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1000


def winograd_matmuls(batch: int, in_channels: int, out_channels: int, size: int) -> tuple:
    """The time and GFLOP/s of the three batched matmuls of one Winograd forward and
    backward (output, filter gradient, input gradient), with nothing around them."""
    positions = batch * tiles(size) ** 2
    tiles_in = torch.randn(36, positions, in_channels)
    filters = torch.randn(36, in_channels, out_channels)
    grad_tiles = torch.randn(36, positions, out_channels)
    flipped = torch.randn(36, out_channels, in_channels)

    def matmuls() -> None:
        torch.bmm(tiles_in, filters)
        torch.bmm(tiles_in.transpose(1, 2), grad_tiles)
        torch.bmm(grad_tiles, flipped)

    elapsed = milliseconds(matmuls)
    flops = 3 * 2 * 36 * positions * in_channels * out_channels
    return elapsed, flops / elapsed / 1e6


def outputs_and_gradients(
    conv: Callable[[], Tensor], x: Tensor, weight: Tensor, grad: Tensor
) -> tuple[Tensor, ...]:
    output = conv()
    return (output.detach(), *torch.autograd.grad(output, (x, weight), grad))


def compare(batch: int, in_channels: int, out_channels: int, size: int) -> dict[str, float]:
    """Print one conv's forward-and-backward time both ways; return the two times."""
    x = torch.randn(batch, in_channels, size, size, requires_grad=True)
    weight = torch.randn(out_channels, in_channels, 3, 3).mul_(0.1).requires_grad_()
    grad = torch.randn(batch, out_channels, size, size)
    convs = {
        "direct": lambda: F.conv2d(x, weight, padding=1),
        "winograd": lambda: WinogradConv3x3.apply(x, weight),
    }
    references, results = (outputs_and_gradients(conv, x, weight, grad) for conv in convs.values())
    error = max(
        float((result - reference).norm() / reference.norm())
        for reference, result in zip(references, results, strict=True)
    )
    times = {
        name: milliseconds(lambda conv=conv: conv().backward(grad)) for name, conv in convs.items()
    }
    matmul_ms, matmul_gflops = winograd_matmuls(batch, in_channels, out_channels, size)
    print(
        f"{in_channels:>3} -> {out_channels:>3} channels at {size:>2} px: direct "
        f"{times['direct']:6.1f} ms, Winograd {times['winograd']:6.1f} ms "
        f"({times['direct'] / times['winograd']:.2f}x; its three matmuls alone "
        f"{matmul_ms:.1f} ms, {matmul_gflops:.0f} GFLOP/s), relative error {error:.1e} "
        "(output and gradients)"
    )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compile", action="store_true", help="compile the tile transforms")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compile:
        for name in ("transform_input", "transform_output", "transform_output_gradient"):
            compiled = torch.compile(getattr(WinogradConv3x3, name), dynamic=False)
            setattr(WinogradConv3x3, name, staticmethod(compiled))
    times = [compare(args.batch, *conv) for conv in SPEEDRUN_CONVS]
    print(
        f"all six, forward and backward of {args.batch} images: direct "
        f"{sum(t['direct'] for t in times):.0f} ms, "
        f"Winograd {sum(t['winograd'] for t in times):.0f} ms"
    )


if __name__ == "__main__":
    main()
