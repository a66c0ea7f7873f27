"""The README as a newcomer's guide: its test command is what CI runs, it stays short,
and it describes the project as it is (no development history)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readmes_test_command_as_written():
    command = re.search(r"Run the tests.*?```bash\n(.*?)\n```", README, re.S).group(1)
    assert "python3 -m venv" in command and "pytest" in command
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_readme_is_a_guide_not_a_diary():
    assert len(README.splitlines()) <= 300
    for pattern in (r"\bissue \d+", r"\b(first|second|third|fourth|fifth|this|that|earlier|later) session",
                    r"\bwas lent\b", r"\bround of work"):
        assert not re.search(pattern, README, re.I), pattern
    for link in re.findall(r"\]\(((?:docs|examples)/[^)#]+)", README):
        assert (ROOT / link).exists(), link
