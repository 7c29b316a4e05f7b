"""Security by inspection: suite files are data, SQL takes values only as parameters, nothing unpickles freely.

These read the source of harness/ and plugins/ (as ASTs, so comments and strings do not count)
and fail on the constructs that would let a suite file, a dataset file or a results store
run code. The malicious Planetoid pickle itself is refused in tests/test_graph_datasets.py.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "harness").rglob("*.py"), *(REPO / "plugins").rglob("*.py")])
RESTRICTED_UNPICKLER = REPO / "plugins" / "datasets" / "safe_pickle.py"
SQL_METHODS = {"execute", "executemany", "executescript", "read_sql_query", "read_sql"}


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def dotted(node: ast.AST) -> str:
    """'pickle.load' for pickle.load, 'eval' for eval, '' for anything not a plain (dotted) name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def calls(path: Path) -> list[tuple[str, ast.Call]]:
    return [(dotted(node.func), node) for node in ast.walk(parsed(path)) if isinstance(node, ast.Call)]


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def test_the_scan_sees_the_core_and_the_plugins():
    names = {p.relative_to(REPO).as_posix() for p in SOURCES}
    assert {"harness/suite.py", "harness/store.py", "plugins/datasets/planetoid.py"} <= names


def test_no_code_is_evaluated_from_data():
    forbidden = {"eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec"}
    found = [where(path, node) for path in SOURCES for name, node in calls(path) if name in forbidden]
    assert not found, f"dynamic code execution at {found}; parse data with tomllib / ast.literal_eval instead"


UNSAFE_LOADERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "dill.load", "dill.loads",
                  "joblib.load", "pd.read_pickle", "pandas.read_pickle", "marshal.load", "marshal.loads",
                  "shelve.open", "yaml.load", "yaml.unsafe_load"}


def test_nothing_unpickles_outside_the_restricted_unpickler():
    found = [where(path, node) for path in SOURCES if path != RESTRICTED_UNPICKLER
             for name, node in calls(path) if name in UNSAFE_LOADERS]
    found += [where(path, node) for path in SOURCES for name, node in calls(path)
              if name.endswith(("np.load", "numpy.load"))
              and any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                      for k in node.keywords)]
    assert not found, f"unrestricted deserialisation at {found}"


def test_the_restricted_unpickler_resolves_classes_only_through_an_allowlist():
    tree = parsed(RESTRICTED_UNPICKLER)
    loads = [name for name, _ in calls(RESTRICTED_UNPICKLER) if name in UNSAFE_LOADERS - {"pickle.Unpickler"}]
    assert not loads, "the restricted module must not call pickle.load itself"
    unpicklers = [c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                  and any(dotted(b) == "pickle.Unpickler" for b in c.bases)]
    assert unpicklers
    for unpickler in unpicklers:
        find_class = [f for f in unpickler.body if isinstance(f, ast.FunctionDef) and f.name == "find_class"]
        assert find_class, f"{unpickler.name} must override find_class"
        # It must not defer to pickle's own resolver, which imports any module a file names.
        assert not any(isinstance(n, ast.Attribute) and n.attr == "find_class" for n in ast.walk(find_class[0]))


def test_torch_load_only_with_weights_only():
    unsafe = []
    for path in SOURCES:
        for name, node in calls(path):
            if name == "torch.load" or name.endswith(".torch.load"):
                flags = [k for k in node.keywords if k.arg == "weights_only"]
                if not (flags and isinstance(flags[0].value, ast.Constant) and flags[0].value.value is True):
                    unsafe.append(where(path, node))
    assert not unsafe, f"torch.load without weights_only=True at {unsafe}"


