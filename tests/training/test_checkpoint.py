import pytest
import torch

from detection.checkpoint import load_checkpoint, save_checkpoint


def test_atomic_save_and_safe_load(tmp_path):
    path = tmp_path / "w" / "last.pt"
    save_checkpoint(path, model={"w": torch.ones(2)}, config={"a": 1}, class_names=["x"], epoch=3)
    assert not list(path.parent.glob("*.tmp"))
    ck = load_checkpoint(path)
    assert ck["epoch"] == 3 and ck["versions"]["torch"] == str(torch.__version__)
    torch.save({"model": {}}, path)
    with pytest.raises(ValueError, match="not a checkpoint of this toolkit"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        load_checkpoint(path)
