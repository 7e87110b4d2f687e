"""Broken and hostile input to runs: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations


def test_safe_part_keeps_a_name_one_part_inside_the_folder(tmp_path):
    from detection.utils.runs import safe_part

    for name in ("../..", "..", ".", "/etc/passwd", "C:\\Windows", "a/../../b", "\x00", "", "x" * 500):
        part = safe_part(name)
        assert part and "/" not in part and "\\" not in part and not part.startswith(".") and len(part) <= 120
        assert (tmp_path / part).resolve().parent == tmp_path.resolve()
    assert safe_part("traffic light") == "traffic light" and safe_part("été") == "été"
