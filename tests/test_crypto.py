"""storage.crypto: sealing, opening, binding to context, key rings, fingerprints (pure)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.crypto import (
    KeyRing,
    KeyRingError,
    OpenFailed,
    UnknownKeyId,
    generate_master_key,
    mask_api_key,
    parse_key_id,
)

SECRET = "s3cr3t-" + "x" * 57


def test_seal_open_round_trip_and_key_id_is_recorded(key_ring):
    sealed = key_ring.seal(SECRET, context="api_key:1:secret")
    assert sealed.key_id == "k1"
    assert parse_key_id(sealed.blob) == "k1"
    assert key_ring.open_text(sealed.blob, context="api_key:1:secret") == SECRET


def test_two_seals_of_the_same_secret_differ(key_ring):
    a = key_ring.seal(SECRET, context="c").blob
    b = key_ring.seal(SECRET, context="c").blob
    assert a != b
    assert a[-40:] != b[-40:]


def test_sealed_blob_does_not_contain_the_plaintext_in_any_encoding(key_ring):
    blob = key_ring.seal(SECRET, context="c").blob
    for form in (
        SECRET.encode(),
        base64.b64encode(SECRET.encode()),
        SECRET.encode().hex().encode(),
    ):
        assert form not in blob


@pytest.mark.parametrize("position", [0, 1, 5, 20, -1])
def test_a_flipped_byte_fails_to_open(key_ring, position):
    blob = bytearray(key_ring.seal(SECRET, context="c").blob)
    blob[position] ^= 0x01
    with pytest.raises((OpenFailed, UnknownKeyId)):
        key_ring.open(bytes(blob), context="c")


def test_a_ciphertext_from_another_row_fails_to_open(key_ring):
    blob = key_ring.seal(SECRET, context="api_key:row-a:secret").blob
    with pytest.raises(OpenFailed, match="another row"):
        key_ring.open(blob, context="api_key:row-b:secret")


def test_wrong_master_key_with_the_same_id_fails(key_ring):
    blob = key_ring.seal(SECRET, context="c").blob
    impostor = KeyRing([generate_master_key("k1")])
    with pytest.raises(OpenFailed):
        impostor.open(blob, context="c")


def test_unknown_key_id_is_named(key_ring):
    blob = key_ring.seal(SECRET, context="c").blob
    other = KeyRing([generate_master_key("k2")])
    with pytest.raises(UnknownKeyId, match="'k1'"):
        other.open(blob, context="c")


def test_ring_with_several_keys_seals_with_the_active_and_opens_old():
    k1, k2 = generate_master_key("k1"), generate_master_key("k2")
    old = KeyRing([k1]).seal(SECRET, context="c").blob
    ring = KeyRing([k1, k2])
    assert ring.active.key_id == "k2"
    assert ring.open_text(old, context="c") == SECRET
    assert ring.seal(SECRET, context="c").key_id == "k2"


def test_parse_ring_text_and_active_choice():
    k1, k2 = generate_master_key("k1"), generate_master_key("k2")
    text = f"# comment\n{k1.encoded()}\n{k2.encoded()}  # newest\n"
    assert KeyRing.parse(text).active.key_id == "k2"
    assert KeyRing.parse(f"{k1.encoded()},{k2.encoded()}", "k1").active.key_id == "k1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no master key"),
        ("k1", "id:base64"),
        ("k1:not*base64", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "32 bytes"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "invalid"),
    ],
)
def test_malformed_ring_text_is_refused_without_echoing_it(text, message):
    with pytest.raises(KeyRingError, match=message) as excinfo:
        KeyRing.parse(text)
    encoded = text.partition(":")[2]
    if len(encoded) > 8:
        assert encoded not in str(excinfo.value)


def test_active_key_must_be_configured():
    with pytest.raises(KeyRingError, match="not among"):
        KeyRing([generate_master_key("k1")], "k9")


def test_repr_never_shows_key_material(key_ring):
    assert base64.b64encode(key_ring.active.key).decode() not in repr(key_ring)
    assert "key=" not in repr(key_ring.active)


def test_fingerprint_is_keyed_stable_and_searchable_across_keys():
    k1, k2 = generate_master_key("k1"), generate_master_key("k2")
    before = KeyRing([k1]).fingerprint("APIKEY123")
    ring = KeyRing([k1, k2])
    assert before in ring.fingerprints("APIKEY123")
    assert ring.fingerprint("APIKEY123") != before  # different master key, different digest
    assert KeyRing([generate_master_key("k1")]).fingerprint("APIKEY123") != before


def test_mask_shows_only_the_ends():
    key = "A" * 4 + "x" * 56 + "Z" * 4
    assert mask_api_key(key) == "AAAA…ZZZZ"
    assert "x" not in mask_api_key(key)


@given(st.binary(max_size=4096), st.text(max_size=80))
def test_any_plaintext_round_trips_under_its_context(plaintext, context):
    ring = KeyRing([generate_master_key("k1")])
    assert ring.open(ring.seal(plaintext, context=context).blob, context=context) == plaintext
