from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import (
    CLASSES,
    CONTEXT_FEATURES,
    N_CONTEXT,
    N_SHAPE,
    Beat,
    BeatNet,
    BeatShape,
    CnnClassifier,
    ModelInputError,
    RepresentationConfig,
    Representer,
    ResNet18Beat,
    context_features,
    load_imagenet,
    resample_windows,
    rr_features,
)


def beat(fs: float = 360.0, rr: float | None = 0.8, **kw: object) -> Beat:
    n = round(0.8 * fs)
    t = (np.arange(n) - round(0.35 * fs)) / fs
    window = np.exp(-0.5 * (t / 0.012) ** 2).astype(np.float32)
    args = dict(
        stream="s",
        sample=1000,
        fs=fs,
        rr_prev=rr,
        rr_next=rr,
        rr_local=0.8,
        rr_mean=0.8,
        window=window,
        window_start=1000 - round(0.35 * fs),
        ready_at=0.0,
    )
    args.update(kw)
    return Beat(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["stft", "cwt"])
def test_images_have_the_stated_shape_and_ignore_amplitude_and_offset(kind: str) -> None:
    cfg = RepresentationConfig(kind=kind)  # type: ignore[arg-type]
    rep = Representer(cfg)
    x = np.random.default_rng(0).standard_normal((8, cfg.n_samples)).astype(np.float32)
    img = rep(x)
    assert img.shape == (8, 1, *cfg.image_shape) and img.dtype == np.float32 and np.isfinite(img).all()
    np.testing.assert_allclose(rep(5.0 * x + 2.0), img, atol=1e-4)


def test_windows_at_any_rate_are_resampled_to_the_internal_rate() -> None:
    cfg = RepresentationConfig()
    beats = [beat(360.0), beat(250.0), beat(500.0), beat(128.0)]
    w = resample_windows([b.window for b in beats], [b.fs for b in beats], cfg)
    assert w.shape == (4, cfg.n_samples)
    peaks = w.argmax(axis=1)  # the R peak stays at 0.35 s whatever the source rate
    assert np.all(np.abs(peaks - round(0.35 * cfg.fs)) <= 1)


def test_rr_features_normalise_and_fill_missing() -> None:
    f = rr_features([beat(rr=0.4), beat(rr=None)])
    assert f.shape == (2, 5)
    assert f[0, 0] == pytest.approx(0.5) and f[0, 2] == pytest.approx(0.5)
    np.testing.assert_allclose(f[1, :4], 1.0)


def test_context_features_are_rr_then_shape_against_the_dominant_beat() -> None:
    wide = BeatShape(
        qrs_corr=0.3, width_ratio=2.5, amp_ratio=1.8, residual=0.9, p_corr=-0.4, width_s=0.16, learned=True
    )
    f = context_features([beat(rr=0.4, shape=wide), beat(rr=None)])
    assert f.shape == (2, N_CONTEXT) == (2, len(CONTEXT_FEATURES)) and f.dtype == np.float32
    np.testing.assert_allclose(f[:, :5], rr_features([beat(rr=0.4), beat(rr=None)]))
    np.testing.assert_allclose(f[0, 5:], [0.3, 2.5, 1.8, 0.9, -0.4, 1.6, 1.0], rtol=1e-6)  # width in 100 ms
    np.testing.assert_allclose(f[1, 5:], [1.0, 1.0, 1.0, 0.0, 1.0, 0.8, 0.0])  # not measured: the neutral shape
    assert N_CONTEXT == 5 + N_SHAPE


def test_context_features_are_bounded() -> None:
    odd = BeatShape(qrs_corr=float("nan"), width_ratio=80.0, amp_ratio=-3.0, residual=1e9, width_s=2.0, learned=True)
    f = context_features([beat(shape=odd)])
    assert np.isfinite(f).all() and f.max() <= 5.0 and f.min() >= -1.0


def test_beatnet_forward() -> None:
    cfg = RepresentationConfig()
    out = BeatNet()(torch.zeros(3, 1, *cfg.image_shape), torch.ones(3, N_CONTEXT))
    assert out.shape == (3, len(CLASSES))


