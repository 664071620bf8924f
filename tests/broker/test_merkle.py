"""broker.merkle against RFC 6962 §2.1, with the RFC's recursive definitions as the reference.

The reference functions below (`ref_mth`, `ref_path`, `ref_proof`) are the
definitions of RFC 6962 §2.1 (MTH), §2.1.1 (PATH) and §2.1.2 (PROOF/SUBPROOF)
transcribed literally, on the leaf *data* list D[n]; the module under test
uses other algorithms (frontier folding, stored full subtrees, the iterative
verifiers of RFC 9162), so agreement is a real check. Two published anchors
pin the reference itself: MTH({}) = SHA-256("") (e3b0c442...), and the
Certificate Transparency reference vectors (8 leaves, their roots, two paths
and a consistency proof; google/certificate-transparency testonly/constants.go).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker import merkle


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def data(n: int) -> list[bytes]:
    return [f"entry {i}".encode() * (i % 3 + 1) for i in range(n)]


def proof_tree(d: list[bytes]) -> merkle.ProofTree:
    return merkle.ProofTree(merkle.leaf_hash(x) for x in d)


# Certificate Transparency reference vectors (google/certificate-transparency, testonly).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATH_5_OF_8 = [
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]
CT_CONSISTENCY_6_8 = [
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]


def test_empty_tree_hash_is_sha256_of_the_empty_string() -> None:
    well_known = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.EMPTY_ROOT.hex() == well_known
    assert merkle.root([]) == merkle.EMPTY_ROOT
    assert merkle.MerkleTree().root() == merkle.EMPTY_ROOT
    assert merkle.ProofTree().root() == merkle.EMPTY_ROOT
    assert ref_mth([]).hex() == well_known


def test_leaf_and_node_hashing_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    left, right = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    # A two-leaf tree's root is not the leaf hash of the concatenated children.
    assert merkle.node_hash(left, right) != merkle.leaf_hash(left + right)


def test_reference_matches_the_published_ct_vectors() -> None:
    for size in range(1, 9):
        assert ref_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]
    assert [h.hex() for h in ref_path(5, CT_LEAVES)] == CT_PATH_5_OF_8
    assert [h.hex() for h in ref_proof(6, CT_LEAVES)] == CT_CONSISTENCY_6_8


def test_module_matches_the_published_ct_vectors() -> None:
    tree = proof_tree(CT_LEAVES)
    for size in range(1, 9):
        assert tree.root(size).hex() == CT_ROOTS[size - 1]
    assert [h.hex() for h in tree.inclusion_proof(5, 8)] == CT_PATH_5_OF_8
    assert [h.hex() for h in tree.consistency_proof(6, 8)] == CT_CONSISTENCY_6_8


@pytest.mark.parametrize("n", range(0, 40))
def test_roots_of_all_three_implementations_equal_the_rfc_definition(n: int) -> None:
    d = data(n)
    expected = ref_mth(d)
    compact = merkle.MerkleTree()
    for x in d:
        compact.append_data(x)
    assert compact.root() == expected
    assert merkle.root([merkle.leaf_hash(x) for x in d]) == expected
    assert proof_tree(d).root() == expected


def test_every_leaf_is_provable_in_every_tree_size() -> None:
    d = data(33)
    tree = proof_tree(d)
    for n in range(1, len(d) + 1):
        tree_root = ref_mth(d[:n])
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == ref_path(m, d[:n])
            assert merkle.verify_inclusion(merkle.leaf_hash(d[m]), m, n, proof, tree_root)


def test_every_pair_of_sizes_is_consistent() -> None:
    d = data(33)
    tree = proof_tree(d)
    for n in range(1, len(d) + 1):
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == ref_proof(m, d[:n])
            assert merkle.verify_consistency(m, n, ref_mth(d[:m]), ref_mth(d[:n]), proof)


def test_empty_tree_is_consistent_with_any_tree_by_an_empty_proof() -> None:
    d = data(5)
    assert proof_tree(d).consistency_proof(0, 5) == []
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, ref_mth(d), [])


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 200), pick=st.integers(0, 10**6), flip=st.integers(0, 10**6))
def test_inclusion_proof_fails_for_wrong_leaf_index_or_tampered_sibling(
    n: int, pick: int, flip: int
) -> None:
    d = data(n)
    tree = proof_tree(d)
    m = pick % n
    proof = tree.inclusion_proof(m, n)
    tree_root = tree.root()
    leaf = merkle.leaf_hash(d[m])
    assert merkle.verify_inclusion(leaf, m, n, proof, tree_root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), m, n, proof, tree_root)
    if n > 1:
        assert not merkle.verify_inclusion(leaf, (m + 1) % n, n, proof, tree_root)
        i = flip % len(proof)
        bad = [*proof[:i], bytes(32), *proof[i + 1 :]]
        assert not merkle.verify_inclusion(leaf, m, n, bad, tree_root)
        assert not merkle.verify_inclusion(leaf, m, n, proof[:-1], tree_root)
        assert not merkle.verify_inclusion(leaf, m, n, [*proof, bytes(32)], tree_root)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 200), pick=st.integers(0, 10**6), flip=st.integers(0, 10**6))
def test_consistency_proof_fails_for_a_rewritten_history(n: int, pick: int, flip: int) -> None:
    d = data(n)
    m = pick % (n - 1) + 1  # 1 <= m < n
    tree = proof_tree(d)
    proof = tree.consistency_proof(m, n)
    old_root, new_root = tree.root(m), tree.root(n)
    assert merkle.verify_consistency(m, n, old_root, new_root, proof)
    # Rewrite one old entry: the new tree no longer extends the old one.
    rewritten = list(d)
    rewritten[flip % m] = b"rewritten"
    other = proof_tree(rewritten)
    assert not merkle.verify_consistency(
        m, n, old_root, other.root(n), other.consistency_proof(m, n)
    )
    assert not merkle.verify_consistency(m, n, old_root, new_root, proof[:-1])
    i = flip % len(proof)
    bad = [*proof[:i], bytes(32), *proof[i + 1 :]]
    assert not merkle.verify_consistency(m, n, old_root, new_root, bad)
    assert not merkle.verify_consistency(n, m, new_root, old_root, proof)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 300), cut=st.integers(0, 300))
def test_frontier_survives_persist_and_restore(n: int, cut: int) -> None:
    d = data(n)
    cut = min(cut, n)
    first = merkle.MerkleTree()
    for x in d[:cut]:
        first.append_data(x)
    restored = merkle.MerkleTree.restore(first.size, first.frontier)
    for x in d[cut:]:
        restored.append_data(x)
    assert restored.size == n
    assert restored.root() == ref_mth(d)
    assert len(restored.frontier) == bin(n).count("1")


def test_restore_refuses_a_frontier_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="frontier"):
        merkle.MerkleTree.restore(3, [bytes(32)])
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.MerkleTree.restore(1, [b"short"])


def test_proofs_refuse_sizes_outside_the_tree() -> None:
    tree = proof_tree(data(4))
    with pytest.raises(ValueError, match="leaf 4 is not in a tree of size 4"):
        tree.inclusion_proof(4, 4)
    with pytest.raises(ValueError, match=r"tree size 5 is outside 0\.\.4"):
        tree.root(5)
    with pytest.raises(ValueError, match=r"old size 5 is outside 0\.\.4"):
        tree.consistency_proof(5, 4)
