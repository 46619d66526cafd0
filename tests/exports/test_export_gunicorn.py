"""An export taken over gunicorn while 16 threads move money is one
consistent snapshot: every entry whole, every account's balances
continuous from row to row, and everything as its manifest states."""
import datetime
import hashlib
import json
import random
import threading
from decimal import Decimal

from balance_api.exports import signing
from gunicorn_server import Server

USERS = 8


def test_an_export_during_transfers_is_consistent(database_url, tmp_path):
    key_file = str(tmp_path / 'signing.pem')
    public = signing.create_key_file(key_file)
    server = Server(database_url, extra_env={'SIGNING_KEY_FILE': key_file})
    try:
        session = server.session()
        for uid in range(1, USERS + 1):
            assert session.post(server.url + '/user', data={'uid': uid}).status_code == 201
            assert session.put(server.url + '/balance/%d' % uid,
                               data={'operation': 'add', 'balance': '1000'}).status_code == 200
        stop = threading.Event()

        def move(seed):
            rng, own = random.Random(seed), server.session()
            while not stop.is_set():
                sender, receiver = rng.sample(range(1, USERS + 1), 2)
                if rng.random() < 0.1:
                    own.put(server.url + '/balance/%d' % sender,
                            data={'operation': 'add', 'balance': '0.%02d' % rng.randint(1, 99)})
                else:
                    own.put(server.url + '/transfer', data={
                        'sender_id': sender, 'receiver_id': receiver,
                        'balance': '%d.%02d' % (rng.randint(0, 3), rng.randint(1, 99))})

        threads = [threading.Thread(target=move, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        try:
            today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
            exports = []
            for _ in range(3):
                answer = session.get(server.url + '/export', params={
                    'date-start': today, 'date-end': today, 'format': 'jsonl'})
                assert answer.status_code == 200, answer.text
                exports.append(answer.content)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    finally:
        server.stop()

    for data in exports:
        lines = data.decode('utf-8').splitlines()
        rows, manifest = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])['manifest']
        assert signing.verify(manifest, public)
        assert manifest['sha256'] == hashlib.sha256(
            data[:data.rindex(b'{"manifest"')]).hexdigest()
        assert manifest['rows'] == len(rows) and manifest['last_id'] == rows[-1]['id']
        balances = {a['account_id']: Decimal(a['opening_balance']) for a in manifest['accounts']}
        for row in rows:
            amount = Decimal(row['sum'])
            legs = []
            if row['sender_id']:
                legs.append((row['sender_id'], -amount, row['sender_balance_after']))
            if row['receiver_id']:
                legs.append((row['receiver_id'], amount, row['receiver_balance_after']))
            for account, delta, after in legs:
                assert after is not None, row  # the entry is whole
                if row['operation'] == 'user_add':
                    delta = Decimal('0')
                assert balances[account] + delta == Decimal(after), (account, row)
                balances[account] = Decimal(after)
        assert {a['account_id']: Decimal(a['closing_balance'])
                for a in manifest['accounts']} == balances
        assert len(rows) > 2 * USERS
