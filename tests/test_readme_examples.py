"""The README's first session, run as written against the real service.

"A first session" is one sequence of examples. Each is a ```sh block that
runs curl, followed directly by the service's answer in a ```json or
```text block. The test starts ``python -m balance_api serve`` on a new
SQLite database, so serve makes the ``bootstrap`` key and prints its token
as the README says. It runs every example with bash, in the README's order,
with ``TOKEN`` set to that token and ``http://127.0.0.1:8000`` replaced by
the server's address, and compares each answer with the one shown: JSON by
value, text line by line (CRLF read as LF). The only exceptions are the
placeholders the README names (``<time>``, ``<hash>``, ``<code>``), each of
which matches only a value of its own shape.
"""
import datetime
import json
import os
import re
import shutil
import subprocess
import time
from decimal import Decimal

import pytest

from conftest import ROOT
from gunicorn_server import Server

SECTION = 'A first session'
README_URL = 'http://127.0.0.1:8000'
ANSWER_KINDS = ('json', 'text')

# What a placeholder in an answer stands for: a value of exactly this shape.
PLACEHOLDERS = {
    '<time>': r'\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d{1,6})?Z?',
    '<hash>': r'[0-9a-f]{32}(?:[0-9a-f]{32})?',
    '<code>': r'[2-9A-HJ-NP-Z]{8}',
}
_PLACEHOLDER = re.compile('|'.join(re.escape(name) for name in PLACEHOLDERS))
_FENCE = re.compile(r'^```(\w*)\n(.*?)^```$', re.M | re.S)


def _readme():
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as handle:
        return handle.read()


def _section(text, title):
    match = re.search(r'^## %s\n(.*?)(?=^## )' % re.escape(title), text, re.M | re.S)
    assert match, 'the README has no section "## %s"' % title
    return match.group(1)


def examples(section):
    """``[(command, kind, answer)]``: every sh block with curl and the answer block after it."""
    blocks = list(_FENCE.finditer(section))
    found = []
    for index, block in enumerate(blocks):
        if block.group(1) != 'sh' or 'curl' not in block.group(2):
            continue
        assert index + 1 < len(blocks), 'no answer after the example:\n%s' % block.group(2)
        answer = blocks[index + 1]
        between = section[block.end():answer.start()]
        assert not between.strip() and answer.group(1) in ANSWER_KINDS, (
            'an example must be followed directly by a ```json or ```text block '
            'with its answer:\n%s' % block.group(2))
        found.append((block.group(2), answer.group(1), answer.group(2).rstrip('\n')))
    return found


def masked_json(expected, actual):
    """``actual`` with every value that a placeholder in ``expected`` matches
    replaced by that placeholder: equal to ``expected`` when the answer is."""
    if isinstance(expected, str) and expected in PLACEHOLDERS:
        if isinstance(actual, str) and re.fullmatch(PLACEHOLDERS[expected], actual):
            return expected
        return actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {key: masked_json(expected.get(key), value) for key, value in actual.items()}
    if isinstance(expected, list) and isinstance(actual, list):
        return [masked_json(want, got) for want, got in zip(expected, actual)] + \
            actual[len(expected):]
    return actual


def _line_pattern(line):
    parts, last = [], 0
    for match in _PLACEHOLDER.finditer(line):
        parts += [re.escape(line[last:match.start()]), '(?:%s)' % PLACEHOLDERS[match.group()]]
        last = match.end()
    return ''.join(parts + [re.escape(line[last:])])


def masked_text(expected, actual):
    """The lines of ``actual``, each that matches its line of ``expected``
    (placeholders and all) replaced by that line."""
    want = expected.split('\n')
    got = actual.replace('\r\n', '\n').rstrip('\n').split('\n')
    return [pattern if re.fullmatch(_line_pattern(pattern), line) else line
            for pattern, line in zip(want, got)] + got[len(want):]


def assert_answer(kind, expected, stdout, command):
    where = 'the README example\n%s\nanswered\n%s' % (command, stdout)
    if kind == 'json':
        want = json.loads(expected, parse_float=Decimal)
        try:
            got = json.loads(stdout, parse_float=Decimal)
        except ValueError:
            pytest.fail('%s\nwhich is not the JSON the README shows' % where)
        assert masked_json(want, got) == want, where
    else:
        assert masked_text(expected, stdout) == expected.split('\n'), where


def _wait_past_midnight():
    # The examples ask for today's UTC date: never start them as the day ends.
    now = datetime.datetime.now(datetime.timezone.utc)
    left = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    if left < 60:
        time.sleep(left + 1)


def test_every_curl_example_of_the_readme_is_in_the_tested_section():
    text = _readme()
    section = _section(text, SECTION)
    everywhere = [block.group(2) for block in _FENCE.finditer(text)
                  if block.group(1) == 'sh' and 'curl' in block.group(2)]
    tested = [command for command, _, _ in examples(section)]
    assert everywhere == tested
    assert len(tested) >= 10


def test_the_matching_refuses_what_differs():
    # The placeholders match their shape only; everything else must be equal.
    assert masked_json({'date': '<time>'}, {'date': '2026-12-01 15:53:59'}) == {'date': '<time>'}
    assert masked_json({'date': '<time>'}, {'date': 'yesterday'}) != {'date': '<time>'}
    assert masked_json({'code': '<code>'}, {'code': 'O0I1ABCD'}) != {'code': '<code>'}
    assert masked_json([{'a': '1.00'}], [{'a': '1.00'}, {'a': '2.00'}]) != [{'a': '1.00'}]
    assert masked_json({'a': '<hash>'}, {'a': 'ab' * 16, 'b': 1}) != {'a': '<hash>'}
    assert masked_text('x,<hash>', 'x,%s\r\n' % ('0f' * 32)) == ['x,<hash>']
    assert masked_text('x,<hash>', 'y,%s' % ('0f' * 32)) != ['x,<hash>']
    assert masked_text('a\nb', 'a\nb\nc') != ['a', 'b']


def test_the_first_session_answers_what_the_readme_shows(tmp_path):
    assert shutil.which('curl'), "the README's examples need curl"
    found = examples(_section(_readme(), SECTION))
    _wait_past_midnight()
    # No key made beforehand: serve makes the bootstrap key, as on a first start.
    server = Server('sqlite:///%s' % (tmp_path / 'balance_api.db'), workers=2, admin_key=False)
    try:
        token = re.search(r'^BOOTSTRAP TOKEN: (\S+)$', server.log_text(), re.M)
        assert token, 'serve printed no bootstrap token:\n%s' % server.log_text()
        env = {**os.environ, 'TOKEN': token.group(1),
               'NO_PROXY': '127.0.0.1', 'no_proxy': '127.0.0.1'}
        for command, kind, expected in found:
            ran = subprocess.run(['bash', '-c', command.replace(README_URL, server.url)],
                                 cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=60)
            assert ran.returncode == 0, 'the README example\n%s\nfailed (%d):\n%s' % (
                command, ran.returncode, ran.stderr)
            assert_answer(kind, expected, ran.stdout, command)
    finally:
        server.stop()
