"""The archive filter behind partial image transfers: on archives made here (pure logic), and
on a real `docker save` of the local engine (placing classic layers by depth must decide as
hashing does). Transfers between real engines: tests/ssh/test_sshlayers.py."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Any

import pytest

from radops.executors.ssh import layers


def _layer(content: bytes) -> tuple[bytes, str]:
    """A layer tar holding one file, and its diff ID."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("file")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    data = buffer.getvalue()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _archive(members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _names(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _filter(archive: bytes, needed: set[str], every: set[str], chunk: int = 777) -> bytes:
    stats = layers.FilterStats()
    pieces = [archive[i : i + chunk] for i in range(0, len(archive), chunk)]
    out = b"".join(layers.filtered_archive(pieces, needed, every, stats))
    assert stats.sent == len(out)
    return out


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_classic_layout_drops_the_layers_the_remote_has(fmt: int) -> None:
    (base, base_id), (top, top_id) = _layer(b"b" * 5000), _layer(b"new code")
    long_dir = "d" * 100  # past 100 characters: ustar prefix, PAX path, GNU long name
    archive = _archive(
        [
            (f"{long_dir}1/json", b"{}"),
            (f"{long_dir}1/layer.tar", base),
            (f"{long_dir}2/layer.tar", top),
            ("manifest.json", b"[]"),
        ],
        fmt,
    )
    out = _names(_filter(archive, {top_id}, {base_id, top_id}))
    kept = {f"{long_dir}1/json": b"{}", f"{long_dir}2/layer.tar": top, "manifest.json": b"[]"}
    assert out == kept


def test_oci_layout_drops_known_blobs_without_holding_them_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_holding() -> None:
        raise AssertionError("an OCI blob is decided by its name")

    monkeypatch.setattr(layers, "_Held", no_holding)
    (base, base_id), (top, top_id) = _layer(b"b" * 3000), _layer(b"t")
    archive = _archive(
        [
            (f"blobs/sha256/{base_id[7:]}", base),
            (f"blobs/sha256/{top_id[7:]}", top),
            ("blobs/sha256/" + "c" * 64, b'{"config": 1}'),  # not a layer: kept
            ("index.json", b"{}"),
        ]
    )
    out = _names(_filter(archive, {top_id}, {base_id, top_id}))
    assert set(out) == {f"blobs/sha256/{top_id[7:]}", "blobs/sha256/" + "c" * 64, "index.json"}


def test_a_held_layer_spills_to_a_file_and_comes_back_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(layers, "HOLD_IN_MEMORY", 1000)
    spilled: list[object] = []
    real = layers.tempfile.TemporaryFile

    def counted(*args: object, **kwargs: object) -> object:
        spilled.append(args)
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(layers.tempfile, "TemporaryFile", counted)
    big, big_id = _layer(bytes(range(256)) * 40)
    archive = _archive([("x/layer.tar", big)])
    assert _names(_filter(archive, {big_id}, {big_id})) == {"x/layer.tar": big}
    assert len(spilled) == 1  # past 1000 bytes: held in a file, then sent from it
    assert _names(_filter(archive, set(), {big_id})) == {}


def test_everything_needed_leaves_the_archive_byte_for_byte() -> None:
    (layer, layer_id) = _layer(b"x" * 10)
    archive = _archive([("a/layer.tar", layer), ("manifest.json", b"[]")])
    assert _filter(archive, {layer_id}, {layer_id}) == archive


def test_a_truncated_archive_is_an_error() -> None:
    from radops.errors import RadopsError

    (layer, layer_id) = _layer(b"x" * 5000)
    archive = _archive([("a/layer.tar", layer)])
    with pytest.raises(RadopsError, match="ended in the middle"):
        _filter(archive[:2000], set(), {layer_id})


def test_chain_ids_follow_the_image_spec() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert layers.chain_ids([a, b]) == [a, expected]


def test_needed_is_decided_by_chain_not_by_diff() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    remote = layers.RemoteLayers(frozenset(layers.chain_ids([a, c])), False)
    # c is there, but on a; on b it is another layer for the engine
    assert remote.needed([a, b, c]) == {b, c}
    assert remote.needed([a, c]) == set()


