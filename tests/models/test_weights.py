import pytest
import torch
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from detection.errors import CheckpointError
from detection.models import weights as W


def test_resolution_order_explicit_then_cache_then_clear_error(tmp_path, monkeypatch):
    wt = MobileNet_V2_Weights.IMAGENET1K_V1
    sd = mobilenet_v2().state_dict()

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(W.WeightsUnavailableError) as e:
        W.load_state_dict(wt)
    msg = str(e.value)
    assert "tools/fetch_weights.py MobileNet_V2_Weights.IMAGENET1K_V1" in msg
    assert str(W.cache_path(wt)) in msg and "model.weights_file" in msg
    assert not W.cache_path(wt).exists()

    W.cache_path(wt).parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, W.cache_path(wt))  # the hub cache, under $TORCH_HOME
    assert W.load_state_dict(wt).keys() == sd.keys()

    explicit = tmp_path / "mine.pth"
    torch.save({"model": {k: v + 1 for k, v in sd.items()}}, explicit)  # our checkpoint layout
    got = W.load_state_dict(wt, str(explicit))
    assert torch.equal(got["features.0.0.weight"], sd["features.0.0.weight"] + 1)
    with pytest.raises(W.WeightsUnavailableError, match="does not exist"):
        W.load_state_dict(wt, str(tmp_path / "missing.pth"))


def test_hash_prefix_and_check(tmp_path):
    assert W.hash_prefix(MobileNet_V2_Weights.IMAGENET1K_V1) == "b0353104"
    f = tmp_path / "x"
    f.write_bytes(b"abc")  # sha256 ba7816bf...
    assert W.sha256_matches(f, "ba7816bf") and not W.sha256_matches(f, "b0353104")


class Evil:
    """Any class: weights_only=True must refuse to unpickle it."""


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pth: not a safe checkpoint") as e:
        W.load_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, str(path))
    assert "weights_only=False" not in str(e.value) and "\n" not in str(e.value)
