"""The recipe's rules on crafted fingerprints (training/recipe.py), and a user's key winning."""

from detection.config import load_config, with_values
from detection.data.fingerprint import PERCENTILES, Fingerprint
from detection.training import recipe


def _fp(short_p5: float, image=(640, 512), side=None, per_image=(5, 10, 12), shares=None, grey=0) -> Fingerprint:
    """A fingerprint whose box percentiles all sit at `short_p5` (box side: `side`); `grey` of 32
    sampled images grey."""
    flat = lambda v: {q: float(v) for q in PERCENTILES}  # noqa: E731
    return Fingerprint(images=100, negatives=0, boxes=1000, image_long=flat(max(image)), image_short=flat(min(image)),
                       box_side=flat(side or short_p5), box_short=flat(short_p5),
                       box_long_ratio=flat((side or short_p5) / max(image)),
                       boxes_per_image={"median": per_image[0], "p95": per_image[1], "max": per_image[2]},
                       class_shares=shares or {"a": 0.6, "b": 0.4}, grey_images=grey, sampled_images=32)


def _cfg(min_size=480, max_size=800, overrides=None, **keys):
    """A config whose input size is a starting point (not the user's), as a shipped config's is."""
    cfg = load_config(None, {"data": {"format": "voc", "root": "x"}, **(overrides or {})})
    return with_values(cfg, {"model.min_size": min_size, "model.max_size": max_size, **keys})


def test_small_boxes_grow_the_scale_into_tiles_of_the_configured_area():
    """HIT-UAV's numbers: 640 x 512 images, 5% of the boxes under 9 px; at 480 / 800 the image is
    fed at 0.94x. Growing to 2x (the cap) costs 4.6x the pixels: tiles of the configured area."""
    changes, lines = recipe.choose(_cfg(), _fp(9.0, side=12.0))  # box scale p5 12 px: 24 at 2x, near 32
    assert changes == {"model.min_size": 512, "model.max_size": 512, "model.tile_size": 256}
    text = "\n".join(lines)
    assert "under 9.0 px" in text and "at 2.00x native" in text and "tiles of 256 native px fed at 512" in text


def test_a_growth_the_budget_affords_trains_whole_images():
    # 320 x 240 images fed at 360 (1.5x): 10-px boxes are 15 px there, under what the smallest anchor
    # matches; 2x native (the cap) costs 1.8x the pixels, so whole images at 480 / 640
    changes, _ = recipe.choose(_cfg(360, 800), _fp(10.0, image=(320, 240), side=16.0))
    assert changes == {"model.min_size": 480, "model.max_size": 640}  # tile_size stays 0


def test_boxes_the_smallest_anchor_matches_keep_the_configured_scale():
    """DeepPCB's numbers (5% under 26 px on 640 x 640, 19.5 px at 480): growing only cost steps
    there, so the scale stays; the anchors, which cost nothing, are fitted to the 20-px boxes."""
    changes, lines = recipe.choose(_cfg(), _fp(26.0, image=(640, 640)))
    assert changes == {"model.anchors": "auto"}
    assert len(lines) == 1 and "20 to 20 px" in lines[0]


def test_large_boxes_shrink_the_input_as_auto_size_did():
    """BCCD's numbers (5% under 40 px on 640 x 480): 384 / 640, what model.auto_size chose."""
    changes, lines = recipe.choose(_cfg(**{"model.auto_size": True}), _fp(40.0, image=(640, 480)))
    assert changes == {"model.min_size": 384, "model.max_size": 640, "model.auto_size": False}
    assert "32 px at min_size 384" in lines[0]


def test_a_tile_that_would_hold_the_whole_image_trains_it_whole():
    # 100-px images fed at 32 (0.32x); 26-px boxes want 1.23x: the smallest tile (128 px at the input)
    # would be 104 native px, more than the image
    changes, lines = recipe.choose(_cfg(32, 32), _fp(26.0, image=(100, 100)))
    assert changes == {"model.min_size": 128, "model.max_size": 128}
    assert "would hold the whole image" in lines[0]


def test_anchors_are_fitted_only_when_the_boxes_leave_the_default_anchors():
    assert "model.anchors" not in recipe.choose(_cfg(), _fp(40.0, image=(640, 480)))[0]
    # 600-px boxes on 1000 x 1000 images kept at 1x by the user: over the largest anchor (362 px) by
    # more than sqrt 2 (the recipe would have shrunk the input instead)
    kept = load_config(None, {"data": {"format": "voc", "root": "x"}, "model": {"min_size": 1000, "max_size": 1000}})
    big = recipe.choose(kept, _fp(600.0, image=(1000, 1000), side=600.0))[0]
    assert big == {"model.anchors": "auto"}
    # 9-px boxes grown 2x are 18 px: under the smallest anchor by more than sqrt 2
    assert recipe.choose(_cfg(), _fp(9.0))[0]["model.anchors"] == "auto"
    few = Fingerprint(**{**_fp(9.0).to_dict(), "boxes": 5})  # too few boxes to fit anchors to
    assert "model.anchors" not in recipe.choose(_cfg(), few)[0]