def test_remote_listing_and_the_containerd_store() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    out = (
        b'radops:driver [["Backing Filesystem","extfs"]]\n'
        + json.dumps([a, b]).encode()
        + b"\nnot json\n"
    )
    remote = layers.parse_remote_layers(out)
    assert remote.partial_ok and remote.chains == frozenset(layers.chain_ids([a, b]))
    containerd = b'radops:driver [["driver-type","io.containerd.snapshotter.v1"]]\n'
    assert not layers.parse_remote_layers(containerd).partial_ok


def _pax_sized(name: str, data: bytes) -> bytes:
    """A member as Go's archive/tar writes a file of 8 GiB and more: the size in a PAX record,
    0 in the ustar field."""
    record = f"size={len(data)}\n"
    length = len(record) + 1  # the space after the length
    length += len(str(length + len(str(length))))
    pax_data = f"{length} {record}".encode()
    assert len(pax_data) == length
    pax = tarfile.TarInfo("PaxHeaders/" + name)
    pax.type = tarfile.XHDTYPE
    pax.size = len(pax_data)
    member = tarfile.TarInfo(name)
    member.size = 0
    blocks = pax.tobuf(tarfile.USTAR_FORMAT) + pax_data.ljust(512, b"\0")
    blocks += member.tobuf(tarfile.USTAR_FORMAT)
    return blocks + data + b"\0" * (-len(data) % 512)


def test_a_pax_size_record_gives_the_size() -> None:
    (base, base_id), (top, top_id) = _layer(b"b" * 3000), _layer(b"t")
    archive = _pax_sized("a/layer.tar", base) + _pax_sized("b/layer.tar", top) + b"\0" * 1024
    assert _names(_filter(archive, {top_id}, {base_id, top_id})) == {"b/layer.tar": top}


def test_base_256_sizes_and_trailing_padding() -> None:
    (layer, layer_id) = _layer(b"z" * 700)
    member = bytearray(_archive([("a/layer.tar", layer)])[:512])
    member[124:136] = b"\x80" + len(layer).to_bytes(11, "big")  # GNU base-256
    member[148:156] = b"        "
    member[148:155] = f"{sum(member):06o}\0".encode()
    archive = bytes(member) + layer + b"\0" * (-len(layer) % 512) + b"\0" * 10240
    out = _filter(archive, {layer_id}, {layer_id})
    assert out == archive  # every byte passes, the end blocks and padding after them too
    assert _names(_filter(archive, set(), {layer_id})) == {}


def test_an_unreadable_archive_is_a_radops_error() -> None:
    from radops.errors import RadopsError

    with pytest.raises(RadopsError, match="cannot read the image archive"):
        _filter(b"x" * 100 + b"\0" * 412 + b"y" * 512, set(), set())


def test_base_images_are_the_from_lines_that_name_images() -> None:
    dockerfile = (
        "# syntax is not a FROM\n"
        "FROM --platform=$BUILDPLATFORM python:3.11-slim AS build\n"
        "RUN pip wheel .\n"
        "from nvcr.io/nvidia/pytorch:24.05-py3\n"
        "FROM build AS test\n"
        "FROM scratch\n"
        "ARG BASE=x\n"
        "FROM $BASE\n"
        "FROM python:3.11-slim\n"
    )
    assert layers.base_images(dockerfile) == [
        "python:3.11-slim",
        "nvcr.io/nvidia/pytorch:24.05-py3",
    ]


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        # Docker 20.10 (graph driver), a left-out classic layer file:
        ("open /var/lib/docker/tmp/docker-import-1/0a1b/layer.tar: no such file or directory",
         True),
        # Docker 25+ (graph driver), a left-out OCI blob:
        (f"open /var/lib/docker/tmp/docker-import-2/blobs/sha256/{'a' * 64}: no such file or "
         "directory", True),
        # Docker 26 with the containerd image store, as it answered here to a partial archive:
        (f'failed to resolve layers: layer "{"a" * 64}/layer.tar" not found', True),
        ("write /var/lib/docker/tmp/x: no space left on device", False),
        ('invalid reference format: repository name "X" must be lowercase', False),
    ],
)  # fmt: skip
def test_a_load_refused_for_a_left_out_layer_is_told_apart(message: str, missing: bool) -> None:
    from radops.executors.ssh.shipping import _MISSING_LAYER

    assert bool(_MISSING_LAYER.search(message)) is missing


