""".ci/run installs by README's quick-start commands and nothing else, so a step README lacks
fails CI (it runs in a fresh virtual environment) instead of hiding behind the machine's packages."""
import re

from gen import paths


def quick_start_commands() -> list[str]:
    readme = (paths.REPO_ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_readmes_install_and_test_commands():
    ci = (paths.REPO_ROOT / ".ci" / "run").read_text()
    ci_commands = [line.strip() for line in ci.splitlines() if line.startswith(("pip ", "python "))]
    readme = quick_start_commands()
    assert [c for c in readme if c.startswith("pip ")] == [c for c in ci_commands if c.startswith("pip ")]
    assert ci_commands[-1] == readme[-1] == "python -m pytest"
    assert "python3 -m venv" in ci and readme[0].startswith("python3 -m venv")
