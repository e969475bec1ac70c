"The mask-grounded describer reads image and mask files as the data loader does."
from PIL import Image

from kanoclip.data import load_pair
from kanoclip.describe import describe_mask, mask_properties
from replicas import box_mask, save, texture


def test_files_are_read_as_a_pair_the_mask_turned_with_its_image(tmp_path):
    "A photo stored sideways (EXIF orientation 6) and a PNG mask of its stored pixels: described as `load_pair` reads them."
    a = texture((90, 60)); a[5:15, 5:25] = 250                                  # bright defect, top left of the stored pixels
    exif = Image.Exif(); exif[0x0112] = 6                                        # shown turned 90 degrees clockwise
    im = save(Image.fromarray(a).convert("RGB"), tmp_path / "x.jpg", exif=exif, quality=95)
    mk = save(box_mask((90, 60), (5, 5, 25, 15)), tmp_path / "x_mask.png")
    p = mask_properties(mk, im)
    assert p["location"] == "upper right" and p == mask_properties(*load_pair(im, mk)[::-1])   # upright: top right
    assert describe_mask(im, mk, "tile") == describe_mask(*load_pair(im, mk), "tile")
    assert "brighter than its surroundings" in describe_mask(im, mk, "tile")
