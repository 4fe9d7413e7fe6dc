"""Tests for core.uploads: uploads and zip archives become a new dataset folder, written
whole or not at all, never over an existing folder and never outside the datasets directory.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile

import numpy as np
import pytest

import core.uploads
from core.data import load_folder
from core.uploads import UploadError, save_upload
from pictures import encoded, lfw_face, noise

FIXED_STAMP = "20250102-030405"


def png(index: int = 0) -> bytes:
    return encoded(lfw_face(index), "PNG")


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def everything_under(folder) -> list[str]:
    """Every file and folder below folder, hidden ones included."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


@pytest.fixture
def datasets_dir(tmp_path):
    return tmp_path / "datasets"


def test_uploaded_photos_are_written_into_a_new_folder_under_the_datasets_directory(datasets_dir):
    photos = [("first.png", png(0)), ("second.jpg", encoded(lfw_face(1), "JPEG"))]

    result = save_upload(photos, datasets_dir=datasets_dir)

    assert result.folder.parent == datasets_dir
    assert result.folder.name.startswith("upload-")
    assert result.saved == ["first.png", "second.jpg"]
    assert result.rejected == []
    for name, content in photos:
        assert (result.folder / name).read_bytes() == content
    folder_name = result.folder.name
    assert everything_under(datasets_dir) == [folder_name, *(f"{folder_name}/{name}" for name, _ in photos)]


def test_without_a_datasets_directory_uploads_go_to_the_one_the_environment_names(tmp_path):
    result = save_upload([("face.png", png())])

    assert result.folder.parent == tmp_path / "datasets"  # set by the autouse fixture in conftest


def test_an_upload_never_writes_into_an_existing_folder(datasets_dir, monkeypatch):
    monkeypatch.setattr(core.uploads.time, "strftime", lambda *arguments: FIXED_STAMP)
    existing = datasets_dir / f"upload-{FIXED_STAMP}"
    existing.mkdir(parents=True)
    (existing / "first.png").write_bytes(b"somebody else's photo")
    (datasets_dir / f"upload-{FIXED_STAMP}-1").mkdir()  # even an empty one stays untouched

    first = save_upload([("first.png", png(0))], datasets_dir=datasets_dir)
    second = save_upload([("first.png", png(1))], datasets_dir=datasets_dir)

    assert first.folder.name == f"upload-{FIXED_STAMP}-2"
    assert second.folder.name == f"upload-{FIXED_STAMP}-3"
    assert (existing / "first.png").read_bytes() == b"somebody else's photo"
    assert everything_under(existing) == ["first.png"]
    assert list((datasets_dir / f"upload-{FIXED_STAMP}-1").iterdir()) == []
    assert (first.folder / "first.png").read_bytes() == png(0)
    assert (second.folder / "first.png").read_bytes() == png(1)


def test_zip_archives_are_unpacked_keeping_their_sub_folders_and_unicode_names(datasets_dir):
    members = {"album/2019/été фото.png": png(0), "album/cover.png": png(1), "loose.png": png(2)}

    uploads = [("holiday.zip", zipped(members)), ("single.png", png(3))]

    result = save_upload(uploads, datasets_dir=datasets_dir)

    assert sorted(result.saved) == ["album/2019/été фото.png", "album/cover.png", "loose.png", "single.png"]
    for name, content in members.items():
        assert (result.folder / name).read_bytes() == content
    assert load_folder(result.folder, 16).count == 4


@pytest.mark.parametrize(
    "unsafe_name", ["../evil.png", "/absolute/evil.png", "album/../../evil.png", "..\\evil.png"]
)
def test_unsafe_paths_inside_a_zip_are_rejected_and_nothing_lands_outside_the_folder(
    tmp_path, datasets_dir, unsafe_name
):
    archive = zipped({unsafe_name: png(0), "good.png": png(1)})

    result = save_upload([("photos.zip", archive)], datasets_dir=datasets_dir)

    assert result.saved == ["good.png"]
    assert result.rejected == [(f"photos.zip/{unsafe_name}", "unsafe path inside the archive")]
    assert list(tmp_path.rglob("evil.png")) == []


def test_oversized_files_and_archive_members_are_rejected_and_listed(datasets_dir, monkeypatch):
    monkeypatch.setattr(core.uploads, "MAX_FILE_MB", 0.01)  # 10,000 bytes
    big = encoded(noise(100, 100), "BMP")  # 30 kB
    small = png(0)
    assert len(small) < 10_000 < len(big)
    archive = zipped({"inside/big.bmp": big, "inside/small.png": small})

    uploads = [("big.bmp", big), ("small.png", small), ("photos.zip", archive)]

    result = save_upload(uploads, datasets_dir=datasets_dir)

    assert result.saved == ["small.png", "inside/small.png"]
    assert result.rejected == [
        ("big.bmp", "0 MB is over 0.01 MB"),
        ("photos.zip/inside/big.bmp", "0 MB is over 0.01 MB"),
    ]


