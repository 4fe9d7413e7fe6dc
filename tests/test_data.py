"""Tests for core.data: a folder as a whole -> which files load, which are skipped and why,
duplicates and exclusions, the manifest, both caches, and the tf.data batches.

The main fixture is an album the tests generate holding one file of every kind people
keep photos as (colour modes, formats, camera rotation, odd names), broken files and
operating-system clutter. Faces come from scikit-image's bundled LFW subset.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.data
import core.decode
from conftest import write_blob_faces
from core.config import TrainConfig
from core.data import (
    EXCLUDED_BY_USER,
    DatasetError,
    clear_cache,
    load_for_config,
    load_folder,
    load_image,
    load_image_bytes,
    make_training_dataset,
    scan_folder,
    suggest_resolution,
)
from core.duplicates import Duplicate
from core.pixel_cache import PixelCache
from core.runs import RunDir
from pictures import (
    black_and_white_halves,
    encoded,
    face_on_grey_canvas,
    lfw_face,
    lfw_face_rgb,
    noise,
    save_with_orientation,
    truncated,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
RESOLUTION_PX = 16
SIDE_PX = 32  # most album pictures are squares this big, so padding bars do not make them alike
TINY_MEGAPIXEL_LIMIT = 0.05  # so a 400x300 picture is "too large" without writing a huge file

# (relative path, PIL format, PIL mode) of every usable file in the album, in file order.
ALBUM_USABLE = [
    ("black_and_white.png", "PNG", "RGB"),
    ("cmyk.jpg", "JPEG", "CMYK"),
    ("deep_gray.png", "PNG", "I;16"),
    ("gray.png", "PNG", "L"),
    ("gray_alpha.png", "PNG", "LA"),
    ("gray_copy.png", "PNG", "L"),
    ("moving.gif", "GIF", "P"),
    ("nested/deeper/still/face.png", "PNG", "RGB"),
    ("no_extension", "JPEG", "RGB"),
    ("one_bit.bmp", "BMP", "1"),
    ("palette.png", "PNG", "P"),
    ("palette_transparent.gif", "GIF", "P"),
    ("photo.webp", "WEBP", "RGB"),
    ("png_named.jpg", "PNG", "RGB"),
    ("reference.png", "PNG", "RGB"),
    ("reference_small.jpg", "JPEG", "RGB"),
    ("rgba.png", "PNG", "RGBA"),
    ("scan.tif", "TIFF", "RGB"),
    ("sideways.jpg", "JPEG", "RGB"),
    ("Ålbum été/фото 1.png", "PNG", "RGB"),
]
ALBUM_DUPLICATES = {
    "gray_copy.png": "exact duplicate of gray.png",
    "reference_small.jpg": "near duplicate of reference.png",
}
ALBUM_SKIPPED = {
    "IMG_0001.heic": "HEIC/HEIF photo, which PIL cannot read; export it as JPEG",
    "empty.jpg": "empty file (0 bytes)",
    "huge.png": "too large: 400x300 = 0.1 MP (limit 0.05 MP)",
    "notes.txt": "not an image PIL can read",
    "truncated.jpg": "truncated or corrupt JPEG image: ",
}  # each reason starts with this text
ALBUM_CLUTTER = [
    ".DS_Store",
    "._gray.png",
    "Thumbs.db",
    "desktop.ini",
    "README.txt",
    ".hidden/secret.png",
    "__MACOSX/._gray.png",
    "__MACOSX/album/face.png",
    "nested/.DS_Store",
]


def transparent_where(picture: Image.Image, mask: np.ndarray) -> Image.Image:
    """The picture as RGBA with the mask's pixels fully transparent (and white underneath)."""
    rgba = np.asarray(picture.convert("RGBA")).copy()
    rgba[mask] = (255, 255, 255, 0)
    return Image.fromarray(rgba)


