"""PyTorch networks: deepscope's U-Net and the book chapter's CountNet and U-Net.

All networks take ``(N, C, H, W)`` float tensors (the NumPy <-> torch layout conversion lives in
:func:`deepscope.predict.engine.to_tensor`). Each family is registered by name in
:mod:`deepscope.models.families` (without importing torch, so reading a model card stays light); see
:func:`~deepscope.models.architectures.register_architecture` to add one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepscope.models.architectures import build_network

__all__ = ["UNet", "BookUNet", "BookCountNet", "build_network"]


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with BatchNorm, max-pool down and bilinear up-sampling.

    Inputs must have H and W divisible by ``pool_input * 2**depth`` (the predict and train helpers
    pad). With ``pool_input > 1`` the input is average-pooled first and the output has the pooled size.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 16, depth: int = 4,
                 pool_input: int = 1) -> None:
        super().__init__()
        self.pool_input = pool_input
        chans = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_Block(in_channels, chans[0])] +
                                  [_Block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([_Block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image features: per-channel mean and standard deviation of the deepest encoder level, ``(N, 2C)``.

        What the network "sees" in an image, summarised; domain checks compare them with the
        features of the training images.
        """
        if self.pool_input > 1:
            x = F.avg_pool2d(x, self.pool_input)
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
        x = x.float()
        return torch.cat([x.mean(dim=(-2, -1)), x.std(dim=(-2, -1))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_input > 1:
            x = F.avg_pool2d(x, self.pool_input)
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


class BookCountNet(nn.Module):
    """The book's cell counter: five 5x5 stride-2 convolutions (16/32/64/128/256, ReLU) and a dense output.

    Exactly as described in the chapter (DeepChem ``Conv2D`` uses 'same' padding and ReLU). The
    dense layer fixes the input size (default 520 x 696, BBBC005); other sizes are resized to it by
    the predictor.
    """

    def __init__(self, in_channels: int = 1, input_size: tuple[int, int] = (520, 696)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        h, w = input_size
        for cout in (16, 32, 64, 128, 256):
            layers += [nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.ReLU(inplace=True)]
            cin = cout
            h, w = (h + 1) // 2, (w + 1) // 2
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(256 * h * w, 1)
        self.input_size = tuple(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(torch.flatten(self.features(x), 1))


class BookUNet(nn.Module):
    """The book's small U-Net for BBBC005 masks, exactly as the chapter builds it.

    Three 5x5 stride-2 convolutions (16/32/64), a 1x1 convolution (64), three 5x5 stride-2
    transposed convolutions (32/16/1) with skip concatenations, and a final 5x5 convolution
    producing one logit (trained with sigmoid cross-entropy). H and W must be multiples of 8.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, stride=2, padding=2)
        self.conv3 = nn.Conv2d(32, 64, 5, stride=2, padding=2)
        self.conv4 = nn.Conv2d(64, 64, 1)
        self.deconv1 = nn.ConvTranspose2d(128, 32, 5, stride=2, padding=2, output_padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 16, 5, stride=2, padding=2, output_padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, 1, 5, stride=2, padding=2, output_padding=1)
        self.final = nn.Conv2d(in_channels + 1, out_channels, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = F.relu(self.conv1(x))
        c2 = F.relu(self.conv2(c1))
        c3 = F.relu(self.conv3(c2))
        c4 = F.relu(self.conv4(c3))
        d1 = F.relu(self.deconv1(torch.cat([c3, c4], 1)))
        d2 = F.relu(self.deconv2(torch.cat([c2, d1], 1)))
        d3 = F.relu(self.deconv3(torch.cat([c1, d2], 1)))
        return self.final(torch.cat([x, d3], 1))