class SqlText:
    """Decides whether an expression building SQL text uses only constants.

    Allowed: string literals, module-level constants (UPPER_CASE names), local variables
    assigned from such expressions, ", ".join over constants, f-strings, + and conditional
    expressions of these, and comprehension variables that range over constants. Anything
    else (a function argument, an attribute, a call) could carry a value into the SQL text.
    """

    def __init__(self, module: ast.Module, function: ast.FunctionDef | None):
        self.constants = {t.id for node in module.body if isinstance(node, ast.Assign)
                          for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}
        self.locals: dict[str, list[ast.expr]] = {}
        for node in ast.walk(function) if function else []:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.locals.setdefault(target.id, []).append(node.value)

    def constant(self, node: ast.AST, bound: frozenset = frozenset(), seen: frozenset = frozenset()) -> bool:
        check = lambda n, b=bound: self.constant(n, b, seen)  # noqa: E731
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str | int)
        if isinstance(node, ast.JoinedStr):
            return all(check(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return check(node.left) and check(node.right)
        if isinstance(node, ast.IfExp):
            return check(node.body) and check(node.orelse)
        if isinstance(node, ast.Subscript):
            return check(node.value) and check(node.slice)
        if isinstance(node, ast.Slice):
            return all(part is None or check(part) for part in (node.lower, node.upper, node.step))
        if isinstance(node, ast.List | ast.Tuple):
            return all(check(e) for e in node.elts)
        if isinstance(node, ast.Name):
            if node.id in bound or node.id in self.constants:
                return True
            if node.id in self.locals and node.id not in seen:
                return all(self.constant(v, bound, seen | {node.id}) for v in self.locals[node.id])
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
            return check(node.func.value) and len(node.args) == 1 and not node.keywords and check(node.args[0])
        if isinstance(node, ast.GeneratorExp | ast.ListComp):
            names = set(bound)
            for comprehension in node.generators:
                if not check(comprehension.iter, frozenset(names)):
                    return False
                names |= {n.id for n in ast.walk(comprehension.target) if isinstance(n, ast.Name)}
            return check(node.elt, frozenset(names))
        return False


def sql_calls(path: Path):
    module = parsed(path)
    functions = [f for f in ast.walk(module) if isinstance(f, ast.FunctionDef)]
    for node in ast.walk(module):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS:
            owner = next((f for f in functions if f.lineno <= node.lineno <= f.end_lineno), None)
            yield node, SqlText(module, owner)


@pytest.mark.parametrize("path", [p for p in SOURCES if "execute" in p.read_text() or "read_sql" in p.read_text()],
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_sql_text_is_built_from_constants_and_values_travel_as_parameters(path):
    for node, sql in sql_calls(path):
        if not node.args:
            continue
        text = node.args[0]
        assert sql.constant(text), f"SQL text built from a non-constant at {where(path, node)}"
        literal = " ".join(n.value for n in ast.walk(text) if isinstance(n, ast.Constant) and isinstance(n.value, str))
        for name in (n.id for n in ast.walk(text) if isinstance(n, ast.Name)):
            literal += " " + " ".join(v.value for e in sql.locals.get(name, []) for v in ast.walk(e)
                                      if isinstance(v, ast.Constant) and isinstance(v.value, str))
        if "?" in literal:
            has_values = len(node.args) > 1 or any(k.arg in ("params", "parameters") for k in node.keywords)
            assert has_values, f"placeholders without parameters at {where(path, node)}"


def test_the_sql_check_can_fail():
    """The checker refuses a value formatted into SQL, and accepts the store's constant column list."""
    bad = ast.parse("def f(db, run):\n    db.execute(f\"DELETE FROM cells WHERE run = '{run}'\")\n")
    good = ast.parse("COLUMNS = ['a', 'b']\ndef f(db, row):\n    names = ', '.join(COLUMNS)\n"
                     "    db.execute(f'INSERT INTO t ({names}) VALUES (?, ?)', row)\n")
    for tree, expected in ((bad, False), (good, True)):
        function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
        call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "execute")
        assert SqlText(tree, function).constant(call.args[0]) is expected


def test_the_store_uses_the_sql_checker():
    """The store's SQL calls are all seen by the check above (none hides behind another name)."""
    store = REPO / "harness" / "store.py"
    seen = list(sql_calls(store))
    assert len(seen) >= 6
    assert "sqlite3" in store.read_text()