def test_crowded_images_get_more_rois_proposals_and_detections_never_fewer():
    lean = _cfg(**{"model.box_batch_size_per_image": 128, "model.rpn_post_nms_top_n_train": 300})  # voc_frcnn's
    changes, lines = recipe.choose(lean, _fp(40.0, image=(640, 480), per_image=(30, 60, 90)))
    assert changes["model.box_batch_size_per_image"] == 256  # 60 objects need 240 RoIs at a quarter positive
    assert changes["model.rpn_post_nms_top_n_train"] == 480 and changes["model.rpn_post_nms_top_n_test"] == 480
    assert changes["model.box_detections_per_img"] == 180
    assert any("boxes an image: p95 60" in line for line in lines)
    sparse = recipe.choose(lean, _fp(40.0, image=(640, 480), per_image=(1, 2, 3)))[0]
    assert not any(k.startswith(("model.box_", "model.rpn_")) for k in sparse)  # the configured values stay


def test_a_rare_class_turns_on_repeat_factor_sampling():
    changes, lines = recipe.choose(_cfg(), _fp(40.0, image=(640, 480), shares={"a": 0.99, "b": 0.005, "c": 0.0}))
    assert changes["data.sampler"] == "repeat_factor" and changes["data.repeat_thresh"] == recipe.REPEAT_THRESH
    assert any("1 rare class(es) (b: 0.5%" in line for line in lines)  # c has no box: nothing to repeat
    assert "data.sampler" not in recipe.choose(_cfg(), _fp(40.0, image=(640, 480), shares={"a": 1.0, "c": 0.0}))[0]


def test_a_key_the_user_sets_wins_and_the_log_says_so():
    cfg = load_config(None, {"data": {"format": "voc", "root": "x"}, "model": {"min_size": 480}})
    assert cfg["recipe"]["keep"] == ["model.min_size"]
    changes, lines = recipe.choose(cfg, _fp(9.0))
    assert not {"model.min_size", "model.max_size", "model.tile_size"} & set(changes)  # sizes go together
    assert any(line.startswith("recipe: keeps model.min_size=480") and "as you set it" in line for line in lines)
    on_command_line = load_config(None, ["data.format=voc", "data.root=x", "data.sampler=default"])
    assert "data.sampler" not in recipe.choose(on_command_line, _fp(40.0, shares={"a": 0.999, "b": 0.001}))[0]


def test_shipped_configs_are_starting_points_and_a_users_own_file_is_the_users(tmp_path):
    assert load_config("configs/voc_frcnn.yaml", ["data.root=x"])["recipe"]["keep"] == []
    mine = tmp_path / "mine.yaml"
    mine.write_text("_base_: voc_frcnn.yaml\nmodel: {max_size: 1024, box_batch_size_per_image: 64}\n")
    assert load_config(mine, ["data.root=x"])["recipe"]["keep"] == ["model.max_size",
                                                                     "model.box_batch_size_per_image"]


def test_the_recipe_off_or_another_family_changes_nothing_it_should_not():
    assert recipe.choose(_cfg(overrides={"recipe": {"fit": False}}), _fp(9.0)) == ({}, [])
    ssd = _cfg(300, 300, **{"model.arch": "ssdlite_mobilenet_v2"})
    assert not any(k.startswith("model.min_size") for k in recipe.choose(ssd, _fp(9.0))[0])  # SSD's input is fixed


def test_on_bccd_the_recipe_pins_what_the_fixed_recipe_did(shared_datasets):
    """BCCD's cells are large enough: the fitted recipe's config.yaml is the fixed one's (auto_size's
    384 / 512, the shipped proposals and RoIs), so the easy set cannot lose by it."""
    from detection.config import flat_items
    from detection.data.dataset import read_split
    from detection.data.fingerprint import fingerprint
    from detection.training.plan import fitted

    pinned = {}
    for arm, overrides in (("fixed", ["recipe.fit=false"]), ("fitted", [])):
        cfg = load_config("configs/bccd_frcnn.yaml", overrides)
        records, info = read_split(cfg["data"], "train", True, None, 0)
        changes, _ = fitted(cfg, records, fingerprint(records, list(info.class_names)))
        pinned[arm] = dict(flat_items(with_values(cfg, changes)))
    assert (pinned["fitted"]["model.min_size"], pinned["fitted"]["model.max_size"]) == (384, 512)
    assert {k for k, v in pinned["fitted"].items() if pinned["fixed"][k] != v} == {"recipe.fit"}


