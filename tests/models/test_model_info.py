import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from detection.cli import model_info as cli
from detection.models.builders import build_model
from detection.models.model_info import count_flops, stage_table


def test_conv_flops_are_the_textbook_formula():
    # 2 * Cout * Hout * Wout * (Cin / groups) * kh * kw per image, Hout = (H + 2p - d(k - 1) - 1) // s + 1
    for k, s, p, d, g in [(3, 1, 1, 1, 1), (3, 2, 1, 1, 1), (5, 2, 2, 1, 4), (3, 1, 2, 2, 8), (1, 1, 0, 1, 1)]:
        conv = nn.Conv2d(8, 16, k, s, p, d, groups=g, bias=False)
        x = torch.rand(2, 8, 37, 50)
        ho, wo = ((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in (37, 50))
        assert conv(x).shape[-2:] == (ho, wo)
        assert count_flops(conv, x) == 2 * 2 * 16 * ho * wo * (8 // g) * k * k


def test_trunk_flops_agree_with_torch_and_stages_show_freezing(default_cfg):
    model = build_model(dict(default_cfg["model"], freeze_at=2), ["a"], load_pretrained=False, verbose=False)
    trunk = model.backbone.body
    x = torch.rand(1, 3, 64, 96)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        trunk(x)
    assert count_flops(trunk, x) == fc.get_total_flops()
    rows = stage_table(model, 64, 96)
    assert [r["stage"] for r in rows] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert [r["frozen"] for r in rows] == [True, True, False, False, False]
    assert rows[-1]["output"] == (320, 2, 3)
    assert abs(sum(r["gflops"] for r in rows) - fc.get_total_flops() / 1e9) < 1e-9


def test_cli_prints_the_table(capsys):
    from detection.config import CONFIG_DIR

    cli.main(["--cfg", str(CONFIG_DIR / "bccd_frcnn.yaml"), "--size", "96", "128"])
    out = capsys.readouterr().out
    assert "stage2" in out and "frozen" in out and "GFLOPs" in out
