import numpy as np
import pytest
from PIL import Image

from detection.data.images import ImageReadError, read_image, read_image_size


def test_modes_become_rgb_uint8(tmp_path):
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cases = {
        "gray.png": Image.fromarray(np.full((8, 12), 90, np.uint8), "L"),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full((8, 12), 128, np.uint8)]), "RGBA"),
        "palette.png": Image.fromarray(rgb, "RGB").convert("P"),
        "sixteen.png": Image.fromarray(np.full((8, 12), 40000, np.uint16)),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        out = read_image(str(tmp_path / name))
        assert out.shape == (8, 12, 3) and out.dtype == np.uint8, name
    assert read_image(str(tmp_path / "rgba.png"))[0, 0].tolist() == [200, 0, 0]  # RGB order, not BGR
    assert read_image(str(tmp_path / "palette.png"))[0, 0, 0] > 150
    assert abs(int(read_image(str(tmp_path / "sixteen.png"))[0, 0, 0]) - 40000 // 257) <= 1


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(np.zeros((10, 30, 3), np.uint8))  # 30 wide, 10 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees for display
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert read_image(str(tmp_path / "rot.jpg")).shape[:2] == (30, 10)
    assert read_image_size(str(tmp_path / "rot.jpg")) == (10, 30)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found: .*nope.jpg"):
        read_image(str(tmp_path / "nope.jpg"))
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="cannot decode.*bad.jpg"):
        read_image(str(tmp_path / "bad.jpg"))