def test_with_the_stride4_level_the_scale_rule_measures_against_its_16_px_anchors():
    """HIT-UAV's numbers again: 9-px boxes are 8.4 px at the configured input, half a 16-px anchor
    and more, so a model with the /4 level keeps whole images where one without it tiles; boxes of
    6 px still grow (2.67x, capped at 2x); 30-px boxes (22 px at 480) shrink the input until they
    are 16 px, where without the level they keep the scale and get anchors fitted."""
    changes, lines = recipe.choose(_cfg(**{"model.stride4_level": True}), _fp(9.0, side=24.0))
    assert changes == {}, lines
    changes, lines = recipe.choose(_cfg(**{"model.stride4_level": True}), _fp(6.0, side=24.0))
    assert changes["model.tile_size"] > 0 and "at 2.00x native they reach 12 px" in "\n".join(lines)
    changes, lines = recipe.choose(_cfg(**{"model.stride4_level": True}), _fp(30.0, image=(640, 640)))
    assert changes == {"model.min_size": 352, "model.max_size": 587} and "the smallest anchor is 16 px" in lines[0]
    assert recipe.choose(_cfg(), _fp(30.0, image=(640, 640)))[0] == {"model.anchors": "auto"}  # under 32 / 1.41


def test_a_size_the_user_sets_is_not_shrunk_by_a_shipped_auto_size():
    """voc_frcnn.yaml turns model.auto_size on; a min_size set on the command line is kept exactly
    (the recipe says it keeps it, so auto_size must not shrink it after), while an auto_size the
    user sets is the user's and still shrinks, saying so."""
    from detection.training.plan import fit_to_boxes

    boxes = _fp(40.0, image=(640, 480))  # BCCD-like: the recipe and auto_size would both shrink 800
    cfg = load_config("configs/voc_frcnn.yaml", ["data.root=x", "model.min_size=800"])
    changes, lines = recipe.choose(cfg, boxes)
    assert changes == {"model.auto_size": False} and any("keeps model.min_size=800" in ln for ln in lines)
    assert fit_to_boxes(recipe.model_after(cfg["model"], changes), []) == ({}, [])  # nothing shrinks it after
    mine = load_config("configs/voc_frcnn.yaml", ["data.root=x", "model.min_size=800", "model.auto_size=true"])
    changes, lines = recipe.choose(mine, boxes)
    assert "model.auto_size" not in changes and any("keeps model.auto_size=True" in ln for ln in lines)


def test_grey_images_free_one_more_trunk_stage_unless_the_user_or_the_setup_says_otherwise():
    """DeepPCB and HIT-UAV are grey: MobileNetV2's freeze_at 3 becomes 2. Colour data, a freeze_at
    the user sets, random weights, feature extraction, staged training, a model.init start and a
    shipped freeze_at of 2 (SSD, FCOS) all keep the configured value."""
    deeppcb = _fp(26.0, image=(640, 640), grey=32)
    changes, lines = recipe.choose(_cfg(), deeppcb)
    assert changes == {"model.anchors": "auto", "model.freeze_at": 2}
    assert any(ln.startswith("recipe: model.freeze_at=2: 32 of 32 sampled images are grey") for ln in lines)
    assert "model.freeze_at" not in recipe.choose(_cfg(), _fp(26.0, image=(640, 640), grey=28))[0]  # under 90%
    mine = load_config(None, ["data.format=voc", "data.root=x", "model.freeze_at=3"])
    changes, lines = recipe.choose(mine, deeppcb)
    assert "model.freeze_at" not in changes and any("keeps model.freeze_at=3" in ln for ln in lines)
    for keys in ({"model.weights": "none"}, {"model.mode": "feature_extraction"}, {"model.freeze_at": 2},
                 {"model.init": "runs/last"}, {"train.stages": [{"epochs": 2, "freeze_at": 3}]}):
        assert "model.freeze_at" not in recipe.choose(_cfg(**keys), deeppcb)[0], keys


def test_on_the_grey_hard_sets_the_recipe_trains_one_more_trunk_stage(shared_datasets):
    """HIT-UAV (thermal) and DeepPCB (binarized boards) read as grey from their own files, BCCD
    (stained cells) as colour, so only the hard sets get freeze_at 2."""
    from detection.data.dataset import read_split
    from detection.data.fingerprint import fingerprint

    for folder, grey in (("hituav_voc/HIT-UAV", True), ("deeppcb_voc/DeepPCB", True), ("bccd_voc/BCCD", False)):
        cfg = load_config("configs/voc_frcnn.yaml", [f"data.root={shared_datasets / folder}", "data.classes=[]"])
        records, info = read_split(cfg["data"], "train", True, None, 0)
        data_print = fingerprint(records, list(info.class_names))
        assert data_print.grey_share == (1.0 if grey else 0.0) and data_print.sampled_images == 32, folder
        assert recipe.choose(cfg, data_print)[0].get("model.freeze_at", 3) == (2 if grey else 3), folder


def test_the_synthetic_set_is_colour_so_its_trunk_stays_as_configured(synthetic_root):
    from detection.data.dataset import read_split
    from detection.data.fingerprint import fingerprint

    cfg = load_config("configs/demo.yaml", [f"data.root={synthetic_root}", "data.synthetic.num_train=24",
                                            "data.synthetic.num_val=8", "data.synthetic.image_size=128"])  # as made
    records, info = read_split(cfg["data"], "train", True, None, 0)
    data_print = fingerprint(records, list(info.class_names))
    assert data_print.grey_images == 0 and data_print.sampled_images == 24
    assert "model.freeze_at" not in recipe.choose(cfg, data_print)[0]
