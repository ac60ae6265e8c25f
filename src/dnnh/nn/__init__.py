"""Networks: NIN backbones, the pretrained-layout backbones (ResNet, VGG, AlexNet, ViT, EfficientNet-Lite),
divide-and-encode, the piece-wise threshold and the DNNH model; the finder of a registry package's weights file."""

from dnnh.nn.backbones import BACKBONES, build_backbone
from dnnh.nn.dnnh import DNNH, HashNetwork, ModelConfig
from dnnh.nn.encoders import DivideAndEncode, FullyConnectedEncoder
from dnnh.nn.nin import PRESETS, build_nin
from dnnh.nn.packaged import packaged_weights
from dnnh.nn.threshold import PiecewiseThreshold

__all__ = ["BACKBONES", "DNNH", "DivideAndEncode", "FullyConnectedEncoder", "HashNetwork", "ModelConfig", "PRESETS",
           "PiecewiseThreshold", "build_backbone", "build_nin", "packaged_weights"]
