"""The README is what a new user sees: its runnable blocks run, and its quickstart table is what the code prints."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


ACCURACY_TOLERANCE = 0.02  # about 7 of the quickstart's 360 test images; the README says so next to its table


def blocks(language: str, section: str) -> list[str]:
    body = README.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [code for lang, code in re.findall(r"^```(\w*)\n(.*?)^```", body, re.S | re.M) if lang == language]


def run(command: list[str], cwd, timeout=900):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.mark.slow
def test_quickstart_prints_the_readme_table(tmp_path):
    table = blocks("", "The two commands")[0]
    documented = {}
    for line in table.splitlines():
        match = re.match(r"^(teacher mix|pruned teacher|teacher|student)\s+([\d.]+)\s+([\d,-]+)\s+([\d,-]+)", line)
        if match:
            documented[match.group(1)] = match.groups()[1:]
    assert set(documented) == {"teacher", "pruned teacher", "teacher mix", "student"}
    out = tmp_path / "quickstart"
    run([sys.executable, os.path.join(ROOT, "scripts", "distill.py"), "--output_dir", str(out)], tmp_path)
    rows = {row["model"]: row for row in json.loads((out / "summary.json").read_text())["rows"]}
    for name, (accuracy, params, macs) in documented.items():
        # Deterministic on one machine, not across CPUs: float reductions differ, and 2-core Xeons of this project
        # measured 0.9778 and 0.9667 for the student (4 of the 360 test images). Counts below are exact.
        assert abs(rows[name]["accuracy"] - float(accuracy)) <= ACCURACY_TOLERANCE, (name, rows[name]["accuracy"], accuracy)
        assert (f"{rows[name]['params']:,}" if rows[name]["params"] else "-") == params, name
        assert (f"{rows[name]['macs']:,}" if rows[name]["macs"] else "-") == macs, name


@pytest.mark.slow
def test_use_it_in_your_own_script_runs_as_written_at_small_size(tmp_path):
    shell, python = blocks("bash", "Use it in your own script")[0], blocks("python", "Use it in your own script")[0]
    command = shlex.split("\n".join(line for line in shell.splitlines() if not line.startswith("#")).replace("\\\n", " "))
    assert command[0] == "r2kd-train-teacher"  # the installed console command (it lives beside this interpreter)
    command[command.index("--num_train_epochs") + 1] = "1"  # small size: one epoch
    run([os.path.join(os.path.dirname(sys.executable), command[0]), *command[1:]], tmp_path)
    script = python.replace("num_train_epochs=2", "num_train_epochs=1")
    run([sys.executable, "-c", script], tmp_path)
    saved = tmp_path / "outputs" / "r8_from_r20"
    config = json.loads((saved / "config.json").read_text())
    assert config["architecture"] == "cifar_resnet8" and config["num_classes"] == 10
    check = ("import r2kd_hf, timm, torch; from transformers import AutoModelForImageClassification as A; "
             f"p={str(saved)!r}; x=torch.randn(2,3,32,32); a=timm.create_model('local-dir:'+p, pretrained=True).eval()(x); "
             "b=A.from_pretrained(p).eval()(x).logits; c=r2kd_hf.load_student(p)(x).logits; "
             "assert torch.equal(a, b) and torch.equal(a, c)")
    run([sys.executable, "-c", check], tmp_path)


def test_every_recipe_the_readme_names_resolves(capsys):
    from r2kd_hf.app.recipe import parse_recipe, shipped_recipes

    table = README.split("## Methods and recipes", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| `([\w/*.-]+)` \| .* \| .* \|$", table, re.M)
    recipes = [name for name in named if name.endswith("/*") or name in shipped_recipes()]
    assert "fgvr_cub" in recipes and "tinyimagenet/*" in recipes
    expanded = [r for name in recipes for r in (sorted(x for x in shipped_recipes() if x.startswith(name[:-1])) if name.endswith("*") else [name])]
    assert len(expanded) == len(shipped_recipes()), sorted(set(shipped_recipes()) - set(expanded))  # the table names them all
    for recipe in expanded:
        with pytest.raises(SystemExit) as done:
            parse_recipe(["--recipe", recipe, "--print_recipe"])
        assert done.value.code == 0, recipe
        assert "training:" in capsys.readouterr().out


def test_the_readme_cites_r2kd_as_the_cards_do():
    from r2kd_hf import citations

    assert citations.R2KD in README
