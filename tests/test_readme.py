"""The README's commands and examples stay true: each command parses, each make target exists,
each YAML example is valid, and each ``s3-sharing`` command is run by a test or by CI."""

import re
import shlex
from pathlib import Path

import yaml

from s3_sharing import cli
from s3_sharing.outbound.registry import Registry
from s3_sharing.platform.settings import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
# Run outside pytest: `make test` runs `s3-sharing prepare`; .ci/run runs `make demo`.
RUN_BY_CI = {"prepare": "Makefile: test depends on prepare", "demo": ".ci/run: make demo"}


def _commands(tool: str) -> list[list[str]]:
    """Every ``tool ...`` line of the README's bash blocks, split like a shell, without comments."""
    found = []
    for language, body in BLOCKS:
        if language != "bash":
            continue
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == tool:
                found.append(words[1:])
    return found


def test_the_readme_shows_the_quickstart_and_a_data_flow_diagram():
    languages = [language for language, _ in BLOCKS]
    assert "mermaid" in languages
    assert [words[0] for words in _commands("make")[:3]] == ["demo", "test", "dev"]


def test_every_make_target_in_the_readme_exists():
    targets = set(re.findall(r"^([a-z-]+):", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))
    for words in _commands("make"):
        assert words[0] in targets, words
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_every_s3_sharing_command_in_the_readme_parses():
    commands = _commands("s3-sharing")
    assert len(commands) >= 6
    parser = cli.build_parser()
    for words in commands:
        parser.parse_args(words)  # exits (a failure here) on an unknown command or option


def test_every_s3_sharing_command_in_the_readme_is_run_by_a_test_or_by_ci():
    tests = "\n".join(path.read_text() for path in Path(__file__).parent.rglob("test_*.py"))
    for command in {words[0] for words in _commands("s3-sharing")} | set(
        re.findall(r"`s3-sharing ([a-z-]+)", README)
    ):
        run = f'cli.main(["{command}"' in tests or f'"s3_sharing.cli", "{command}"' in tests
        assert run or command in RUN_BY_CI, f"s3-sharing {command} is in the README but no test runs it"
    assert "make demo" in (REPO_ROOT / ".ci" / "run").read_text()


def test_the_yaml_examples_are_valid():
    documents = [yaml.safe_load(body) for language, body in BLOCKS if language == "yaml"]
    registry = next(d for d in documents if "businesses" in d)
    Registry.model_validate(registry)
    instance = next(d for d in documents if "storage" in d)
    assert set(instance) >= {"storage", "run_coordinator", "run_launcher"}
    assert "postgres" in instance["storage"]


def test_generate_writes_the_raw_tables(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("S3_SHARING_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    assert cli.main(["generate", "--hours", "2", "--businesses", "2", "--end", "2026-01-01-02:00"]) == 0
    out = capsys.readouterr().out
    assert "generated 2 hours ending 2026-01-01 02:00 UTC" in out
    assert re.search(r"raw\.transactions\s+[1-9][\d,]* rows", out), out


def test_the_code_map_names_every_top_level_package_and_module():
    code_map = README.split("s3_sharing/\n", 1)[1].split("```", 1)[0]
    package = REPO_ROOT / "s3_sharing"
    names = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    for name in sorted(names):
        assert f"  {name}/" in code_map, f"s3_sharing/{name}/ is missing from the README's code map"
    for path in (package / "platform").glob("*.py"):
        if path.stem != "__init__":
            assert path.stem in code_map, f"platform/{path.name} is missing from the README's code map"
