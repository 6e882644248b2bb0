"""No pickle anywhere: a pickled file runs code when loaded. Checkpoints are torch state dicts loaded
with weights_only=True, caches are .npz/JSON loaded without allow_pickle."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("perform", "train", "export", "bench")

FORBIDDEN = [
    (re.compile(r"^\s*(import|from)\s+(c?pickle|cloudpickle|dill|joblib|shelve|marshal)\b", re.M), "pickle import"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load(allow_pickle=True)"),
    (re.compile(r"weights_only\s*=\s*False"), "torch.load(weights_only=False)"),
    (re.compile(r"\.to_pickle\(|read_pickle\("), "pandas pickle"),
    (re.compile(r"pickle_module\s*="), "torch.save/load with a pickle_module"),
]


def sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_the_guard_sees_the_code():
    names = {p.relative_to(ROOT).as_posix() for p in sources()}
    assert "perform/tokens.py" in names and "train/checkpoint.py" in names


def test_no_pickle_in_the_code():
    found = []
    for path in sources():
        text = path.read_text(encoding="utf-8")
        found += [f"{path.relative_to(ROOT)}: {what}" for rx, what in FORBIDDEN if rx.search(text)]
        for m in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", text):
            if "weights_only=True" not in m.group(0):
                found.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
    assert not found, found


def test_the_guard_catches_pickle(tmp_path):
    text = "import pickle\nx = torch.load(f)\n"
    assert FORBIDDEN[0][0].search(text)
    assert FORBIDDEN[0][0].search("import marshal\n")
    assert FORBIDDEN[-1][0].search("torch.save(x, f, pickle_module=dill)")
    assert re.search(r"torch\.load\(([^()]|\([^()]*\))*\)", text).group(0) == "torch.load(f)"
