"""LOG_FORMAT=json under real gunicorn: every line of the log is one JSON object."""
import json

import pytest

from gunicorn_server import Server

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_every_log_line_is_json_and_access_lines_name_key_and_route(database_url):
    server = Server(database_url, workers=2, extra_env={'LOG_FORMAT': 'json'})
    try:
        token = server.headers['Authorization'].split()[1]
        session = server.session()
        assert session.post(server.url + '/user', data='uid=5', headers=FORM).status_code == 201
        answer = session.put(server.url + '/balance/5', data='operation=add&balance=3.00&'
                             'trans_desc=memo-kq7', headers={**FORM, 'Idempotency-Key': 'ik-93xz'})
        assert answer.status_code == 200
        assert session.get(server.url + '/nowhere').status_code == 404
        request_id = answer.headers['X-Request-ID']
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    text = server.log_text()
    server.log.close()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines
    deposit = [line for line in lines if line.get('request_id') == request_id
               and 'status' in line]
    assert len(deposit) == 1, lines
    assert deposit[0]['route'] == '/balance/{user_id}' and deposit[0]['path'] == '/balance/5'
    assert deposit[0]['key'].startswith('server-') and deposit[0]['status'] == 200
    assert any(line.get('route') == '/nowhere' and line.get('status') == 404 for line in lines)
    assert any(line.get('logger') == 'gunicorn.error' and line.get('level') == 'INFO'
               for line in lines)
    for secret in (token, 'ik-93xz', 'memo-kq7'):
        assert secret not in text
