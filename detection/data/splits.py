"""Splits for data that has none, and seeded subsets: decided per file name, never by position.

An image's side of the split is a hash of its path relative to the data root (and the seed),
so adding images to a folder leaves every earlier image where it was, and the same folder
gives the same split on every machine. The lists a run used are written to `<run>/split.json`;
evaluation and resume read them back (`data.split_file`), so a folder that grew since still
evaluates on the images the run was validated on.
"""

from __future__ import annotations

import hashlib
import json
import os

from ..errors import DataError, writing


def unit_hash(name: str, salt: str) -> float:
    """A number in [0, 1) fixed by `name` and `salt` alone."""
    digest = hashlib.sha1(f"{salt}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def relative_name(path: str, root: str) -> str:
    """The path as stored in split lists: relative to the data root, forward slashes."""
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    return rel.replace(os.sep, "/")


def in_val(name: str, val_fraction: float) -> bool:
    """The same for every run seed, so runs with different seeds are validated on the same images."""
    return unit_hash(name, "val") < val_fraction


def in_fraction(name: str, fraction: float, seed: int) -> bool:
    return unit_hash(name, f"subset:{seed}") < fraction


def select(items: list, names: list[str], which: str, *, val_fraction: float = 0.0, fraction: float = 1.0,
           seed: int = 0, lists: dict | None = None) -> list:
    """The items of split `which` ("train" or "val") among `items`, whose split names are `names`.

    `lists` (a split.json's content) decides when given; else `val_fraction` carves the
    validation images out by hash (the same split for every seed); `fraction` < 1 then keeps
    a subset of the training side chosen by `seed`.
    """
    pairs = list(zip(items, names))
    if lists is not None:
        wanted = set(lists[which])
        missing = wanted - set(names)
        if missing:
            raise DataError(f"{lists.get('_file', 'split file')}: {len(missing)} of its {len(wanted)} {which} images "
                            f"are no longer in the data set (e.g. {sorted(missing)[0]!r}); restore them, or clear "
                            "data.split_file to split anew")
        pairs = [(it, n) for it, n in pairs if n in wanted]
    elif val_fraction > 0:
        pairs = [(it, n) for it, n in pairs if in_val(n, val_fraction) == (which == "val")]
    if which == "train" and fraction < 1.0:
        pairs = [(it, n) for it, n in pairs if in_fraction(n, fraction, seed)]
    return [it for it, _ in pairs]


def record_names(records, info) -> list[str]:
    return [relative_name(r.path, info.root) for r in records]


def write_split(path, train_names: list[str], val_names: list[str], how: str) -> None:
    """The lists a run used, for its evaluation and resume (and for the user to read)."""
    with writing(path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"how": how, "train": sorted(train_names), "val": sorted(val_names)}, f, indent=0)


def read_split_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            lists = json.load(f)
    except FileNotFoundError:
        raise DataError(f"data.split_file {path} does not exist; clear data.split_file to split anew") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"data.split_file {path}: cannot be read ({e})") from None
    if not (isinstance(lists, dict) and isinstance(lists.get("train"), list) and isinstance(lists.get("val"), list)):
        raise DataError(f"data.split_file {path}: expected an object with `train` and `val` lists of file names")
    for side in ("train", "val"):
        bad = [v for v in lists[side] if not isinstance(v, str)]
        if bad:
            raise DataError(f"data.split_file {path}: `{side}` must list file names (strings), and {len(bad)} entries "
                            f"are not (e.g. {bad[0]!r}); fix them, or clear data.split_file to split anew")
    both = set(lists["train"]) & set(lists["val"])
    if both:
        raise DataError(f"data.split_file {path}: {len(both)} images are in both `train` and `val` (e.g. "
                        f"{sorted(both)[0]!r}): a model validated on images it trained on scores too high; remove "
                        "them from one side, or clear data.split_file to split anew")
    lists["_file"] = path
    return lists
