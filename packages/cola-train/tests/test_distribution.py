"""What a user of the published packages meets: versions, the shipped configs, `--print-config`, the PushT
extra left out, and (slow) each of the four wheels built and installed alone."""

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from cola_train.cli import main
from cola_train.config import load_config, shipped_configs

ROOT = Path(__file__).parents[3]
PACKAGES = ("cola-lam", "cola-wm", "cola-train", "cola-eval")


def test_versions(capsys: pytest.CaptureFixture[str]) -> None:
    import cola_eval
    import cola_lam
    import cola_train
    import cola_wm

    for module, name in (
        (cola_lam, "cola-lam"),
        (cola_wm, "cola-wm"),
        (cola_train, "cola-train"),
        (cola_eval, "cola-eval"),
    ):
        assert module.__version__ == version(name)
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"cola-train {version('cola-train')}"
    from cola_eval.cli import main as eval_main

    with pytest.raises(SystemExit):
        eval_main(["--version"])
    assert capsys.readouterr().out.strip() == f"cola-eval {version('cola-eval')}"


def test_configs_ship_in_the_package_and_the_repository_links_them() -> None:
    assert {"quickstart.toml", "paper.toml", "two-stage.yaml"} <= set(shipped_configs())
    for name in shipped_configs():
        assert (ROOT / "configs" / name).resolve().read_text() == (
            Path(__import__("cola_train").__file__).parent / "configs" / name
        ).read_text()
    # A name, or a configs/ path that is not there (as from a wheel), finds the shipped file.
    by_name = load_config("two-stage.yaml", preset="quickstart")
    assert by_name.stages == ["lam_recon", "wm_finetune"]
    assert load_config(Path("/nonexistent/configs/two-stage"), preset="quickstart") == by_name
    with pytest.raises(ValueError, match=r"shipped one .*quickstart\.toml"):
        load_config("no-such-config.toml")


def test_print_config_shows_the_resolved_config_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--preset", "quickstart", "--config", "two-stage.yaml", "--set", "lam_recon.steps=7"]
    assert main([*argv, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    resolved = load_config("two-stage.yaml", ["lam_recon.steps=7"], preset="quickstart").to_dict()
    expected = json.loads(json.dumps(resolved))  # as printed: tuples (e.g. guidance_interval) become lists
    assert printed == expected and printed["lam_recon"]["steps"] == 7
    assert list(tmp_path.iterdir()) == []
    assert main(argv) == 2 and "needs --out" in capsys.readouterr().err


def test_the_packages_import_without_the_pusht_extra() -> None:
    # gym_pusht, pygame and cv2 made unimportable, as in an environment without `cola-train[pusht]`.
    code = (
        "import sys\n"
        "for name in ('gym_pusht', 'pygame', 'cv2'): sys.modules[name] = None\n"
        "import cola_lam, cola_wm, cola_train, cola_train.data, cola_eval\n"
        "from cola_train.cli import build_parser\n"
        "build_parser()\n"
        "try:\n"
        "    cola_train.data.collect_pusht\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "cola-train[pusht]"' in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to build and install the wheels")
def test_each_wheel_builds_and_installs_alone(tmp_path: Path) -> None:
    """Each package's wheel, installed alone into an empty environment (its siblings from the same build,
    everything else from the package index), imports and runs its CLI; the PushT extra stays out."""
    dist = tmp_path / "dist"
    for package in PACKAGES:
        subprocess.run(
            ["uv", "build", "--wheel", "--package", package, "--out-dir", str(dist)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    checks = {
        "cola-lam": "import cola_lam; print(cola_lam.__version__)",
        "cola-wm": "import cola_wm; print(cola_wm.__version__)",
        "cola-train": (
            "import subprocess, sys, importlib.util as u; assert u.find_spec('gym_pusht') is None;"
            "subprocess.run([sys.prefix + '/bin/cola-train', 'run', '--preset', 'quickstart', '--config',"
            " 'two-stage.yaml', '--print-config'], check=True, capture_output=True)"
        ),
        "cola-eval": (
            "import importlib.util as u, cola_eval; assert u.find_spec('gym_pusht') is None;"
            "assert u.find_spec('cv2') is None; print(cola_eval.__version__)"
        ),
    }
    for package, code in checks.items():
        env_dir = tmp_path / f"env-{package}"
        subprocess.run(
            ["uv", "venv", "--python", sys.executable, str(env_dir)], check=True, capture_output=True
        )
        python = str(env_dir / "bin" / "python")
        install = subprocess.run(
            ["uv", "pip", "install", "--python", python, "--find-links", str(dist), package],
            capture_output=True,
            text=True,
            check=False,
        )
        assert install.returncode == 0, install.stderr
        run = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
        assert run.returncode == 0, f"{package}: {run.stderr}"
        wheel = next(dist.glob(f"{package.replace('-', '_')}-*.whl"))
        listing = subprocess.run(
            [python, "-c", f"import zipfile; print(zipfile.ZipFile({str(wheel)!r}).namelist())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "licenses/LICENSE" in listing, package
