"""--config/--auth/--endpoint work before or after the service sub-command."""
import pytest
from click.testing import CliRunner

from cvem.cli import cli


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cvem.conf"
    path.write_text("[cvem]\nstate_db = %s\nperiod_s = 7\n" % (tmp_path / "state.db"))
    return str(path)


@pytest.mark.parametrize("where", ["group", "command"])
def test_check_config_reads_the_file_given_either_way(config_file, where):
    args = (["--config", config_file, "check-config"] if where == "group"
            else ["check-config", "--config", config_file])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "period 7 s" in result.output


def test_the_sub_command_value_wins(config_file, tmp_path):
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "missing.conf"),
                                      "check-config", "--config", config_file])
    assert result.exit_code == 0, result.output


def test_a_missing_file_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--once", "--config", str(tmp_path / "nope.conf")])
    assert result.exit_code == 1
    assert "does not exist" in result.output
