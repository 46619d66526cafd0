"""Many clients, many gunicorn workers, a handful of accounts: no money is lost or made."""
import random
import threading
import uuid
from collections import Counter
from decimal import Decimal


from balance_api.storage.db import database, open_database
from balance_api.money.verify import verify_ledger

THREADS = 32
REQUESTS_PER_THREAD = 25
USERS = [101, 102, 103, 104, 105, 106]
OPENING = Decimal('500.00')


def _random_amount(rng):
    return Decimal(rng.randint(1, 12000)) / 100


def _client(server, seed, results):
    base = server.url
    rng = random.Random(seed)
    session = server.session()
    for _ in range(REQUESTS_PER_THREAD):
        amount = _random_amount(rng)
        description = uuid.uuid4().hex
        choice = rng.random()
        if choice < 0.6:
            sender, receiver = rng.sample(USERS, 2)
            kind, path, method = 'transfer', '/transfer', 'put'
            data = {'sender_id': sender, 'receiver_id': receiver, 'balance': str(amount)}
        else:
            kind = 'add' if choice < 0.8 else 'sub'
            path, method = '/balance/%d' % rng.choice(USERS), 'put'
            data = {'operation': kind, 'balance': str(amount)}
        data['trans_desc'] = description
        response = session.request(method, base + path, data=data, timeout=60,
                                   headers={'Idempotency-Key': description})
        results.append((kind, amount, description, response.status_code, response.json()))


def test_concurrent_transfers_keep_every_invariant(server, database_url):
    http = server.session()
    base = server.url
    for uid in USERS:
        assert http.post(base + '/user', data={'uid': uid}).status_code == 201
        assert http.put(base + '/balance/%d' % uid,
                        data={'operation': 'add', 'balance': str(OPENING)}).status_code == 200

    results = []
    threads = [threading.Thread(target=_client, args=(server, seed, results))
               for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == THREADS * REQUESTS_PER_THREAD
    outcomes = Counter((kind, status) for kind, _, _, status, _ in results)
    unexpected = {k: v for k, v in outcomes.items() if k[1] not in (200, 409)}
    assert not unexpected, (unexpected, server.log_text()[-3000:])
    refusals = {body['code'] for _, _, _, status, body in results if status == 409}
    assert refusals <= {505}
    assert outcomes[('transfer', 200)] > 0

    deposits = sum(a for kind, a, _, status, _ in results if kind == 'add' and status == 200)
    withdrawals = sum(a for kind, a, _, status, _ in results if kind == 'sub' and status == 200)
    balances = http.get(base + '/balance').json()
    assert sorted(b['user_id'] for b in balances) == USERS
    total = sum(Decimal(b['balance']) for b in balances)
    assert total == OPENING * len(USERS) + deposits - withdrawals
    assert all(Decimal(b['balance']) >= 0 for b in balances)

    # Every answered change has exactly one journal row; refusals have none.
    by_description = Counter(row['transaction_description']
                             for row in http.get(base + '/history').json())
    for kind, _, description, status, _ in results:
        assert by_description[description] == (1 if status == 200 else 0), (kind, status)

    db = open_database(database_url)
    database.initialize(db)
    with db.connection_context():
        report = verify_ledger(db)
    assert report.ok, report.problems
    assert report.postings >= outcomes[('transfer', 200)] * 2