def _held_count(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every layer the filter hashes and holds back, recorded."""
    made: list[object] = []
    real = layers._Held

    def counted() -> object:
        made.append(1)
        return real()

    monkeypatch.setattr(layers, "_Held", counted)
    return made


def test_classic_layers_at_a_known_depth_pass_unhashed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Folders come sorted by name, not by depth: "a" (the top, its parent "m" not seen yet),
    # "m" (the middle, parent "z" not seen yet), "z" (the base: no parent). Only the base's
    # depth is known when its file comes; "q" (parent "z", seen) comes after it.
    (base, base_id), (mid, mid_id), (top, top_id), (side, side_id) = (
        _layer(b"b" * 5000), _layer(b"m"), _layer(b"t"), _layer(b"s")
    )  # fmt: skip
    order = [base_id, mid_id, top_id]
    archive = _archive(
        [
            ("a/json", b'{"id": "a", "parent": "m", "config": {}}'), ("a/layer.tar", top),
            ("m/json", b'{"id": "m", "parent": "z"}'), ("m/layer.tar", mid),
            ("z/VERSION", b"1.0"), ("z/json", b'{"id": "z"}'), ("z/layer.tar", base),
            ("manifest.json", b"[]"),
        ]
    )  # fmt: skip
    held = _held_count(monkeypatch)
    stats = layers.FilterStats()
    out = b"".join(layers.filtered_archive([archive], {top_id}, set(order), stats, order))
    assert _names(out) == {
        "a/json": b'{"id": "a", "parent": "m", "config": {}}', "a/layer.tar": top,
        "m/json": b'{"id": "m", "parent": "z"}', "z/VERSION": b"1.0", "z/json": b'{"id": "z"}',
        "manifest.json": b"[]",
    }  # fmt: skip
    assert len(held) == 2  # "a" and "m": hashed; the base, the biggest, dropped unread
    assert (stats.skipped_layers, stats.kept_layers) == (2, {top_id})

    # Once the base is known, a folder above it is placed by depth: sent as it comes.
    order2 = [base_id, side_id]
    archive2 = _archive(
        [("b/json", b'{"parent": null}'), ("b/layer.tar", base),
         ("q/json", b'{"parent": "b"}'), ("q/layer.tar", side)]
    )  # fmt: skip
    held.clear()
    out2 = b"".join(layers.filtered_archive([archive2], {side_id}, set(order2), stats, order2))
    assert _names(out2) == {"b/json": b'{"parent": null}', "q/json": b'{"parent": "b"}',
                            "q/layer.tar": side}  # fmt: skip
    assert held == []


def test_an_unreadable_layer_json_falls_back_to_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    (base, base_id) = _layer(b"b" * 100)
    archive = _archive([("z/json", b"not json"), ("z/layer.tar", base)])
    held = _held_count(monkeypatch)
    stats = layers.FilterStats()
    out = b"".join(layers.filtered_archive([archive], set(), {base_id}, stats, [base_id]))
    assert _names(out) == {"z/json": b"not json"} and len(held) == 1


def test_a_real_docker_save_filters_the_same_by_depth_as_by_hash(docker_client: Any) -> None:
    # The local engine (Docker 20.10 here: the classic layout) saves an image of two layers on
    # busybox's;
    # placing layers by their json's parent must drop and keep exactly what hashing does.
    image = "busybox:1.36"
    folder_image = docker_client.images.build(
        fileobj=io.BytesIO(b"FROM busybox:1.36\nRUN echo one > /one\nRUN echo two > /two\n"),
        tag="radops-test/layers-depth:1", rm=True,
    )[0]  # fmt: skip
    try:
        order = folder_image.attrs["RootFS"]["Layers"]
        assert len(order) >= 3, order
        archive = b"".join(docker_client.api.get_image(folder_image.id))
        assert b"/layer.tar" in archive, "expected the classic layout from this engine"
        for needed in ({order[-1]}, set(order[-2:]), {order[0]}, set(), set(order)):
            by_hash = b"".join(
                layers.filtered_archive([archive], needed, set(order), layers.FilterStats())
            )
            stats = layers.FilterStats()
            by_depth = b"".join(
                layers.filtered_archive([archive], needed, set(order), stats, order)
            )
            assert by_depth == by_hash, needed
            assert stats.kept_layers == needed
    finally:
        docker_client.images.remove("radops-test/layers-depth:1", force=True)
    assert docker_client.images.get(image)