def write_album(folder: Path) -> None:
    """One file of every kind, named as in ALBUM_USABLE, ALBUM_SKIPPED and ALBUM_CLUTTER."""
    rows, columns = np.mgrid[0:SIDE_PX, 0:SIDE_PX]
    left_half, top_half = columns < SIDE_PX // 2, rows < SIDE_PX // 2

    def face(index: int) -> Image.Image:
        return lfw_face_rgb(index, SIDE_PX, SIDE_PX)

    def save(relative: str, picture: Image.Image, image_format: str | None = None, **options) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, format=image_format, **options)

    # Usable, one of each colour mode and format.
    save("black_and_white.png", Image.fromarray(black_and_white_halves(RESOLUTION_PX)))
    save("cmyk.jpg", face(6).convert("CMYK"), quality=95)
    save("deep_gray.png", Image.fromarray(np.asarray(face(8).convert("L")).astype(np.uint16) * 257))
    save("gray.png", face(1).convert("L"))
    (folder / "gray_copy.png").write_bytes((folder / "gray.png").read_bytes())
    save("gray_alpha.png", transparent_where(face(2), top_half).convert("LA"))
    frames = [Image.new("RGB", (20, 20), colour) for colour in ("red", "lime", "blue")]
    save("moving.gif", frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0)
    save("nested/deeper/still/face.png", face(16))
    save("no_extension", face(14), "JPEG", quality=95)
    save("one_bit.bmp", face(7).convert("1"))
    save("palette.png", face(3).convert("P", palette=Image.Palette.ADAPTIVE))
    palette_picture = face(4).convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    palette_pixels = np.asarray(palette_picture).copy()
    palette_pixels[top_half & left_half] = 255  # the one unused index, made transparent
    with_transparency = Image.fromarray(palette_pixels, mode="P")
    with_transparency.putpalette(palette_picture.getpalette())
    save("palette_transparent.gif", with_transparency, transparency=255)
    save("photo.webp", face(12), lossless=True)
    save("png_named.jpg", face(13), "PNG")
    reference = lfw_face_rgb(18, 64, 64)
    save("reference.png", reference)
    near_copy = reference.resize((48, 48), Image.Resampling.BILINEAR)
    save("reference_small.jpg", near_copy, quality=70)
    save("rgba.png", transparent_where(face(5), left_half))
    save("scan.tif", face(11))
    save_with_orientation(lfw_face_rgb(9, 48, 24), folder / "sideways.jpg", 6)
    save("Ålbum été/фото 1.png", face(15))

    # Unusable.
    (folder / "IMG_0001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(200))
    (folder / "empty.jpg").write_bytes(b"")
    save("huge.png", noise(400, 300))
    (folder / "notes.txt").write_text("camera settings: f/2.8, 1/250 s\n")
    (folder / "truncated.jpg").write_bytes(truncated(encoded(noise(SIDE_PX, SIDE_PX), "JPEG")))

    # Clutter, some of it real pictures that must stay out all the same.
    for relative in ALBUM_CLUTTER:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative.endswith(".png") and "._" not in relative:
            face(30).save(path)
        else:
            path.write_bytes(b"\x00\x05\x16\x07 clutter")


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def album(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(core.decode, "MAX_SOURCE_MEGAPIXELS", TINY_MEGAPIXEL_LIMIT)
    folder = tmp_path / "My album"
    write_album(folder)
    return folder


@pytest.fixture
def photos(tmp_path) -> Path:
    """An empty folder of its own: tmp_path itself also holds the test's pixel cache."""
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


@pytest.fixture
def decode_calls(monkeypatch) -> list[Path]:
    """Every path core.data decodes from now on (disk cache hits decode nothing)."""
    calls: list[Path] = []
    real_decode_image = core.data.decode_image

    def counting_decode_image(path, *arguments, **keywords):
        calls.append(Path(path))
        return real_decode_image(path, *arguments, **keywords)

    monkeypatch.setattr(core.data, "decode_image", counting_decode_image)
    return calls


def relative_names(dataset, records=None) -> list[str]:
    return [record.relative_path for record in (dataset.records if records is None else records)]


def record_named(dataset, relative: str):
    (record,) = [record for record in dataset.records if record.relative_path == relative]
    return record


def square_of(dataset, relative: str) -> np.ndarray:
    return dataset.all_images[relative_names(dataset).index(relative)]


def skipped_reasons(dataset) -> dict[str, str]:
    folder = dataset.folder
    return {skipped.path.relative_to(folder).as_posix(): skipped.reason for skipped in dataset.skipped}


def touch_later(path: Path) -> None:
    """Move the modification time on, as filesystems with coarse clocks may not."""
    modified_ns = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(modified_ns, modified_ns))


# The album: what loads, what is skipped, what is ignored.


def test_the_album_loads_every_usable_file_and_leaves_out_its_duplicates(album):
    dataset = load_folder(album, RESOLUTION_PX)

    assert relative_names(dataset) == [name for name, _, _ in ALBUM_USABLE]
    assert len(dataset.records) == 20
    assert dataset.count == 18
    assert dataset.images.shape == (18, RESOLUTION_PX, RESOLUTION_PX, 3)
    assert dataset.images.dtype == np.uint8
    assert not dataset.images.flags.writeable
    assert dataset.folder == album.resolve()


def test_the_format_and_mode_of_each_album_file_come_from_its_content(album):
    dataset = load_folder(album, RESOLUTION_PX)

    found = [(record.relative_path, record.source_format, record.source_mode) for record in dataset.records]
    assert found == ALBUM_USABLE


def test_every_unusable_album_file_is_skipped_with_its_reason(album):
    dataset = load_folder(album, RESOLUTION_PX)

    reasons = skipped_reasons(dataset)
    assert sorted(reasons) == sorted(ALBUM_SKIPPED)
    for name, reason_start in ALBUM_SKIPPED.items():
        assert reasons[name].startswith(reason_start), name
    assert "HEIC" in reasons["IMG_0001.heic"]
    assert "400x300" in reasons["huge.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_a_named_pipe_and_a_dangling_link_are_skipped_with_a_reason_instead_of_blocking(tmp_path):
    folder = tmp_path / "photos"
    write_blob_faces(folder, 2)
    os.mkfifo(folder / "pipe.png")  # reading it would wait for a writer forever
    (folder / "gone.png").symlink_to(tmp_path / "deleted.png")

    dataset = load_folder(folder, RESOLUTION_PX)

    reasons = skipped_reasons(dataset)
    assert reasons["pipe.png"].startswith("not a regular file")
    assert reasons["gone.png"].startswith("a link to a file that is not there") and "deleted.png" in reasons["gone.png"]
    assert len(dataset.records) == 2


def test_operating_system_clutter_is_neither_loaded_nor_listed_as_skipped(album):
    dataset = load_folder(album, RESOLUTION_PX)

    scanned = [path.relative_to(album).as_posix() for path in scan_folder(album)]
    assert sorted(scanned) == sorted([name for name, _, _ in ALBUM_USABLE] + list(ALBUM_SKIPPED))
    mentioned = json.dumps(dataset.manifest(), ensure_ascii=False)
    for relative in ALBUM_CLUTTER:
        assert relative not in scanned
        assert f'"{relative}"' not in mentioned
    assert "secret.png" not in mentioned and "__MACOSX" not in mentioned


def test_scan_folder_returns_candidate_paths_sorted_by_relative_path(album):
    scanned = scan_folder(album)

    assert all(isinstance(path, Path) and path.is_file() for path in scanned)
    relative = [path.relative_to(album).as_posix() for path in scanned]
    assert relative == sorted(relative)
    assert "nested/deeper/still/face.png" in relative  # sub-folders are searched


def test_exact_and_near_duplicates_are_left_out_saying_which_file_they_repeat(album):
    dataset = load_folder(album, RESOLUTION_PX)

    names = relative_names(dataset)
    assert dataset.found_duplicates == (
        Duplicate(names.index("gray_copy.png"), names.index("gray.png"), "exact"),
        Duplicate(names.index("reference_small.jpg"), names.index("reference.png"), "near"),
    )
    left_out = {record.relative_path: record.note for record in dataset.records if not record.included}
    assert left_out == ALBUM_DUPLICATES
    training_names = [path.relative_to(album.resolve()).as_posix() for path in dataset.paths]
    assert "gray.png" in training_names and "reference.png" in training_names
    assert not set(ALBUM_DUPLICATES) & set(training_names)


def test_excluding_the_original_of_a_duplicate_pair_trains_on_its_copy_instead(album):
    dataset = load_folder(album, RESOLUTION_PX, exclude=["gray.png"])

    assert record_named(dataset, "gray.png").note == "excluded by you"
    assert record_named(dataset, "gray_copy.png").included


def test_keep_duplicates_trains_on_every_copy_but_still_reports_them(album):
    dataset = load_folder(album, RESOLUTION_PX, keep_duplicates=True)

    assert dataset.count == 20
    assert all(record.included and record.note == "" for record in dataset.records)
    assert len(dataset.found_duplicates) == 2


def test_the_first_frame_of_an_animated_gif_is_used(album):
    dataset = load_folder(album, RESOLUTION_PX)

    assert (square_of(dataset, "moving.gif") == (255, 0, 0)).all()


def test_a_camera_rotated_photo_in_the_album_is_loaded_upright(album):
    dataset = load_folder(album, RESOLUTION_PX)

    record = record_named(dataset, "sideways.jpg")
    assert record.source_size == (24, 48)
    assert record.preparation == "padded, 24x48 -> 16x16"
    square = square_of(dataset, "sideways.jpg")
    assert square[:, :3].max() == 0 and square[:, -3:].max() == 0  # bars left and right: it is tall


@pytest.mark.parametrize(("background", "value"), [("black", 0), ("white", 255)])
def test_transparent_album_pictures_are_composited_on_the_chosen_background(album, background, value):
    dataset = load_folder(album, RESOLUTION_PX, background=background)

    half = RESOLUTION_PX // 2
    edge = half - 3  # the resampling filter reaches 3 pixels across the face's edge
    assert (square_of(dataset, "rgba.png")[:, :edge] == value).all()  # transparent left half
    assert (square_of(dataset, "gray_alpha.png")[:edge] == value).all()  # transparent top half
    assert (square_of(dataset, "palette_transparent.gif")[:edge, :edge] == value).all()
    assert square_of(dataset, "rgba.png")[:, half + 2 :].std() > 10  # the face, whatever the background


# Single pictures: pixel values exactly.


def test_an_uploaded_photo_is_prepared_exactly_as_the_same_file_in_a_folder(tmp_path):
    content = encoded(lfw_face_rgb(3, 60, 40), "PNG")
    (tmp_path / "face.png").write_bytes(content)

    from_upload = load_image_bytes(content, 32, "pad", "grey")

    np.testing.assert_array_equal(from_upload, load_image(tmp_path / "face.png", 32, "pad", "grey")[0])
    with pytest.raises(core.decode.UnusableImage):
        load_image_bytes(b"not a photo", 32)


def test_transparent_pixels_become_black_by_default_and_white_when_asked(tmp_path):
    path = tmp_path / "transparent.png"
    pixels = np.zeros((20, 20, 4), dtype=np.uint8)
    pixels[..., :3] = (255, 255, 255)
    pixels[:, 10:, :3] = (30, 60, 90)
    pixels[:, 10:, 3] = 255  # right half opaque, left half fully transparent white
    Image.fromarray(pixels).save(path)

    on_black, _ = load_image(path, 20)
    on_white, _ = load_image(path, 20, background="white")

    assert (on_black[:, :10] == 0).all()
    assert (on_white[:, :10] == 255).all()
    assert (on_black[:, 10:] == (30, 60, 90)).all() and (on_white[:, 10:] == (30, 60, 90)).all()


def test_pad_bars_take_the_background_colour_too(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (64, 32), (10, 200, 30)).save(path)

    on_black, _ = load_image(path, RESOLUTION_PX, "pad")
    on_grey, _ = load_image(path, RESOLUTION_PX, "pad", background="grey")

    assert (on_black[:4] == 0).all() and (on_black[-4:] == 0).all()
    assert (on_grey[:4] == 128).all() and (on_grey[-4:] == 128).all()
    assert (on_black[4:-4] == (10, 200, 30)).all()


def test_exif_rotation_is_applied_before_cropping(tmp_path):
    # Stored wide with the white half on top; turned upright (90 degrees clockwise) it is
    # tall with the white half on the right, so its centre square is black left, white right.
    stored = np.zeros((48, 96, 3), dtype=np.uint8)
    stored[:24] = 255
    path = tmp_path / "sideways.jpg"
    save_with_orientation(Image.fromarray(stored), path, 6)

    square, original_size = load_image(path, RESOLUTION_PX, "crop")

    assert original_size == (48, 96)
    assert square[:, :6].max() < 30 and square[:, -6:].min() > 225
    assert np.abs(square[:4].astype(int) - square[-4:]).max() < 30  # no top/bottom split left


def test_a_jpeg_without_extension_and_a_png_named_jpg_both_load(photos):
    (photos / "IMG_20240101").write_bytes(encoded(lfw_face_rgb(0, 30, 30), "JPEG"))
    (photos / "really_a_png.jpg").write_bytes(encoded(lfw_face_rgb(1, 30, 30), "PNG"))

    dataset = load_folder(photos, RESOLUTION_PX)

    assert [(record.relative_path, record.source_format) for record in dataset.records] == [
        ("IMG_20240101", "JPEG"),
        ("really_a_png.jpg", "PNG"),
    ]


def test_face_framing_crops_around_a_face_and_says_when_it_found_none(photos):
    face_on_grey_canvas().save(photos / "portrait.png")
    noise(360, 240).save(photos / "static.png")

    dataset = load_folder(photos, RESOLUTION_PX, fit_mode="face")

    preparations = {record.relative_path: record.preparation for record in dataset.records}
    assert preparations["portrait.png"].startswith("face crop")
    assert preparations["static.png"] == "no face found, centre crop, 360x240 -> 16x16"
    centre_crop = load_folder(photos, RESOLUTION_PX, fit_mode="crop")
    np.testing.assert_array_equal(square_of(dataset, "static.png"), square_of(centre_crop, "static.png"))


# The batches training reads (the only tests that load TensorFlow).


def test_the_first_training_batch_is_float32_with_black_at_minus_one_and_white_at_plus_one(tmp_path, album):
    (tmp_path / "halves").mkdir()
    Image.fromarray(black_and_white_halves(RESOLUTION_PX)).save(tmp_path / "halves" / "halves.png")
    halves = load_folder(tmp_path / "halves", RESOLUTION_PX, fit_mode="crop")
    batch_size = 4  # more than the one image: batches run across passes

    batch = next(iter(make_training_dataset(halves.images, batch_size=batch_size, seed=0))).numpy()

    assert batch.dtype == np.float32
    assert batch.shape == (batch_size, RESOLUTION_PX, RESOLUTION_PX, 3)
    assert (batch[:, :, : RESOLUTION_PX // 2] == -1.0).all()
    assert (batch[:, :, RESOLUTION_PX // 2 :] == 1.0).all()

    album_dataset = load_folder(album, RESOLUTION_PX)
    whole_pass = album_dataset.count  # one batch holds every image, in whatever order
    album_batches = make_training_dataset(album_dataset.images, batch_size=whole_pass, seed=0)
    album_batch = next(iter(album_batches)).numpy()
    assert album_batch.dtype == np.float32
    assert album_batch.min() == -1.0 and album_batch.max() == 1.0  # e.g. one_bit.bmp


def test_eight_bit_and_sixteen_bit_copies_give_the_same_square_and_the_same_tensor(photos):
    picture = np.asarray(lfw_face(20, SIDE_PX))
    Image.fromarray(picture).save(photos / "eight_bit.png")
    Image.fromarray(picture.astype(np.uint16) * 257).save(photos / "sixteen_bit.png")

    dataset = load_folder(photos, RESOLUTION_PX, keep_duplicates=True)

    assert [record.source_mode for record in dataset.records] == ["L", "I;16"]
    eight_bit, sixteen_bit = dataset.images
    assert eight_bit.max() > 150 and eight_bit.min() < 100  # a real picture, not clipped
    np.testing.assert_array_equal(eight_bit, sixteen_bit)
    batch = next(iter(make_training_dataset(dataset.images, batch_size=2, seed=0))).numpy()
    np.testing.assert_array_equal(batch[0], batch[1])
    # The same picture twice, so without keep_duplicates the second is a near duplicate.
    assert load_folder(photos, RESOLUTION_PX).count == 1


@pytest.mark.parametrize(("image_count", "batch_size"), [(3, 8), (5, 4)])
def test_full_batches_come_from_folders_smaller_than_or_not_a_multiple_of_the_batch(
    photos, image_count, batch_size
):
    write_blob_faces(photos, image_count, size_px=RESOLUTION_PX)
    dataset = load_folder(photos, RESOLUTION_PX)
    passes = 4

    batches = list(
        make_training_dataset(dataset.images, batch_size=batch_size, seed=0).take(passes * image_count)
    )

    assert all(batch.shape == (batch_size, RESOLUTION_PX, RESOLUTION_PX, 3) for batch in batches)
    seen = np.concatenate([batch.numpy() for batch in batches])  # passes * batch_size whole passes
    as_model_range = dataset.images.astype(np.float32) / 127.5 - 1.0
    times_seen = [int((seen == image).all(axis=(1, 2, 3)).sum()) for image in as_model_range]
    assert times_seen == [passes * batch_size] * image_count  # every image equally often


# Folders training cannot use.


def test_a_folder_with_nothing_usable_names_the_folder_and_the_first_skipped_files(tmp_path):
    folder = tmp_path / "broken photos"
    folder.mkdir()
    (folder / "IMG_0001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("hello\n")
    (folder / "truncated.jpg").write_bytes(truncated(encoded(noise(SIDE_PX, SIDE_PX), "JPEG")))
    (folder / ".DS_Store").write_bytes(b"Bud1")

    with pytest.raises(DatasetError) as raised:
        load_folder(folder, RESOLUTION_PX)

    message = str(raised.value)
    assert f"No usable image in folder '{folder.resolve()}'" in message
    assert "4 file(s) skipped" in message
    assert "IMG_0001.heic: HEIC/HEIF photo" in message
    assert "empty.jpg: empty file (0 bytes)" in message
    assert "notes.txt: not an image PIL can read" in message
    assert "and 1 more" in message
    assert ".DS_Store" not in message


def test_a_missing_folder_raises_a_dataset_error_naming_it(tmp_path):
    with pytest.raises(DatasetError, match="no_such_photos.*does not exist"):
        load_folder(tmp_path / "no_such_photos", RESOLUTION_PX)


def test_a_file_given_as_the_folder_raises_a_dataset_error_saying_so(tmp_path):
    (tmp_path / "one.png").write_bytes(encoded(noise(8, 8), "PNG"))

    with pytest.raises(DatasetError, match="one.png' is a file, not a folder"):
        load_folder(tmp_path / "one.png", RESOLUTION_PX)


def test_a_folder_of_only_clutter_says_it_contains_no_image_files(tmp_path):
    folder = tmp_path / "empty_album"
    (folder / "__MACOSX").mkdir(parents=True)
    (folder / "Thumbs.db").write_bytes(b"\x00")

    with pytest.raises(DatasetError, match="empty_album' contains no image files"):
        load_folder(folder, RESOLUTION_PX)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fit_mode": "stretch"}, "fit_mode='stretch'"),
        ({"background": "pink"}, "background='pink'"),
        ({"resolution_px": 0}, "resolution_px=0"),
    ],
)
def test_unknown_options_are_rejected_by_name(photos, options, message):
    with pytest.raises(ValueError, match=message):
        load_folder(photos, **({"resolution_px": RESOLUTION_PX} | options))


# Exclusions.


def test_an_excluded_file_is_left_out_of_training_but_kept_in_the_records(photos):
    write_blob_faces(photos, 3)
    (photos / "a.png").write_bytes((photos / "face_000.png").read_bytes())
    (photos / "face_000.png").unlink()

    dataset = load_folder(photos, RESOLUTION_PX, exclude=["a.png"])

    assert dataset.count == 2
    assert photos.resolve() / "a.png" not in dataset.paths
    record = record_named(dataset, "a.png")
    assert not record.included
    assert record.note == EXCLUDED_BY_USER == "excluded by you"
    assert len(dataset.all_images) == 3


def test_excluding_every_file_raises_a_dataset_error_that_says_so(photos):
    write_blob_faces(photos, 2)

    with pytest.raises(DatasetError, match="is excluded or a duplicate"):
        load_folder(photos, RESOLUTION_PX, exclude=["face_000.png", "face_001.png"])


def test_exclusions_name_files_by_their_relative_path_with_forward_slashes(album):
    excluded = ["nested/deeper/still/face.png", "Ålbum été/фото 1.png"]

    dataset = load_folder(album, RESOLUTION_PX, exclude=excluded)

    assert dataset.count == 16
    assert record_named(dataset, "nested/deeper/still/face.png").note == EXCLUDED_BY_USER
    assert record_named(dataset, "Ålbum été/фото 1.png").note == EXCLUDED_BY_USER


def test_load_for_config_passes_the_configs_selection_and_background(tmp_path):
    folder = tmp_path / "faces"
    write_blob_faces(folder, 3)
    config = TrainConfig(
        data_dir="faces", resolution_px=RESOLUTION_PX, background="white", exclude=("face_001.png",)
    )

    dataset = load_for_config(config, tmp_path)

    assert (dataset.background, dataset.count) == ("white", 2)
    assert record_named(dataset, "face_001.png").note == EXCLUDED_BY_USER


# The manifest.


def test_the_manifest_lists_every_file_with_its_hash_preparation_and_whether_it_was_used(tmp_path, album):
    dataset = load_folder(album, RESOLUTION_PX, exclude=["scan.tif"])

    manifest = dataset.manifest()

    options = (manifest["resolution_px"], manifest["fit_mode"], manifest["background"])
    assert options == (RESOLUTION_PX, "pad", "black")
    assert manifest["folder"] == str(album.resolve())
    assert manifest["fingerprint"] == dataset.fingerprint
    rows = {row["file"]: row for row in manifest["images"]}
    assert list(rows) == [name for name, _, _ in ALBUM_USABLE]
    for name, image_format, mode in ALBUM_USABLE:
        row, content = rows[name], (album / name).read_bytes()
        assert row["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert row["size_bytes"] == len(content), name
        assert (row["format"], row["mode"]) == (image_format, mode)
        expected_note = {"scan.tif": EXCLUDED_BY_USER, **ALBUM_DUPLICATES}.get(name, "")
        assert (row["included"], row["note"]) == (expected_note == "", expected_note), name
    assert rows["cmyk.jpg"]["preparation"] == "padded, 32x32 -> 16x16"
    assert (rows["sideways.jpg"]["width"], rows["sideways.jpg"]["height"]) == (24, 48)
    assert rows["sideways.jpg"]["preparation"] == "padded, 24x48 -> 16x16"
    skipped = {row["file"]: row["reason"] for row in manifest["skipped"]}
    assert skipped == skipped_reasons(dataset)
    assert sorted(skipped) == sorted(ALBUM_SKIPPED)

    config = TrainConfig(data_dir=str(album), resolution_px=RESOLUTION_PX)
    run = RunDir.create(tmp_path / "runs", config, dataset)

    written = json.loads(run.manifest_path.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(manifest))
    assert run.read_manifest() == written
    assert "фото 1.png" in run.manifest_path.read_text(encoding="utf-8")  # readable, not \u-escaped


def test_the_fingerprint_depends_on_included_files_and_every_preparation_option(photos):
    write_blob_faces(photos, 3)
    base = load_folder(photos, RESOLUTION_PX).fingerprint

    assert load_folder(photos, RESOLUTION_PX).fingerprint == base
    others = [
        load_folder(photos, 32).fingerprint,
        load_folder(photos, RESOLUTION_PX, fit_mode="crop").fingerprint,
        load_folder(photos, RESOLUTION_PX, background="white").fingerprint,
        load_folder(photos, RESOLUTION_PX, exclude=["face_002.png"]).fingerprint,
    ]
    assert len({base, *others}) == 5


# The caches.


def test_loading_the_same_folder_again_in_process_returns_the_same_object(photos):
    write_blob_faces(photos, 4)

    first = load_folder(photos, RESOLUTION_PX)

    assert load_folder(photos, RESOLUTION_PX) is first


def test_after_clear_cache_every_square_comes_from_the_disk_cache(tmp_path, decode_calls):
    folder = tmp_path / "faces"
    write_blob_faces(folder, 4)
    pixel_cache = PixelCache(tmp_path / "cache")
    first = load_folder(folder, RESOLUTION_PX, pixel_cache=pixel_cache)
    assert len(decode_calls) == 4

    clear_cache()
    decode_calls.clear()
    again = load_folder(folder, RESOLUTION_PX, pixel_cache=pixel_cache)

    assert decode_calls == []
    assert again is not first
    np.testing.assert_array_equal(again.images, first.images)
    assert again.records == first.records
    assert again.fingerprint == first.fingerprint


def test_the_disk_cache_defaults_to_the_folder_the_environment_names(tmp_path, decode_calls):
    folder = tmp_path / "faces"
    write_blob_faces(folder, 2)

    load_folder(folder, RESOLUTION_PX)
    clear_cache()
    load_folder(folder, RESOLUTION_PX)

    assert len(decode_calls) == 2  # the second load decoded nothing
    assert len(list((tmp_path / "pixel_cache").rglob("*.npz"))) == 2  # set by conftest


def test_changing_one_file_decodes_only_that_file_and_changes_the_fingerprint(tmp_path, decode_calls):
    folder = tmp_path / "faces"
    paths = write_blob_faces(folder, 4)
    pixel_cache = PixelCache(tmp_path / "cache")
    first = load_folder(folder, RESOLUTION_PX, pixel_cache=pixel_cache)

    changed = paths[2]
    Image.fromarray(255 - np.asarray(Image.open(changed))).save(changed)
    touch_later(changed)
    decode_calls.clear()
    after_change = load_folder(folder, RESOLUTION_PX, pixel_cache=pixel_cache)

    assert decode_calls == [changed.resolve()]
    assert after_change.fingerprint != first.fingerprint
    unchanged = [0, 1, 3]
    np.testing.assert_array_equal(after_change.images[unchanged], first.images[unchanged])
    assert not np.array_equal(after_change.images[2], first.images[2])


@pytest.mark.parametrize(
    "changed_option", [{"resolution_px": 32}, {"fit_mode": "crop"}, {"background": "white"}]
)
def test_changing_resolution_fit_or_background_misses_the_disk_cache(tmp_path, decode_calls, changed_option):
    folder = tmp_path / "faces"
    write_blob_faces(folder, 3, size_px=20)
    pixel_cache = PixelCache(tmp_path / "cache")
    options = {"resolution_px": RESOLUTION_PX, "fit_mode": "pad", "background": "black"}
    load_folder(folder, **options, pixel_cache=pixel_cache)
    clear_cache()
    decode_calls.clear()

    other = load_folder(folder, **(options | changed_option), pixel_cache=pixel_cache)

    assert len(decode_calls) == 3
    for name, value in changed_option.items():
        assert getattr(other, name) == value


def test_a_damaged_disk_cache_is_ignored_and_the_folder_reloads_correctly(tmp_path, decode_calls):
    folder = tmp_path / "faces"
    write_blob_faces(folder, 3)
    pixel_cache = PixelCache(tmp_path / "cache")
    first = load_folder(folder, RESOLUTION_PX, pixel_cache=pixel_cache)
    entries = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 3
    entries[0].write_bytes(truncated(entries[0].read_bytes()))
    entries[1].write_bytes(b"garbage")
    wrong_shape = io.BytesIO()
    np.savez(wrong_shape, pixels=np.zeros((4, 4, 3), dtype=np.uint8), metadata=np.array("{}"))
    entries[2].write_bytes(wrong_shape.getvalue())

    clear_cache()
    decode_calls.clear()
    again = load_folder(folder, RESOLUTION_PX, pixel_cache=pixel_cache)

    assert len(decode_calls) == 3
    np.testing.assert_array_equal(again.images, first.images)
    assert again.records == first.records


def test_progress_is_reported_for_every_file_looked_at(album):
    progress: list[tuple[int, int]] = []

    load_folder(album, RESOLUTION_PX, on_progress=lambda done, total: progress.append((done, total)))

    total = len(ALBUM_USABLE) + len(ALBUM_SKIPPED)
    assert progress == [(done, total) for done in range(1, total + 1)]


# Resolution suggestions and the shipped dataset.


def test_the_suggested_resolution_for_tiny_faces_is_32():
    assert suggest_resolution([(25, 25)] * 100) == 32


def test_the_suggested_resolution_follows_the_median_short_side_up_to_the_preferred_maximum():
    assert suggest_resolution([(50, 70), (52, 90), (1000, 40)]) == 56
    assert suggest_resolution([(3000, 2000)] * 3) == 64
    assert suggest_resolution([(3000, 2000)] * 3, prefer_max_px=128) == 128


def test_the_default_dataset_loads_one_hundred_faces_at_32_px_with_nothing_skipped():
    dataset = load_folder(REPOSITORY_ROOT / "GANs_dataset", 32)

    assert dataset.count == 100
    assert dataset.skipped == ()
    assert dataset.images.shape == (100, 32, 32, 3)
    assert suggest_resolution(dataset.source_sizes) == 32


def test_a_folder_with_more_files_than_an_album_has_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(core.data, "MAX_FILES_IN_FOLDER", 3)
    write_blob_faces(tmp_path / "home", 5)

    with pytest.raises(DatasetError, match=r"more than 3 files.*choose the folder that holds just your photos"):
        load_folder(tmp_path / "home", RESOLUTION_PX)


def test_a_file_name_that_is_not_utf8_loads_under_a_printable_name_and_can_be_trained_on(tmp_path):
    folder = tmp_path / "photos"
    write_blob_faces(folder, 2)
    # Bytes from a Latin-1 or old Windows disk: Python sees them as lone surrogates.
    os.rename(folder / "face_001.png", os.path.join(os.fsencode(folder), b"caf\xe9 \xff.png"))
    (folder / os.fsdecode(b"broken \xfe.jpg")).write_bytes(b"not a picture")

    dataset = load_folder(folder, RESOLUTION_PX)

    assert [record.relative_path for record in dataset.records] == ["caf\\xe9 \\xff.png", "face_000.png"]
    skipped_names = [row["file"] for row in dataset.manifest()["skipped"]]
    assert skipped_names == ["broken \\xfe.jpg"]
    for name in [*(record.relative_path for record in dataset.records), *skipped_names]:
        name.encode("utf-8")  # printable: no lone surrogates left
    assert dataset.fingerprint
    run = RunDir.create(tmp_path / "runs", TrainConfig(data_dir=str(folder), resolution_px=RESOLUTION_PX), dataset)
    assert "caf\\\\xe9" in run.manifest_path.read_text(encoding="utf-8")
    excluded = load_folder(folder, RESOLUTION_PX, exclude=["caf\\xe9 \\xff.png"])
    assert excluded.count == 1
