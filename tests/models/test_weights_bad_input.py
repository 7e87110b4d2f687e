"""Broken and hostile input to weights: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

from detection.cli import train as train_cli
from tests.bad_inputs import (
    cli_error,
    train_args,
    voc_set,
)


def test_checkpoint_of_other_classes_as_weights_file_is_one_line(tmp_path, tiny_model_cfg, capsys):
    from detection.checkpoint import save_checkpoint
    from detection.models.builders import build_model

    other = build_model(tiny_model_cfg, ["a", "b", "c", "d", "e"], verbose=False)
    ck = tmp_path / "other.pt"
    save_checkpoint(ck, model=other.state_dict(), config={"model": {"arch": "fasterrcnn_mobilenet_v2_fpn"}},
                    class_names=list("abcde"))
    root = voc_set(tmp_path)
    msg = cli_error(train_cli.main, train_args(root, tmp_path, "model.weights=pretrained",
                                               f"model.weights_file={ck}"), capsys)
    assert "other.pt" in msg and "do not fit" in msg and "weights_only" not in msg