def test_imagenet_checkpoint_loads_into_the_resnet18_variant(tmp_path: Path) -> None:
    """A torchvision-layout ResNet-18 state dict (3-channel conv1, 1000-class fc) loads by name."""
    ref = ResNet18Beat()
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("head.")}
    state["conv1.weight"] = torch.randn(64, 3, 7, 7)
    state["fc.weight"] = torch.randn(1000, 512)
    state["fc.bias"] = torch.randn(1000)
    state["layer3.1.conv2.weight"] = torch.randn(256, 256, 3, 3)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    model = ResNet18Beat()
    loaded = load_imagenet(model, path)
    assert "layer3.1.conv2.weight" in loaded and not any(k.startswith("fc.") for k in loaded)
    torch.testing.assert_close(model.state_dict()["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    torch.testing.assert_close(model.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    cfg = RepresentationConfig()
    assert model(torch.zeros(2, 1, *cfg.image_shape), torch.ones(2, N_CONTEXT)).shape == (2, 5)


def test_a_checkpoint_of_another_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a torchvision ResNet-18"):
        load_imagenet(ResNet18Beat(), path)


def test_classifier_load_checks_the_weights_hash(tmp_path: Path) -> None:
    from engine.training._train import save

    model = BeatNet()
    card = save(model, tmp_path / "m.pt", _card())
    clf = CnnClassifier.load(tmp_path / "m.pt")
    labels = clf.classify([beat(), beat(250.0)])
    assert len(labels) == 2 and set(labels) <= set(CLASSES)
    card["weights_sha256"] = "0" * 64
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="hash"):
        CnnClassifier.load(tmp_path / "m.pt")


def _card(**kw: object) -> dict[str, object]:
    return {
        "model": "beatnet",
        "representation": RepresentationConfig().__dict__,
        "context_features": {"width": N_CONTEXT},
        **kw,
    }


def test_weights_of_the_older_rr_only_model_give_a_clear_error(tmp_path: Path) -> None:
    """A model trained on the 5 RR features alone (head.rr.*, card without context features) is refused by name."""
    from engine.training._train import save

    old = {k.replace("head.context.", "head.rr."): v for k, v in BeatNet().state_dict().items()}
    old["head.rr.0.weight"] = torch.zeros(32, 5)
    path = tmp_path / "old.pt"
    torch.save(old, path)
    card = save(BeatNet(), path, {"model": "beatnet", "representation": RepresentationConfig().__dict__})
    torch.save(old, path)  # the old weights under an old card (no context features)
    card["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "old.json").write_text(json.dumps(card))
    with pytest.raises(ModelInputError, match=r"older model that took RR features alone.*retrain with ecg-train"):
        CnnClassifier.load(path)
    (tmp_path / "old.json").write_text(json.dumps({**card, "context_features": {"width": N_CONTEXT}}))
    with pytest.raises(ModelInputError, match=f"trained for 5 RR inputs; this engine's model takes {N_CONTEXT}"):
        CnnClassifier.load(path)
    (tmp_path / "old.json").write_text(json.dumps({**card, "context_features": {"width": 5}}))
    with pytest.raises(ModelInputError, match=f"trained for 5 context features; this engine's model takes {N_CONTEXT}"):
        CnnClassifier.load(path)


def test_weights_that_do_not_fit_the_model_give_a_clear_error(tmp_path: Path) -> None:
    from engine.training._train import save

    card = save(ResNet18Beat(), tmp_path / "m.pt", _card())  # a ResNet under a card that says beatnet
    assert card["model"] == "beatnet"
    with pytest.raises(ModelInputError, match="weights do not fit the model"):
        CnnClassifier.load(tmp_path / "m.pt")


def _cuda() -> bool:
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:
        return False


@pytest.mark.skipif(not _cuda(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("kind", ["stft", "cwt"])
def test_cupy_images_equal_numpy_images(kind: str) -> None:
    import cupy

    cfg = RepresentationConfig(kind=kind)  # type: ignore[arg-type]
    x = np.random.default_rng(3).standard_normal((64, cfg.n_samples)).astype(np.float32)
    cpu = Representer(cfg)(x)
    gpu = cupy.asnumpy(Representer(cfg, device="cuda")(x))
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)


def test_synthetic_pretraining_then_fine_tuning_start(tmp_path: Path) -> None:
    """ecg-pretrain writes image layers that ecg-train's --init pretrained: can take."""
    pytest.importorskip("neurokit2")
    from engine.training import synthetic_beats
    from engine.training._pretrain import main as pretrain

    windows, context, target = synthetic_beats(3, 12.0, RepresentationConfig(), seed=1)
    assert windows.shape[0] == context.shape[0] == target.shape[0] > 20 and context.shape[1] == N_CONTEXT
    assert np.isfinite(target).all() and target.shape[1] == 5
    out = tmp_path / "syn.pt"
    assert pretrain(["--out", str(out), "--records", "3", "--seconds", "12", "--epochs", "1"]) == 0
    state = torch.load(out, weights_only=True)
    model = BeatNet()
    assert set(state) == {k for k in model.state_dict() if not k.startswith("head.")}
    model.load_state_dict(state, strict=False)
