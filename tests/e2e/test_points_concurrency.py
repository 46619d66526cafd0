"""Many clients spending one member's points and correcting the same payers
at once, against gunicorn with several workers: no grant is drawn twice,
no payer goes negative, every answered change is in the ledger."""
import random
import threading
from collections import Counter

import requests

from balance_api.money.verify import verify_ledger
from balance_api.points.models import PointsEntry
from balance_api.points.verify import verify_points
from balance_api.storage.db import database, open_database

THREADS = 32
REQUESTS_PER_THREAD = 8
MEMBER = 7
PAYERS = ['DANNON', 'UNILEVER', 'MILLER COORS', 'ACME']
GRANTS_PER_PAYER = 6
GRANT_POINTS = 50


def _client(base, seed, results):
    rng = random.Random(seed)
    session = requests.Session()
    for _ in range(REQUESTS_PER_THREAD):
        if rng.random() < 0.6:
            points = rng.randint(1, 30)
            response = session.post(base + '/points/%d/spend' % MEMBER,
                                    json={'points': points}, timeout=60)
            results.append(('spend', None, points, response.status_code, response.json()))
        else:
            payer, points = rng.choice(PAYERS), rng.randint(1, 20)
            response = session.post(base + '/points/%d/add' % MEMBER,
                                    json={'payer': payer, 'points': -points}, timeout=60)
            results.append(('correction', payer, points, response.status_code,
                            response.json()))


def test_concurrent_spends_and_corrections_never_overdraw(server, database_url):
    base = server.url
    assert requests.post(base + '/user', data={'uid': MEMBER}).status_code == 201
    for number in range(GRANTS_PER_PAYER):
        for index, payer in enumerate(PAYERS):
            moment = '2024-01-%02dT%02d:00:00Z' % (number + 1, index)
            answer = requests.post(base + '/points/%d/add' % MEMBER, json={
                'payer': payer, 'points': GRANT_POINTS, 'timestamp': moment})
            assert answer.status_code == 201, answer.text
    granted = len(PAYERS) * GRANTS_PER_PAYER * GRANT_POINTS

    results = []
    threads = [threading.Thread(target=_client, args=(base, seed, results))
               for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == THREADS * REQUESTS_PER_THREAD
    statuses = Counter((kind, status) for kind, _, _, status, _ in results)
    assert set(statuses) <= {('spend', 200), ('spend', 409), ('correction', 201),
                             ('correction', 409)}, (statuses, server.log_text()[-3000:])
    refusals = Counter((kind, body['code']) for kind, _, _, status, body in results
                       if status == 409)
    assert set(refusals) <= {('spend', 605), ('correction', 606)}, refusals
    # Both kinds were applied and both were refused: the points ran out under contention.
    assert all(statuses[outcome] for outcome in [('spend', 200), ('correction', 201),
                                                 ('spend', 409)]), statuses

    spent = []
    for kind, payer, points, status, body in results:
        if kind == 'spend' and status == 200:
            assert sum(part['points'] for part in body) == -points, body
            assert len({part['payer'] for part in body}) == len(body), body
            spent.extend((part['payer'], part['points']) for part in body)
    corrected = [(payer, -points) for kind, payer, points, status, _ in results
                 if kind == 'correction' and status == 201]
    drawn = -sum(points for _, points in spent + corrected)
    assert drawn <= granted

    balances = requests.get(base + '/points/%d/balance' % MEMBER).json()
    assert set(balances) == set(PAYERS)
    assert all(points >= 0 for points in balances.values()), balances
    assert sum(balances.values()) == granted - drawn
    for payer in PAYERS:
        taken = -sum(points for name, points in spent + corrected if name == payer)
        assert balances[payer] == GRANTS_PER_PAYER * GRANT_POINTS - taken, payer

    db = open_database(database_url)
    database.initialize(db)
    with db.connection_context():
        written = Counter((event_type, payer, amount) for event_type, payer, amount in
                          PointsEntry.select(PointsEntry.event_type, PointsEntry.payer,
                                             PointsEntry.amount)
                          .where(PointsEntry.amount < 0).tuples())
        # Every answered change has exactly its entries; refusals have none.
        assert written == Counter([('use', payer, points) for payer, points in spent]
                                  + [('revoke', payer, points) for payer, points in corrected])
        points_report = verify_points(db)
        money_report = verify_ledger(db)
    assert points_report.ok, points_report.problems
    assert money_report.ok, money_report.problems
    assert points_report.entries == len(PAYERS) * GRANTS_PER_PAYER + sum(written.values())
