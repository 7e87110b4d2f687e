from pathlib import Path

import pytest
import yaml

from detection.config import ConfigError, load_config, parse_overrides, thaw, with_values


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {format: voc, root: /data}\ntrain: {epochs: 3, lr: 0.5}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {lr: 0.1}\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.epochs=7", "data.classes=[a, b]", "model.freeze_at=2"])
    assert cfg["train"]["lr"] == 0.1  # child beats base
    assert cfg["train"]["epochs"] == 7  # override beats file
    assert cfg["data"]["root"] == "/data"  # base kept
    assert cfg["data"]["classes"] == ["a", "b"]
    assert cfg["train"]["momentum"] == 0.9  # default filled in


def test_unknown_key_names_it_and_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key `train.lrr`; did you mean `train.lr`"):
        load_config(None, ["data.format=voc", "data.root=x", "train.lrr=0.1"])
    (tmp_path / "c.yaml").write_text("data: {format: voc, root: x, clases: [a]}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key `data.clases`; did you mean `data.classes`"):
        load_config(tmp_path / "c.yaml")


def test_wrong_type_and_missing_value():
    with pytest.raises(ConfigError, match=r"`train.epochs` must be int"):
        load_config(None, ["data.format=voc", "data.root=x", "train.epochs=many"])
    with pytest.raises(ConfigError, match=r"`data.root` is required"):
        load_config(None, ["data.format=voc"])
    # an int where a float is expected is fine; a bool is not an int
    assert load_config(None, ["data.format=voc", "data.root=x", "train.lr=1"])["train"]["lr"] == 1
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["data.format=voc", "data.root=x", "train.epochs=true"])


def test_base_cycle_and_bad_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_parse_overrides_types():
    ov = parse_overrides(["a.b=1", "a.c=0.5", "d=true", "e=hello", "f=[1, 2]"])
    assert ov == {"a": {"b": 1, "c": 0.5}, "d": True, "e": "hello", "f": [1, 2]}
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_overrides(["novalue"])


SHIPPED = sorted(p.name for p in (Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_valid(name):
    from detection.config import CONFIG_DIR
    from detection.models.builders import ARCHS
    from detection.training.optim import plan_stages

    needs_root = "root: ???" in (CONFIG_DIR / name).read_text()  # the user's folder configs
    if needs_root:
        with pytest.raises(ConfigError, match="data.root` is required"):
            load_config(CONFIG_DIR / name)
    cfg = load_config(CONFIG_DIR / name, ["data.root=/somewhere"] if needs_root else None)
    assert cfg["model"]["arch"] in ARCHS
    plan_stages(cfg)
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg  # read-only, still written as plain YAML


def test_a_loaded_config_is_read_only_and_changed_by_copy():
    """Resolved once, then read: every write raises, with_values makes the one kind of change."""
    import copy
    import pickle

    cfg = load_config(overrides=["data.format=synthetic", "data.root=/tmp/s", "data.classes=[a,b]"])
    for write in (lambda: cfg.__setitem__("seed", 1), lambda: cfg["train"].update(lr=1.0),
                  lambda: cfg["data"]["classes"].append("c"), lambda: cfg["train"].pop("lr"),
                  lambda: cfg["data"]["classes"].__setitem__(0, "z")):
        with pytest.raises(TypeError, match="read-only.*with_values"):
            write()
    changed = with_values(cfg, {"model.min_size": 320, "data.classes": ["x"]})
    assert changed["model"]["min_size"] == 320 and changed["data"]["classes"] == ["x"]
    assert cfg["model"]["min_size"] != 320 and cfg["data"]["classes"] == ["a", "b"]  # the original is unchanged
    with pytest.raises(TypeError):
        changed["model"]["min_size"] = 1
    with pytest.raises(KeyError, match="model.min_sise"):
        with_values(cfg, {"model.min_sise": 1})
    # it travels like the plain dict it equals: to workers, to DDP ranks, into copies and checkpoints
    assert pickle.loads(pickle.dumps(cfg)) == cfg and copy.deepcopy(cfg) is cfg
    plain = thaw(cfg)
    assert type(plain) is dict and type(plain["data"]["classes"]) is list and plain == cfg


def test_every_family_has_voc_and_coco_configs():
    for fam in ("frcnn", "retinanet", "ssd", "ssdlite", "fcos"):
        assert f"voc_{fam}.yaml" in SHIPPED and f"coco_{fam}.yaml" in SHIPPED


def test_a_checkpoint_config_from_another_version_still_loads(caplog):
    import logging

    old = {"data": {"format": "voc", "root": "x", "gone_key": 1}, "train": {"print_freq": 20, "lr": 0.5}}
    with caplog.at_level(logging.WARNING):
        cfg = load_config(base=old)
    assert cfg["train"]["lr"] == 0.5 and "print_freq" not in cfg["train"]
    assert "ignoring `train.print_freq`" in caplog.text and "ignoring `data.gone_key`" in caplog.text
    with pytest.raises(ConfigError, match=r"unknown config key `(data.gone_key|train.print_freq)`"):
        load_config(None, old)  # a user's own config stays strict
