import os

import pytest

from iipy.errors import NotFound
from iipy.paths import PathResolver, strip_parent_refs, url_decode


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("a%20b", "a b"),
        ("a+b", "a b"),
        ("%2Fimages%2Fx.tif", "/images/x.tif"),
        ("%2fimages", "/images"),
        ("100%", "100%"),
        ("%zz", "%zz"),
        ("a%00b", "ab"),
        ("caf%C3%A9.tif", "café.tif"),
    ],
)
def test_url_decode_matches_iipsrv(raw, decoded):
    assert url_decode(raw) == decoded


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../etc/passwd", "etc/passwd"),
        ("a/../../b", "a/b"),
        ("....//x", "x"),
        ("..", ".."),
        ("..\\x", "..\\x"),
    ],
)
def test_parent_references_are_removed_repeatedly(raw, clean):
    assert strip_parent_refs(raw) == clean


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.tif").write_bytes(b"x")
    outside = tmp_path / "secret.tif"
    outside.write_bytes(b"x")
    os.symlink(outside, root / "link.tif")
    os.symlink(root / "sub", root / "alias")
    return root, outside


def test_path_inside_prefix_resolves(tree):
    root, _ = tree
    resolver = PathResolver(str(root) + "/")
    assert resolver.resolve("/sub/a.tif") == str(root / "sub" / "a.tif")
    assert resolver.resolve("sub/a.tif") == str(root / "sub" / "a.tif")


def test_symlink_inside_prefix_is_followed(tree):
    root, _ = tree
    resolver = PathResolver(str(root) + "/")
    assert resolver.resolve("/alias/a.tif") == str(root / "sub" / "a.tif")


@pytest.mark.parametrize("requested", ["../secret.tif", "/../secret.tif", "....//secret.tif"])
def test_parent_references_stay_inside_the_prefix(tree, requested):
    root, outside = tree
    resolved = PathResolver(str(root) + "/").resolve(requested)
    assert resolved == str(root / "secret.tif")
    assert resolved != str(outside)


@pytest.mark.parametrize("requested", ["link.tif", "/link.tif", "//link.tif"])
def test_symlink_pointing_out_of_the_prefix_is_refused(tree, requested):
    root, _ = tree
    with pytest.raises(NotFound) as info:
        PathResolver(str(root) + "/").resolve(requested)
    assert str(root) not in info.value.message


def test_prefix_without_slash_is_concatenated(tree):
    root, _ = tree
    resolver = PathResolver(str(root / "sub" / "a"))
    assert resolver.resolve(".tif") == str(root / "sub" / "a.tif")


def test_nul_byte_is_refused(tree):
    root, _ = tree
    with pytest.raises(NotFound):
        PathResolver(str(root) + "/").resolve("sub/a.tif\0.jpg")


def test_without_prefix_any_path_resolves(tree):
    root, outside = tree
    assert PathResolver("").resolve(str(outside)) == str(outside)


def test_a_vetted_path_is_checked_again_when_its_link_changes(tree):
    root, outside = tree
    inside = root / "sub" / "a.tif"
    os.symlink(inside, root / "moving.tif")
    resolver = PathResolver(str(root) + "/")
    path, st = resolver.locate("moving.tif")
    assert path == str(inside) and st.st_ino == inside.stat().st_ino
    assert resolver.locate("moving.tif")[0] == str(inside)  # remembered
    os.unlink(root / "moving.tif")
    os.symlink(outside, root / "moving.tif")  # re-pointed out of the prefix
    with pytest.raises(NotFound):
        resolver.locate("moving.tif")


def test_locate_reports_missing_files(tree):
    root, _ = tree
    with pytest.raises(NotFound):
        PathResolver(str(root) + "/").locate("sub/none.tif")
