"""Bad input and unusable environments: exit 2, one line, no traceback, no load.

Most cases run in this process (CliRunner, through the same McpoolGroup.main and its sys.exit); a few run
mcpool as a real process, so that the path a user takes (interpreter exit code, stderr) stays covered.
"""



import pytest
from click.testing import CliRunner

from mcpool_cli.cli import cli
from tests.conftest import invoke_mcpool, run_mcpool


def one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mcpool: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("args, fragments", [
    (["--duration", "10x"], ["--duration", "not a duration"]),
    (["--ratio", "9"], ["--ratio", "GET:SET"]),
    (["--value-size", "0"], ["--value-size"]),
    (["--threads", "0"], ["--threads"]),
    (["--strategy", "nope"], ["unknown strategy 'nope'", "per-thread"]),
    (["--strategy", "no_such_module:make"], ["cannot import 'no_such_module'"]),
    (["--strategy", "fault_strategies:missing"], ["no callable named 'missing'"]),
    (["--strategy", "fault_strategies:not_callable"], ["no callable named 'not_callable'"]),
    (["--behavior", "bogus=1"], ["--behavior", "bogus"]),
    (["--behavior", "tcp_nodelay=yes-please"], ["--behavior"]),
    (["--server", "a:b:c"], ["HOST:PORT"]),
    (["--server", "127.0.0.1:1"], ["127.0.0.1:1 is unreachable"]),
    (["--server", "no-such-host.invalid:11211"], ["cannot resolve"]),
    (["--nonsense"], ["No such option"]),
    (["--hang-timeout", "200ms"], ["--hang-timeout must be at least 1s"]),
    (["--value-size", "1048576"], ["1 MiB"]),
    (["--keys", "5000000", "--value-size", "1000"], ["GiB"]),
    (["--json", "/no/such/folder/r.json"], ["--json", "does not exist"]),
    (["--json", "/tmp"], ["is a folder"]),
])
def test_bad_input_is_one_line_and_exit_2(args, fragments):
    one_line_error(invoke_mcpool("bench", "--duration", "1s", *args) if "--duration" not in args
                   else invoke_mcpool("bench", *args), *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["--duration", "10x"], ["--duration", "not a duration"]),  # click's own error
    (["--strategy", "fault_strategies:missing"], ["no callable named 'missing'"]),  # mcpool's UsageProblem
])
def test_bad_input_in_a_real_process_is_one_line_and_exit_2(args, fragments):
    one_line_error(run_mcpool("bench", *args), *fragments)


def test_missing_memcached_says_how_to_install(tmp_path):
    python_only = tmp_path / "bin"
    python_only.mkdir()
    env = {"PATH": str(python_only), "MCPOOL_SERVERS": ""}
    one_line_error(run_mcpool("bench", "--duration", "1s", env=env), "memcached is not on PATH", "--server")


def test_bad_servers_in_environment(monkeypatch):
    one_line_error(invoke_mcpool("bench", env={"MCPOOL_SERVERS": "x:y:z"}), "HOST:PORT")


def test_every_command_has_help_with_an_example():
    for name, command in cli.commands.items():
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output and f"mcpool {name}" in result.output
        for param in command.params:
            if param.param_type_name == "argument":  # arguments are explained in the command's own text
                assert param.human_readable_name in result.output, f"{name} {param.name} is not explained"
                continue
            assert param.help or param.name == "help", f"{name} {param.name} has no help"


def test_version():
    result = run_mcpool("--version")
    assert result.returncode == 0 and result.stdout.startswith("mcpool, version ")
