"""The real gunicorn server: 64 threads claiming from a brand with fewer codes than
claimants, and one user's claims racing each other. No code goes to two users, no user
holds two codes, the rest are told the brand ran out, verify passes and no log line
holds a key. Through nginx too: its logs hold no key either."""
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import requests

from balance_api.auth import permits
from balance_api.config import Settings
from balance_api.discounts.routes import LEGACY_CLAIM, SECRET_ROUTES
from balance_api.storage.db import open_database
from balance_api.web import proxy
from conftest import ROOT, nginx_binary
from gunicorn_server import Server, _free_port, bearer, create_key_in

CLAIMANTS = 64
CODES = 40
SAME_USER_THREADS = 16


def _keys(database_url, uids):
    db = open_database(database_url)
    try:
        return {uid: create_key_in(db, 'user-%d' % uid, [permits.DISCOUNT_CODES_GET], uid=uid)
                for uid in uids}
    finally:
        db.close_all() if hasattr(db, 'close_all') else db.close()


def _setup(server, database_url, uids, brands):
    http = server.session()
    for uid in uids:
        assert http.post(server.url + '/user', data={'uid': uid}).status_code == 201
    for brand_id, number in brands:
        answer = http.post(server.url + '/discounts/api/v1.0/generate',
                           json={'brand_id': brand_id, 'number_of_codes': number})
        assert answer.status_code == 201, answer.text
    return _keys(database_url, uids)


def _together(count, work):
    """Run ``work(index)`` in ``count`` threads released at once; their results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(index):
        barrier.wait()
        results[index] = work(index)
    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _legacy(server, uid, token, brand_id):
    answer = requests.get(server.url + LEGACY_CLAIM.format(
        user_id=uid, user_secret=token, brand_id=brand_id), timeout=60)
    return answer.status_code, answer.json()


def test_claims_racing_for_too_few_codes(server, database_url):
    uids = list(range(1, CLAIMANTS + 1))
    tokens = _setup(server, database_url, uids, [(1, CODES), (2, 3)])

    def claim(index):
        uid = uids[index]
        if index % 2:
            answer = requests.get(server.url + '/discounts/1/code', timeout=60,
                                  headers=bearer(tokens[uid]))
            body = answer.json()
            return uid, answer.status_code, body.get('code'), body
        status, body = _legacy(server, uid, tokens[uid], 1)
        return uid, status, body['data'] if status == 200 else int(body['code']), body

    results = _together(CLAIMANTS, claim)
    won = {uid: code for uid, status, code, _ in results if status == 200}
    refused = [(status, code) for _, status, code, _ in results if status != 200]
    assert len(won) == CODES, (results, server.log_text()[-3000:])
    assert len(set(won.values())) == CODES
    assert Counter(refused) == {(409, 906): CLAIMANTS - CODES}, refused
    # Every loser in its own form: the clean form's error body, or the envelope.
    for uid, status, _, body in results:
        if status == 409 and uid % 2 == 0:
            assert body == {'code': 906, 'message': 'The brand has no unclaimed discount '
                                                    'codes left'}
        elif status == 409:
            assert body == {'code': '906', 'data': '', 'status': 'error', 'message': 'The brand '
                            'has no unclaimed discount codes left'}
    # Asking again answers the same code, or the same refusal.
    for uid in uids[:8]:
        status, body = _legacy(server, uid, tokens[uid], 1)
        if uid in won:
            assert (status, body['data']) == (200, won[uid])
        else:
            assert (status, body['code']) == (409, '906')

    # One user's claims racing each other (brand 2): one code, one audit row.
    same = _together(SAME_USER_THREADS, lambda index: _legacy(server, 1, tokens[1], 2))
    assert {status for status, _ in same} == {200}
    assert len({body['data'] for _, body in same}) == 1

    http = server.session()
    stats = http.get(server.url + '/discounts/1/stats').json()
    assert stats == {'brand_id': 1, 'generated': CODES, 'claimed': CODES, 'remaining': 0}
    assert http.get(server.url + '/discounts/2/stats').json()['claimed'] == 1
    verified = subprocess.run([sys.executable, '-m', 'balance_api', 'verify'], cwd=ROOT,
                              env={**os.environ, 'DATABASE_URL': database_url},
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert 'discount brands: 2, codes: %d, claimed: %d, audit rows: %d' % (
        CODES + 3, CODES + 1, 2 + CODES + 1) in verified.stdout

    requests.get(server.url + LEGACY_CLAIM.format(user_id=1, user_secret='B' * 43,
                                                  brand_id=1), timeout=10)
    time.sleep(0.5)
    log = server.log_text()
    assert LEGACY_CLAIM in log
    for token in tokens.values():
        assert token not in log


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
def test_through_nginx_no_log_holds_the_key(database_url, tmp_path):
    binary = nginx_binary()
    server = Server(database_url, workers=2)
    prefix = tmp_path / 'nginx'
    prefix.mkdir()
    listen = '127.0.0.1:%d' % _free_port()
    conf = prefix / 'nginx.conf'
    conf.write_text(proxy.render(Settings(), listen=listen, upstream='127.0.0.1:%d' % server.port,
                                 prefix=str(prefix), secret_routes=SECRET_ROUTES))
    nginx = subprocess.Popen([binary, '-p', str(prefix), '-c', str(conf), '-e',
                              str(prefix / 'error.log'), '-g', 'daemon off;'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = 'http://%s' % listen
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if requests.get(url + '/health', timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        tokens = _setup(server, database_url, [5], [(1, 2)])
        good = requests.get(url + LEGACY_CLAIM.format(user_id=5, user_secret=tokens[5],
                                                      brand_id=1), timeout=10)
        assert good.status_code == 200 and good.json()['status'] == 'success'
        for path in ('/discounts/api/v1.0/get_code/5/%s/1' % ('C' * 43),
                     '/DISCOUNTS/api/v1%%2E0/get_code/5/%s/1?x=y' % tokens[5],
                     '/discounts/api/v1.0/get_code/5/%s' % tokens[5]):
            assert requests.get(url + path, timeout=10).status_code in (401, 404)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        served = server.log_text()
        server.stop()
    logs = (prefix / 'access.log').read_text() + (prefix / 'error.log').read_text()
    assert logs.count('GET %s HTTP/1.1' % LEGACY_CLAIM) == 4, logs
    assert tokens[5] not in logs and 'C' * 43 not in logs
    assert tokens[5] not in served
