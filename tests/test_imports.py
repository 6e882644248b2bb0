"""The instrument must not drag torch in: `perform` is installed without it."""
import subprocess
import sys


def test_import_perform_loads_no_torch():
    code = ("import sys, perform, perform.tokens, perform.quantize, perform.config\n"
            "import pkgutil, importlib\n"
            "for m in pkgutil.walk_packages(perform.__path__, 'perform.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'train', 'export', 'music21'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
