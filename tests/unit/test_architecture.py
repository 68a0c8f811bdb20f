"""The house rules of docs/ARCHITECTURE.md, checked on the code itself: the layer contract, no import
circle (function-level imports counted), SQL only in the store, one classifier builder, one table of
settings, one domain-name grammar."""
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "tl_core"


def _modules() -> dict[str, Path]:
    out = {}
    for p in CORE.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The tl_core modules `name` imports anywhere in its body (functions included), TYPE_CHECKING aside."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        elif (node.module or "").startswith("tl_core"):
            mod = node.module
        else:
            continue
        for a in node.names:  # `from . import runs` names a module
            sub = f"{mod}.{a.name}"
            out.add(sub if sub in known else mod)
    return {m for m in out if m in known and m != name}


def test_the_layer_contract_holds():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is pinned in requirements.txt"
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "broken" in out.stdout and "0 broken" in out.stdout


def test_no_import_circle_counting_function_level_imports():
    mods = _modules()
    graph = {m: _imports(m, p, set(mods)) for m, p in mods.items()}
    # a package imports its own submodules to re-export them; that edge is not a dependency of theirs
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    seen, stack, on_stack, cycles = {}, [], set(), []

    def visit(m):  # Tarjan's strongly connected components
        seen[m] = low = len(seen)
        stack.append(m)
        on_stack.add(m)
        for d in graph[m]:
            if d not in seen:
                low = min(low, visit(d))
            elif d in on_stack:
                low = min(low, seen[d])
        if low == seen[m]:
            comp = []
            while True:
                x = stack.pop()
                on_stack.discard(x)
                comp.append(x)
                if x == m:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))
        return low

    sys.setrecursionlimit(10000)
    for m in graph:
        if m not in seen:
            visit(m)
    assert cycles == []
    assert graph["tl_core.training.trainer"] >= {"tl_core.models.model", "tl_core.methods"}  # the graph is read at all


def _code(path: Path) -> str:
    """The source without docstrings and comments (what the checks below judge)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree)


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b", re.I)


def test_sql_lives_only_in_the_store():
    offenders = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")
                 if p.parent != CORE / "store" and SQL.search(_code(p))]
    assert offenders == []
    assert any(SQL.search(_code(p)) for p in (CORE / "store").glob("*.py"))  # the pattern finds SQL where there is some


def test_one_classifier_builder_one_grammar_one_settings_table():
    builds = [p.name for p in CORE.rglob("*.py") if re.search(r"\bClassifier\(", _code(p))]
    assert builds == ["model.py"]
    # every TL_* variable the library reads is in the one table, read through it
    from tl_core.base.limits import SETTINGS

    named = set()
    for p in CORE.rglob("*.py"):
        code = _code(p)
        named |= set(re.findall(r"['\"](TL_[A-Z0-9_]+)['\"]", code))
        if p.name != "limits.py":
            assert not re.search(r"environ\.get\(\s*['\"]TL_|getenv\(\s*['\"]TL_", code), p.name
    assert named <= set(SETTINGS), sorted(named - set(SETTINGS))
    # a domain name is taken apart by the grammar only, however it is spelled
    takes_apart = re.compile(r"\.(r?split|r?partition)\(\s*['\"]\+['\"]")
    for p in CORE.rglob("*.py"):
        if p.name != "names.py":
            assert not takes_apart.search(_code(p)), p.relative_to(CORE)
    assert takes_apart.search(_code(CORE / "data" / "domains" / "names.py"))  # the pattern finds the grammar
