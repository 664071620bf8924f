"""Where a security check can be removed from a module, and how: the mutants.

A mutant removes one check and nothing else, so that a surviving mutant names a
check no test needs. Kinds:

- ``skip-refusal``: an ``if`` that refuses (its body raises, records a failure
  through one of ``FAIL_CALLS``, returns a refusal (``False``, ``0``, a reason
  string) or ``continue``s past an item) never takes its refusing branch; its
  ``else`` still runs.
- ``drop-condition``: one alternative of such an ``if``'s ``or`` is dropped
  (the other alternatives still refuse).
- ``drop-conjunct``: one operand of an ``and`` that a predicate returns or a
  check result is assigned from is dropped.
- ``skip-verify``: a statement that only calls a checker (``VERIFY_CALLS``:
  raises or not) is skipped.
- ``accept-anyway``: ``a if check(...) else None`` (or ``False``) gives ``a``.
- ``drop-key``: one element of a cache key (a tuple assigned to one of
  ``CACHE_KEY_NAMES``) is dropped: two inputs differing there share a decision.

Mutation is done on the syntax tree (the source files are never written): the
mutated module is compiled from the tree and imported in place of the real one
by `tools._mutant_run`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

#: Calls that record a verification failure (the audit verifier's).
FAIL_CALLS = frozenset({"_fail", "_replay_broken", "_modified", "_anchor_lost"})
#: Calls made only for the exception they may raise.
VERIFY_CALLS = frozenset({"verify", "check_at", "_validity", "_check_labels"})
#: Names a cache key is assigned to (the policy engine's decision cache).
CACHE_KEY_NAMES = frozenset({"key", "labels"})


@dataclass(frozen=True, slots=True)
class Mutant:
    """One removed check: `index` among the module's mutants, in a stable order."""

    index: int
    kind: str
    line: int
    function: str
    #: the check, as source (shortened)
    check: str

    @property
    def ident(self) -> str:
        """A name that survives unrelated edits of the module (no line number)."""
        return f"{self.function}:{self.kind}:{self.check}"


def _short(node: ast.AST, limit: int = 90) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            return func.attr
        if isinstance(func, ast.Name):
            return func.id
    return None


def _is_refusal(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Raise | ast.Continue):
        return True
    if isinstance(stmt, ast.Expr) and _call_name(stmt.value) in FAIL_CALLS:
        return True
    if isinstance(stmt, ast.Return) and stmt.value is not None:
        value = stmt.value
        if isinstance(value, ast.JoinedStr):
            return True
        if isinstance(value, ast.Constant):
            return value.value is False or value.value == 0 or isinstance(value.value, str)
    return False


def _refuses(node: ast.If) -> bool:
    return any(_is_refusal(s) for s in node.body)


def _is_none_or_false(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in (None, False)


class _Sites(ast.NodeVisitor):
    """The mutation sites of one module, in source order, with their function names."""

    def __init__(self) -> None:
        self.sites: list[tuple[str, ast.AST, int, str]] = []  # kind, node, operand, function
        self._scope: list[str] = []

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._scope.append(node.name)
        self.generic_visit(node)
        self._scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def _add(self, kind: str, node: ast.AST, operand: int = -1) -> None:
        self.sites.append((kind, node, operand, ".".join(self._scope) or "<module>"))

    def visit_If(self, node: ast.If) -> None:
        if _refuses(node):
            self._add("skip-refusal", node)
            if isinstance(node.test, ast.BoolOp) and isinstance(node.test.op, ast.Or):
                for i in range(len(node.test.values)):
                    self._add("drop-condition", node, i)
        self.generic_visit(node)

    def _conjuncts(self, value: ast.AST | None) -> None:
        if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.And):
            for i in range(len(value.values)):
                self._add("drop-conjunct", value, i)

    def visit_Return(self, node: ast.Return) -> None:
        self._conjuncts(node.value)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._conjuncts(node.value)
        names = {t.id for t in node.targets if isinstance(t, ast.Name)}
        if names & CACHE_KEY_NAMES and isinstance(node.value, ast.Tuple):
            for i, elt in enumerate(node.value.elts):
                if not isinstance(elt, ast.Starred):
                    self._add("drop-key", node.value, i)
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if _call_name(node.value) in VERIFY_CALLS:
            self._add("skip-verify", node)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        if isinstance(node.test, ast.Call) and _is_none_or_false(node.orelse):
            self._add("accept-anyway", node)
        self.generic_visit(node)


def _describe(kind: str, node: ast.AST, operand: int) -> str:
    if kind == "skip-refusal":
        assert isinstance(node, ast.If)
        return f"if {_short(node.test)}"
    if kind in ("drop-condition", "drop-conjunct"):
        assert isinstance(node, ast.If | ast.BoolOp)
        test = node.test if isinstance(node, ast.If) else node
        assert isinstance(test, ast.BoolOp)
        return f"{_short(test.values[operand])} in {_short(test, 60)}"
    if kind == "drop-key":
        assert isinstance(node, ast.Tuple)
        return f"{_short(node.elts[operand])} (element {operand})"
    return _short(node)


def _sites(tree: ast.Module) -> list[tuple[str, ast.AST, int, str]]:
    finder = _Sites()
    finder.visit(tree)
    return finder.sites


def mutants(path: Path) -> list[Mutant]:
    """Every mutant of the module at `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        Mutant(i, kind, getattr(node, "lineno", 0), function, _describe(kind, node, operand))
        for i, (kind, node, operand, function) in enumerate(_sites(tree))
    ]


def _drop(values: list[ast.expr], operand: int) -> ast.expr | None:
    """Remove one operand; the single one left, if only one is."""
    del values[operand]
    return values[0] if len(values) == 1 else None


def mutated(path: Path, index: int) -> ast.Module:
    """The module at `path` with mutant `index` applied."""
    tree = ast.parse(path.read_text(), filename=str(path))
    kind, node, operand, _ = _sites(tree)[index]
    if kind == "skip-refusal":
        assert isinstance(node, ast.If)
        node.test = ast.Constant(False)
    elif kind == "drop-condition":
        assert isinstance(node, ast.If) and isinstance(node.test, ast.BoolOp)
        node.test = _drop(node.test.values, operand) or node.test
    elif kind == "drop-conjunct":
        assert isinstance(node, ast.BoolOp)
        left = _drop(node.values, operand)
        if left is not None:  # `a and b` -> `b`: keep the node, make it `b or b`
            node.op, node.values = ast.Or(), [left, left]
    elif kind == "drop-key":
        assert isinstance(node, ast.Tuple)
        del node.elts[operand]
    elif kind == "skip-verify":
        assert isinstance(node, ast.Expr)
        node.value = ast.Constant(None)
    elif kind == "accept-anyway":
        assert isinstance(node, ast.IfExp)
        node.test = ast.Constant(True)
    else:  # pragma: no cover - every kind above
        raise ValueError(kind)
    return ast.fix_missing_locations(tree)
