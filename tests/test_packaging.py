"""A plain `pip install` works from any folder: configs inside the package, console scripts."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "detection").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"


def test_configs_resolve_by_name_from_anywhere(tmp_path, monkeypatch):
    from detection.config import CONFIG_DIR, load_config, resolve_config_file

    monkeypatch.chdir(tmp_path)
    assert resolve_config_file("voc_frcnn.yaml") == CONFIG_DIR / "voc_frcnn.yaml"
    assert resolve_config_file("configs/bccd_frcnn.yaml") == CONFIG_DIR / "bccd_frcnn.yaml"
    (tmp_path / "voc_frcnn.yaml").write_text("_base_: " + str(CONFIG_DIR / "voc_frcnn.yaml") + "\nname: mine\n")
    assert load_config("voc_frcnn.yaml")["name"] == "mine"  # a file of that name here comes first


@pytest.mark.slow
def test_wheel_installs_and_trains_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True)
    wheel = next(wheels.glob("detection-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # torch and the other dependencies come from the environment running the tests (a .pth line adds
    # its site-packages after the new venv's own, so the wheel's `detection` is the one imported)
    Path(site, "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "license" not in out.stderr.lower()  # no packaging warnings
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = lambda *a: subprocess.run(a, cwd=work, capture_output=True, text=True, env=env)  # noqa: E731
    where = run(str(py), "-c", "import detection, detection.config as c; print(detection.__file__, c.CONFIG_DIR)")
    assert str(env_dir) in where.stdout and "/configs" in where.stdout, where.stdout + where.stderr
    assert "usage" in run(str(env_dir / "bin" / "det-train"), "--help").stdout
    trained = run(str(env_dir / "bin" / "det-train"), "--cfg", "demo.yaml", "name=w", "data.root=syn",
                  "data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.image_size=96",
                  "data.num_workers=0", "model.weights=none", "model.min_size=96", "model.max_size=96",
                  "model.fpn_channels=32", "train.epochs=1", "train.warmup_iters=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (work / "runs" / "w" / "weights" / "best.pt").is_file()
    for script in ("det-eval", "det-infer", "det-export", "det-data-check", "det-convert"):
        assert run(str(env_dir / "bin" / script), "--help").returncode == 0, script
    empty = tmp_path / "empty"
    empty.mkdir()
    hint = subprocess.run([str(env_dir / "bin" / "det-eval")], cwd=empty, capture_output=True, text=True, env=env)
    assert hint.returncode == 1 and "`det-train --cfg ...`" in hint.stderr, hint.stderr  # the command it has
    assert "tools/" not in hint.stderr
