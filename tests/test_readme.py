"""The README is part of the contract: its error table and test command match the code."""
import os
import re

from conftest import ROOT
from balance_api import errors


def _read(name):
    with open(os.path.join(ROOT, name), encoding='utf-8') as handle:
        return handle.read()


def test_error_table_lists_every_error_exactly():
    rows = re.findall(r'^\| (\d{3}) \| (\d{3}) \| (.+) \|$', _read('README.md'), re.M)
    documented = [(int(code), status, message) for code, status, message in rows]
    actual = [(e.code, e.status[:3], e.message) for e in errors.all_errors()]
    assert documented == actual


def test_ci_runs_the_readme_test_command():
    readme = _read('README.md')
    test_command = re.search(r'Run the tests.*?```sh\n(.+?)\n```', readme, re.S).group(1)
    ci_lines = [line.strip() for line in _read('.ci/run').splitlines()]
    assert test_command in ci_lines


def test_configuration_table_states_the_defaults_the_code_uses():
    from balance_api.config import Settings
    rows = dict(re.findall(r'^\| `([A-Z_]+)` \| `([^`]*)` \|', _read('README.md'), re.M))
    defaults = Settings()
    assert rows['DATABASE_URL'] == defaults.database_url
    assert rows['MAX_BODY_BYTES'] == str(defaults.max_body_bytes)
    assert rows['DB_POOL_SIZE'] == str(defaults.pool_size)