def test_archive_clutter_is_skipped_without_being_listed(datasets_dir):
    archive = zipped(
        {
            "__MACOSX/album/._face.png": b"\x00\x05\x16\x07",
            "album/.DS_Store": b"Bud1",
            "album/face.png": png(),
        }
    )

    result = save_upload([("from a mac.zip", archive)], datasets_dir=datasets_dir)

    assert result.saved == ["album/face.png"]
    assert result.rejected == []
    assert everything_under(result.folder) == ["album", "album/face.png"]


def test_two_files_with_the_same_name_are_both_kept(datasets_dir):
    uploads = [("face.png", png(0)), ("face.png", png(1)), ("photos.zip", zipped({"face.png": png(2)}))]

    result = save_upload(uploads, datasets_dir=datasets_dir)

    assert result.saved == ["face.png", "face (2).png", "face (3).png"]
    for name, index in zip(result.saved, range(3)):
        assert (result.folder / name).read_bytes() == png(index)


def test_names_lose_characters_no_file_system_accepts_but_keep_letters_of_any_script(datasets_dir):
    decomposed = unicodedata.normalize("NFD", "Ålbum été.png")
    uploads = [
        ('what?<is>:"this".png', png(0)),
        (decomposed, png(1)),
        ("../../up/there.png", png(2)),
        (" . ", png(3)),
    ]

    result = save_upload(uploads, datasets_dir=datasets_dir)

    assert result.saved == ["what__is___this_.png", "Ålbum été.png", "there.png"]
    assert unicodedata.is_normalized("NFC", result.saved[1])
    assert result.rejected == [(" . ", "the name has no usable characters")]


def test_an_upload_with_nothing_usable_raises_and_leaves_no_folder_behind(datasets_dir, monkeypatch):
    monkeypatch.setattr(core.uploads, "MAX_FILE_MB", 0.01)
    uploads = [
        ("huge.bmp", encoded(noise(100, 100), "BMP")),
        ("sneaky.zip", zipped({"../evil.png": png()})),
        ("fake.zip", b"not a zip archive"),
    ]

    with pytest.raises(UploadError) as raised:
        save_upload(uploads, datasets_dir=datasets_dir)

    message = str(raised.value)
    assert message.startswith("Nothing was saved from the upload")
    assert "huge.bmp: 0 MB is over 0.01 MB" in message
    assert "sneaky.zip/../evil.png: unsafe path inside the archive" in message
    assert "fake.zip: not a readable zip archive" in message
    assert everything_under(datasets_dir) == []  # no folder, not even the hidden staging one


def test_an_empty_upload_raises_and_leaves_no_folder_behind(datasets_dir):
    with pytest.raises(UploadError, match="no files"):
        save_upload([], datasets_dir=datasets_dir)

    assert everything_under(datasets_dir) == []


def test_an_upload_over_the_file_count_limit_raises_and_leaves_nothing(datasets_dir, monkeypatch):
    monkeypatch.setattr(core.uploads, "MAX_UPLOAD_FILES", 2)

    with pytest.raises(UploadError, match="more than 2 files"):
        save_upload([(f"face {index}.png", png(index)) for index in range(3)], datasets_dir=datasets_dir)

    assert everything_under(datasets_dir) == []


def test_an_archive_that_unpacks_over_the_total_limit_raises_before_it_is_inflated(datasets_dir, monkeypatch):
    monkeypatch.setattr(core.uploads, "MAX_UPLOAD_TOTAL_MB", 0.05)  # 50 kB
    compressible = np.zeros(40_000, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(f"zeros {index}.bin", compressible)
    assert len(buffer.getvalue()) < 1_000  # small to upload, 120 kB unpacked

    with pytest.raises(UploadError, match="over 0.05 MB"):
        save_upload([("bomb.zip", buffer.getvalue())], datasets_dir=datasets_dir)

    assert everything_under(datasets_dir) == []


def test_a_failure_in_the_middle_of_an_upload_leaves_nothing_behind(datasets_dir, monkeypatch):
    original_spend = core.uploads._Budget.spend

    def spend_then_fail(budget, size_bytes):
        original_spend(budget, size_bytes)
        if budget.files == 2:
            raise OSError("disk full")

    monkeypatch.setattr(core.uploads._Budget, "spend", spend_then_fail)
    uploads = [("one.png", png(0)), ("photos.zip", zipped({"a/two.png": png(1)}))]

    with pytest.raises(OSError, match="disk full"):
        save_upload(uploads, datasets_dir=datasets_dir)

    assert everything_under(datasets_dir) == []
