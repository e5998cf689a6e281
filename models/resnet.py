"""CustomResNet: the ResNet-9-style network of davidcpage/cifar10-fast, to the letter of the spec.

    prep    Conv3x3(s1, p1) - BN - ReLU                        64 x 32 x 32
    layer1  Conv3x3 - MaxPool2 - BN - ReLU                    128 x 16 x 16
    res1    ResBlock: (Conv - BN - ReLU) x 2, added: X + R1   128 x 16 x 16
    layer2  Conv3x3 - MaxPool2 - BN - ReLU                    256 x  8 x  8
    layer3  Conv3x3 - MaxPool2 - BN - ReLU                    512 x  4 x  4
    res3    ResBlock: (Conv - BN - ReLU) x 2, added: X + R2   512 x  4 x  4
    pool    MaxPool(4)                                        512 x  1 x  1
    fc      Linear(512, 10)                                    10

Convolutions have no bias (the BatchNorm after each one has its own shift); the FC layer has one.
6,573,130 trainable parameters.
"""
import torch
from torch import nn


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    """Conv3x3 (stride 1, padding 1, no bias) [- MaxPool2] - BatchNorm - ReLU."""
    layers = [nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """The residual branch R(X) = (Conv-BN-ReLU-Conv-BN-ReLU)(X); the caller adds X + R(X)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv_bn(channels, channels)
        self.conv2 = conv_bn(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class CustomResNet(nn.Module):
    """ResNet-9 for CIFAR-10.

    `forward` returns logits, not probabilities: `nn.CrossEntropyLoss` applies log-softmax
    itself, so a softmax inside the network would be applied twice and flatten the gradients.
    The spec's final SoftMax lives in `predict_proba`, used for predictions and galleries.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.prep = conv_bn(3, 64)
        self.layer1 = conv_bn(64, 128, pool=True)
        self.res1 = ResBlock(128)
        self.layer2 = conv_bn(128, 256, pool=True)
        self.layer3 = conv_bn(256, 512, pool=True)
        self.res3 = ResBlock(512)
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 32, 32)
        x = self.prep(x)                                   # (N, 64, 32, 32)
        x = self.layer1(x)                                 # (N, 128, 16, 16)
        x = x + self.res1(x)                               # (N, 128, 16, 16)
        x = self.layer2(x)                                 # (N, 256, 8, 8)
        x = self.layer3(x)                                 # (N, 512, 4, 4)
        x = x + self.res3(x)                               # (N, 512, 4, 4)
        x = self.pool(x)                                   # (N, 512, 1, 1)
        x = torch.flatten(x, 1)                            # (N, 512)
        return self.fc(x)                                  # (N, 10) logits

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities, softmax(logits): the spec's SoftMax. Shape (N, 10)."""
        return torch.softmax(self.forward(x).float(), dim=1)
