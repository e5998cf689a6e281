"""The network of this project: a ResNet-9-style CustomResNet for 32x32 images."""
from models.resnet import CustomResNet, ResBlock, conv_bn

__all__ = ["CustomResNet", "ResBlock", "conv_bn"]
