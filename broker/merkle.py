"""Merkle trees as defined by RFC 6962 §2.1 (Certificate Transparency), pure and I/O-free.

One module for everyone who needs a Merkle tree (the audit log today, batch
signatures later). Hashing has domain separation so a leaf can never pass for
an inner node: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right),
and the tree of zero leaves has the root SHA-256("").

Two trees, for two jobs:
- `MerkleTree`: append-only, keeps only the compact frontier (one hash per set
  bit of the size), O(log n) per append; what a writer persists and restores.
- `ProofTree`: keeps every leaf and every full subtree, so it can produce
  inclusion and consistency proofs for any earlier tree size (RFC 6962 §2.1.1,
  §2.1.2); what a verifier or a prover builds.

Proof verification follows the iterative algorithms of RFC 9162 §2.1.3.2 and
§2.1.4.2, which check the same proofs RFC 6962 defines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
#: MTH({}) = SHA-256() (RFC 6962 §2.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (not leaf data)."""
    tree = MerkleTree()
    for h in leaf_hashes:
        tree.append(h)
    return tree.root()


class MerkleTree:
    """An append-only tree that keeps only its frontier: the roots of its full subtrees.

    `frontier[i]` is the root of the i-th full subtree from the left; their
    sizes are the set bits of `size`, largest first. That is all a writer needs
    to append and to compute the root, and all it needs to persist.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def restore(cls, size: int, frontier: Iterable[bytes]) -> MerkleTree:
        """Rebuild a tree from a persisted (size, frontier); checks the shapes agree."""
        nodes = [bytes(h) for h in frontier]
        if size < 0 or len(nodes) != bin(size).count("1"):
            raise ValueError(f"a frontier for size {size} has {bin(size).count('1')} hashes")
        if any(len(h) != HASH_SIZE for h in nodes):
            raise ValueError("frontier hashes must be 32 bytes")
        tree = cls()
        tree._size = size
        tree._frontier = nodes
        return tree

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        return tuple(self._frontier)

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; returns its index. Merges equal-sized subtrees (O(log n))."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes; hash the data with leaf_hash() first")
        index = self._size
        node = leaf
        # Each trailing 1-bit of the old size is a full subtree the new leaf completes.
        carry = index
        while carry & 1:
            node = node_hash(self._frontier.pop(), node)
            carry >>= 1
        self._frontier.append(node)
        self._size += 1
        return index

    def append_data(self, data: bytes) -> int:
        return self.append(leaf_hash(data))

    def root(self) -> bytes:
        """MTH of the whole tree: fold the frontier from the right."""
        if not self._frontier:
            return EMPTY_ROOT
        node = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            node = node_hash(left, node)
        return node

    def copy(self) -> MerkleTree:
        return MerkleTree.restore(self._size, self._frontier)


class ProofTree:
    """A tree that keeps every full subtree, for proofs against any earlier size.

    `_levels[h][i]` is the root of the full subtree of 2**h leaves starting at
    leaf i * 2**h. Memory is about two hashes per leaf.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def append(self, leaf: bytes) -> int:
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes; hash the data with leaf_hash() first")
        index = self.size
        self._levels[0].append(leaf)
        level, position = 0, index
        while position & 1:
            row = self._levels[level]
            parent = node_hash(row[position - 1], row[position])
            level += 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(parent)
            position >>= 1
        return index

    def _hash(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi), split the way RFC 6962 splits, using stored full subtrees."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self._levels[n.bit_length() - 1][lo // n]
        k = _split(n)
        return node_hash(self._hash(lo, lo + k), self._hash(lo + k, hi))

    def _check_size(self, size: int | None) -> int:
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError(f"tree size {n} is outside 0..{self.size}")
        return n

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (default: all)."""
        return self._hash(0, self._check_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) of RFC 6962 §2.1.1: the audit path of one leaf."""
        n = self._check_size(size)
        if not 0 <= index < n:
            raise ValueError(f"leaf {index} is not in a tree of size {n}")
        return _inclusion_path(index, 0, n, self._hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 6962 §2.1.2: the tree of size m is a prefix of size n."""
        n = self._check_size(new_size)
        if not 0 <= old_size <= n:
            raise ValueError(f"old size {old_size} is outside 0..{n}")
        if old_size == 0 or old_size == n:
            return []
        return _subproof(old_size, 0, n, True, self._hash)


_RangeHash = Callable[[int, int], bytes]


def _inclusion_path(m: int, lo: int, hi: int, mth: _RangeHash) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_inclusion_path(m, lo, lo + k, mth), mth(lo + k, hi)]
    return [*_inclusion_path(m - k, lo + k, hi, mth), mth(lo, lo + k)]


def _subproof(m: int, lo: int, hi: int, complete: bool, mth: _RangeHash) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [mth(lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, lo, lo + k, complete, mth), mth(lo + k, hi)]
    return [*_subproof(m - k, lo + k, hi, False, mth), mth(lo, lo + k)]


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies (RFC 9162 §2.1.3.2); ValueError if it cannot be one."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    node = leaf
    for sibling in proof:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return node


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """True if `proof` shows leaf hash `leaf` at `index` in the tree of `size` with that root."""
    try:
        return root_from_inclusion_proof(leaf, index, size, proof) == expected_root
    except ValueError:
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if `proof` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; the
    empty tree is a prefix of every tree.
    """
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def consistency_proof_from(
    old_size: int, old_frontier: Sequence[bytes], new_leaves: Sequence[bytes]
) -> list[bytes]:
    """PROOF(m, D[n]) from what a writer keeps: the frontier of the tree of size m (the
    roots of its full subtrees, as `MerkleTree.frontier`) and the leaf hashes m..n-1.

    Every node of such a proof is either a full subtree of the old tree's
    decomposition or lies wholly among the new leaves, so nothing older is needed.
    """
    if len(old_frontier) != bin(old_size).count("1"):
        raise ValueError(f"a frontier for size {old_size} has {bin(old_size).count('1')} hashes")
    n = old_size + len(new_leaves)
    if old_size == 0 or old_size == n:
        return []
    known: dict[tuple[int, int], bytes] = {}
    lo = 0
    for bit, node in zip(
        (1 << b for b in reversed(range(old_size.bit_length())) if old_size >> b & 1),
        old_frontier,
        strict=True,
    ):
        known[(lo, lo + bit)] = node
        lo += bit
    right = ProofTree(new_leaves)

    def mth(lo: int, hi: int) -> bytes:
        node = known.get((lo, hi))
        if node is not None:
            return node
        if lo >= old_size:
            return right._hash(lo - old_size, hi - old_size)
        raise ValueError(f"range {lo}..{hi} is neither old nor new")  # pragma: no cover

    return _subproof(old_size, 0, n, True, mth)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots make PATH(index, D[size]), in proof order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m = lo + k, m - k
    out.reverse()
    return out


class PathBuilder:
    """PATH(index, D[size]) built while the leaves stream by, in O(log size) memory.

    Made when leaf `index` is reached, from the frontier of the tree before it
    (the proof's nodes left of the leaf are exactly full subtrees of that
    frontier); then `add` each following leaf hash in order, up to `size`.
    """

    def __init__(self, index: int, size: int, frontier_before: Sequence[bytes]) -> None:
        self.index, self.size = index, size
        self._ranges = inclusion_ranges(index, size)
        known: dict[tuple[int, int], bytes] = {}
        lo = 0
        for bit, node in zip(
            (1 << b for b in reversed(range(index.bit_length())) if index >> b & 1),
            frontier_before,
            strict=True,
        ):
            known[(lo, lo + bit)] = node
            lo += bit
        self._nodes = known
        self._pending = sorted(r for r in self._ranges if r[0] > index)
        self._current: MerkleTree | None = None
        self._next = index + 1

    @property
    def done(self) -> bool:
        return not self._pending

    @property
    def expects(self) -> int:
        """The index of the leaf `add` takes next."""
        return self._next

    def add(self, leaf: bytes) -> None:
        """The hash of leaf `index + 1`, then the next, ... (leaves past `size` are ignored)."""
        if not self._pending:
            return
        lo, hi = self._pending[0]
        if self._current is None:
            self._current = MerkleTree()
        self._current.append(leaf)
        self._next += 1
        if self._next == hi:
            self._nodes[(lo, hi)] = self._current.root()
            self._current = None
            self._pending.pop(0)

    def proof(self) -> list[bytes]:
        if self._pending:
            raise ValueError(f"leaves up to {self.size} are needed; the path is incomplete")
        return [self._nodes[r] for r in self._ranges]
