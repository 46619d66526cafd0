"""End to end: the real gunicorn server over HTTP, as existing clients use it."""
import os
import re
import subprocess
import sys
import time
import uuid

import peewee
import pytest
import requests

from conftest import PG_URL, ROOT, _with_database
from balance_api.storage.db import open_database


def test_form_encoded_clients_work_end_to_end(server):
    http = server.session()
    base = server.url
    assert http.post(base + '/user', data={'uid': 12}).json() == {'user_id': 12, 'balance': '0.00'}
    assert http.post(base + '/user', data={'uid': 13}).status_code == 201
    # requests form-encodes `data`, as the existing clients do.
    added = http.put(base + '/balance/12', data={'operation': 'add', 'balance': '32.40'})
    assert (added.status_code, added.json()) == (200, {'user_id': 12, 'balance': '32.40'})
    moved = http.put(base + '/transfer',
                     data={'sender_id': 12, 'receiver_id': 13, 'balance': '2.4'})
    assert moved.json() == [{'user_id': 12, 'balance': '30.00'}, {'user_id': 13, 'balance': '2.40'}]
    refused = http.put(base + '/balance/13', data={'operation': 'sub', 'balance': '2.41'})
    assert (refused.status_code, refused.json()) == (
        409, {'code': 505, 'message': 'User has not enough money'})

    rows = http.get(base + '/history/uid=12').json()
    assert [(r['operation'], r['sender_id'], r['receiver_id'], r['sum']) for r in rows] == [
        ('user_add', 0, 12, '0.00'), ('balance_add', 0, 12, '32.40'),
        ('balance_transfer', 12, 13, '2.40')]
    assert http.get(base + '/history?uid=12').json() == rows
    assert http.get(base + '/balance').json() == [
        {'user_id': 12, 'balance': '30.00'}, {'user_id': 13, 'balance': '2.40'}]


def test_access_log_line_names_the_request_id(server):
    http = server.session()
    request_id = 'e2e-' + uuid.uuid4().hex
    answer = http.get(server.url + '/balance/424242', headers={
        'X-Request-ID': request_id, 'User-Agent': 'probe "quoted"'})
    assert answer.status_code == 404
    # The user field names the key (server.headers' key is server-<port>).
    pattern = re.compile(
        r'^127\.0\.0\.1 - server-%d \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
        r'"GET /balance/424242 HTTP/1\.1" 404 %d "-" "probe \\"quoted\\"" '
        r'\d+\.\d{6} "%s"$' % (server.port, len(answer.content), request_id), re.M)
    # The line is written after the answer is sent.
    deadline = time.monotonic() + 5
    while not pattern.search(server.log_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pattern.search(server.log_text()), server.log_text()[-2000:]


def test_http_errors_are_numbered_json(server):
    http = server.session()
    base = server.url
    cases = [
        http.get(base + '/no/such/route'),
        http.post(base + '/balance/1', data={'x': 1}),
        http.put(base + '/transfer', data='x' * (65 * 1024),
                 headers={'Content-Type': 'application/x-www-form-urlencoded'}),
        http.put(base + '/transfer', data=b'sender_id=1', headers={'Content-Type': 'text/plain'}),
    ]
    assert [(r.status_code, r.json()['code']) for r in cases] == [
        (404, 529), (405, 530), (413, 520), (415, 522)]
    for response in cases:
        assert response.headers['Content-Type'].startswith('application/json')
        assert set(response.json()) == {'code', 'message'}


def test_idempotent_retry_over_http(server):
    http = server.session()
    base = server.url
    http.post(base + '/user', data={'uid': 1})
    headers = {'Idempotency-Key': uuid.uuid4().hex}
    first = http.put(base + '/balance/1', data={'operation': 'add', 'balance': '5'},
                     headers=headers)
    again = http.put(base + '/balance/1', data={'operation': 'add', 'balance': '5.00'},
                     headers=headers)
    assert first.json() == again.json() == {'user_id': 1, 'balance': '5.00'}
    assert again.headers.get('Idempotent-Replayed') == 'true'
    assert http.get(base + '/balance/1').json()['balance'] == '5.00'


def test_docs_page_works_offline(server):
    # Open without a key.
    page = requests.get(server.url + '/api/docs')
    assert page.status_code == 200 and 'swagger-ui-bundle.js' in page.text
    for asset in ('swagger-ui-bundle.js', 'swagger-ui.css'):
        assert requests.get(server.url + '/api/docs/static/' + asset).status_code == 200
    assert requests.get(server.url + '/openapi.json').json()['openapi'].startswith('3.')


@pytest.fixture(params=['sqlite', 'postgresql'])
def blank_database_url(request, tmp_path):
    """A database with no schema at all."""
    if request.param == 'sqlite':
        yield 'sqlite:///%s' % (tmp_path / 'blank.db')
        return
    request.getfixturevalue('postgres_url')  # skips (or fails in CI) without a server
    admin = open_database(PG_URL)
    admin.connect()
    admin.connection().autocommit = True
    name = 'balance_api_blank_%s' % uuid.uuid4().hex[:12]
    admin.execute_sql('CREATE DATABASE %s' % name)
    yield _with_database(PG_URL, name)
    admin.execute_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    admin.close_all()


def test_two_processes_migrating_at_once_apply_the_schema_once(blank_database_url):
    env = {**os.environ, 'DATABASE_URL': blank_database_url}
    processes = [subprocess.Popen([sys.executable, '-m', 'balance_api', 'migrate'], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(3)]
    outputs = [p.communicate(timeout=60)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    migrations = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'migrations'))
                        if name[0].isdigit() and name.endswith('.py'))
    assert sum('applied: ' + ', '.join(migrations) in out for out in outputs) == 1, outputs
    assert sum('nothing, the schema is up to date' in out for out in outputs) == 2, outputs

    db = open_database(blank_database_url)
    with db.connection_context():
        applied = db.execute_sql('SELECT name FROM schema_migration ORDER BY name').fetchall()
        assert applied == [(name,) for name in migrations]
        assert db.execute_sql('SELECT id FROM account').fetchall() == [(0,)]
    if isinstance(db, peewee.PostgresqlDatabase):
        db.close_all()


def test_ten_megabyte_body_is_refused_before_it_is_read(server):
    import socket
    port = int(server.url.rsplit(':', 1)[1])
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        # Announce 10 MB, send only the headers: the answer must come anyway.
        sock.sendall(b'PUT /transfer HTTP/1.1\r\nHost: localhost\r\n'
                     b'Content-Type: application/x-www-form-urlencoded\r\n'
                     b'Content-Length: 10485760\r\n\r\n')
        answer = b''
        while b'\r\n\r\n' not in answer or not answer.rstrip().endswith(b'}'):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 413')
    assert b'"code": 520' in body
