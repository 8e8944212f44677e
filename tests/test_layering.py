"""The package layering, checked by parsing every module's imports (lazy ones included).

The floors, from the bottom: ``types`` / ``typed_config`` / ``viz`` (shared by all), ``nets``
(Flax modules), ``data``, ``metrics``, ``sampling`` (noise processes, converters, samplers),
then the families (``diffusion``, ``score``, ``distill``, ``autoencoders``, ``gan``), and the
``training`` engine beside them. The rules:

* ``nets``, ``data``, ``sampling`` and ``metrics`` import nothing from ``training``;
* ``sampling`` imports no family; ``training`` imports no family (it reaches them only through
  the string registry of :mod:`genjax.methods`);
* no module imports a private name (``_x``) from another package.

Each failure names the file, the line and the import.
"""

import ast
import os


ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "genjax")
FAMILIES = ("diffusion", "score", "distill", "autoencoders", "gan")


def _modules():
  for dirpath, _, files in os.walk(ROOT):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, os.path.dirname(ROOT))
        yield path, rel[:-3].replace(os.sep, ".").removesuffix(".__init__")


def _package(module: str) -> str:
  """``genjax.sampling.sde`` -> ``sampling``; a top-level module is its own package."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: str, module: str):
  """(line, imported module, imported names) for every import in the file, anywhere."""
  tree = ast.parse(open(path).read(), path)
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(node.lineno, a.name, ()) for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      if node.level:  # relative
        base = module.split(".")
        if not path.endswith("__init__.py"):
          base = base[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
      else:
        target = node.module or ""
      out.append((node.lineno, target, tuple(a.name for a in node.names)))
  return out


def _violations():
  found = []
  for path, module in _modules():
    src = _package(module)
    rel = os.path.relpath(path, os.path.dirname(ROOT))
    for line, target, names in _imports(path, module):
      if not target.startswith("genjax"):
        continue
      dst = _package(target)
      where = f"{rel}:{line}: import of {target}"
      if src in ("nets", "data", "sampling", "metrics") and dst == "training":
        found.append(f"{where} ({src}/ must not import training/)")
      if src in ("sampling", "training") and dst in FAMILIES:
        found.append(f"{where} ({src}/ must not import the {dst} family)")
      if src != dst:
        for name in names:
          private = name.startswith("_") and not name.startswith("__")
          if private or any(p.startswith("_") and not p.startswith("__")
                            for p in target.split(".")):
            found.append(f"{where} uses the private name {name!r} of another package")
  return found


def test_layering():
  problems = _violations()
  assert not problems, "Layering violations:\n" + "\n".join(problems)


def test_the_checker_finds_violations(tmp_path):
  """The parser sees lazy (function-level) and relative imports and private names."""
  pkg = tmp_path / "genjax"
  (pkg / "nets").mkdir(parents=True)
  (pkg / "training").mkdir()
  (pkg / "nets" / "bad.py").write_text(
      "def f():\n  from genjax.training.config import OptimConfig\n")
  (pkg / "training" / "bad.py").write_text(
      "import genjax.diffusion.method\nfrom ..score.method import _hidden\n")
  global ROOT
  old, ROOT = ROOT, str(pkg)
  try:
    problems = _violations()
  finally:
    ROOT = old
  text = "\n".join(problems)
  assert "genjax/nets/bad.py:2" in text and "must not import training" in text
  assert "genjax/training/bad.py:1" in text and "diffusion family" in text
  assert "private name '_hidden'" in text and "score family" in text
  assert len(problems) == 4, problems
