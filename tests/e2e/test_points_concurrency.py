"""Many clients changing the same members' points at once, against gunicorn
with several workers: spends and corrections of one member, and v3 batches
over several members in orders of their own alongside payer spends. No
grant is drawn twice, no payer goes negative, every answered change is in
the ledger, no request deadlocks."""
import random
import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlparse

import pytest

from balance_api.money.verify import verify_ledger
from balance_api.points.models import PointsEntry, PointsTransaction
from balance_api.points.verify import verify_points
from balance_api.storage.db import database, open_database

THREADS = 32
REQUESTS_PER_THREAD = 8
MEMBER = 7
PAYERS = ['DANNON', 'UNILEVER', 'MILLER COORS', 'ACME']
GRANTS_PER_PAYER = 6
GRANT_POINTS = 50


def _client(server, seed, results):
    base = server.url
    rng = random.Random(seed)
    session = server.session()
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
    http = server.session()
    base = server.url
    assert http.post(base + '/user', data={'uid': MEMBER}).status_code == 201
    for number in range(GRANTS_PER_PAYER):
        for index, payer in enumerate(PAYERS):
            moment = '2024-01-%02dT%02d:00:00Z' % (number + 1, index)
            answer = http.post(base + '/points/%d/add' % MEMBER, json={
                'payer': payer, 'points': GRANT_POINTS, 'timestamp': moment})
            assert answer.status_code == 201, answer.text
    granted = len(PAYERS) * GRANTS_PER_PAYER * GRANT_POINTS

    results = []
    threads = [threading.Thread(target=_client, args=(server, seed, results))
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

    balances = http.get(base + '/points/%d/balance' % MEMBER).json()
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


# -- v3 batches over several members, at the same time as payer spends -----

BATCH_MEMBERS = [1, 2, 3, 4]
BATCH_THREADS = 12
BATCHES_PER_THREAD = 6
SPENDING_THREADS = 4
SPENDS_PER_THREAD = 12
NOT_ENOUGH = 'Not enough points in the wallet'
# How long the server's backends get to exit once ended.
BACKEND_EXIT_SECONDS = 10


def _batch(rng, name):
    """Items for three or four members in an order of the batch's own
    ([3, 1, 2], [2, 4, 3, 1], ...), each member spending or earning once or
    twice; every item tagged by its receipt_id, half with a transaction id."""
    items = []
    for member in rng.sample(BATCH_MEMBERS, rng.randint(3, 4)):
        for _ in range(rng.randint(1, 2)):
            tag = '%s.%d' % (name, len(items))
            if rng.random() < 0.65:
                event_type, amount = 'use', -rng.randint(5, 60)
            else:
                event_type, amount = 'purchase', rng.randint(5, 40)
            item = {'identifier_type': 'id', 'identifier': str(member),
                    'event_type': event_type, 'amount': amount, 'receipt_id': tag}
            if rng.random() < 0.5:
                item['transaction_id'] = 'tx-' + tag
            items.append(item)
    return items


def _post_batches(server, seed, answers):
    base = server.url
    rng = random.Random(seed)
    session = server.session()
    for number in range(BATCHES_PER_THREAD):
        items = _batch(rng, 'batch-%d-%d' % (seed, number))
        response = session.post(base + '/v3/default/transactions/points', json=items,
                                headers={'Idempotency-Key': uuid.uuid4().hex}, timeout=60)
        answers.append(('batch', items, response.status_code, response.json()))


def _spend(server, seed, answers):
    base = server.url
    rng = random.Random(seed)
    session = server.session()
    for _ in range(SPENDS_PER_THREAD):
        member, points = rng.choice(BATCH_MEMBERS), rng.randint(5, 60)
        response = session.post(base + '/points/%d/spend' % member, json={'points': points},
                                headers={'Idempotency-Key': uuid.uuid4().hex}, timeout=60)
        answers.append(('spend', (member, points), response.status_code, response.json()))


def _deadlocks(db, database_name):
    # The statistics are read once per transaction and kept: read them anew.
    db.execute_sql('SELECT pg_stat_clear_snapshot()')
    return db.execute_sql('SELECT deadlocks FROM pg_stat_database WHERE datname = %s',
                          (database_name,)).fetchone()[0]


def _end_other_backends(db, database_name):
    """End every other session on the database and wait until they are gone:
    an idle backend reports its statistics (a deadlock it detected) up to
    10 s late, one that exits reports them at once."""
    others = ('FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()')
    db.execute_sql('SELECT pg_terminate_backend(pid) ' + others, (database_name,))
    deadline = time.monotonic() + BACKEND_EXIT_SECONDS
    while db.execute_sql('SELECT count(*) ' + others, (database_name,)).fetchone()[0]:
        assert time.monotonic() < deadline, 'the server\'s backends did not exit'
        time.sleep(0.05)


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_batches_over_shared_members_in_any_order_with_spends_never_deadlock(server,
                                                                             database_url):
    http = server.session()
    base = server.url
    for member in BATCH_MEMBERS:
        assert http.post(base + '/user', data={'uid': member}).status_code == 201
        for number in range(GRANTS_PER_PAYER // 2):
            for index, payer in enumerate(PAYERS):
                answer = http.post(base + '/points/%d/add' % member, json={
                    'payer': payer, 'points': GRANT_POINTS,
                    'timestamp': '2024-02-%02dT%02d:00:00Z' % (number + 1, index)})
                assert answer.status_code == 201, answer.text
    opening = len(PAYERS) * (GRANTS_PER_PAYER // 2) * GRANT_POINTS

    database_name = urlparse(database_url).path[1:]
    db = open_database(database_url, pool_size=1)
    database.initialize(db)
    db.connect()
    deadlocks_before = _deadlocks(db, database_name)

    answers = []
    threads = [threading.Thread(target=_post_batches, args=(server, seed, answers))
               for seed in range(BATCH_THREADS)]
    threads += [threading.Thread(target=_spend, args=(server, 100 + seed, answers))
                for seed in range(SPENDING_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    log = server.log_text()
    batches = [(items, body) for kind, items, _, body in answers if kind == 'batch']
    spends = [(asked, status, body) for kind, asked, status, body in answers if kind == 'spend']
    statuses = Counter((kind, status) for kind, _, status, _ in answers)
    assert len(batches) == BATCH_THREADS * BATCHES_PER_THREAD
    assert len(spends) == SPENDING_THREADS * SPENDS_PER_THREAD
    assert set(statuses) <= {('batch', 200), ('spend', 200), ('spend', 409)}, (
        statuses, log[-3000:])
    assert {body['code'] for _, status, body in spends if status == 409} <= {605}
    assert 'deadlock' not in log.lower(), log[-3000:]

    # Each item's status says what it did, and fits its kind: grants always
    # apply (their transaction ids are all different), spends may find too few points.
    feedback = []
    for items, body in batches:
        assert [(answer['event_type'], answer['amount']) for answer in body] == [
            (item['event_type'], item['amount']) for item in items]
        feedback.extend(zip(items, [answer['status'] for answer in body]))
    assert {status for item, status in feedback if item['amount'] > 0} == {'ok'}
    assert {status for item, status in feedback if item['amount'] < 0} == {'ok', NOT_ENOUGH}
    # The points ran out under contention for the payer API's spends too.
    assert statuses[('spend', 200)] and statuses[('spend', 409)], statuses

    entries = list(PointsEntry.select(PointsEntry.receipt_id, PointsEntry.member_id,
                                      PointsEntry.event_type, PointsEntry.payer,
                                      PointsEntry.amount, PointsEntry.transaction_id).dicts())
    claimed = {transaction_id for transaction_id, in
               PointsTransaction.select(PointsTransaction.transaction_id).tuples()}
    points_report = verify_points(db)
    money_report = verify_ledger(db)
    by_tag = {}
    for entry in entries:
        if entry['receipt_id'] is not None:
            by_tag.setdefault(entry['receipt_id'], []).append(entry)
    # An applied item's entries are there exactly once; a refused one wrote nothing.
    for item, status in feedback:
        written = by_tag.pop(item['receipt_id'], [])
        if status != 'ok':
            assert written == [], (item, written)
            continue
        assert {(entry['member_id'], entry['event_type'], entry['transaction_id'])
                for entry in written} == {
            (int(item['identifier']), item['event_type'], item.get('transaction_id'))}, (
                item, written)
        if item['amount'] > 0:
            assert [(entry['payer'], entry['amount']) for entry in written] == [
                ('', item['amount'])], (item, written)
        else:
            payers = [entry['payer'] for entry in written]
            assert len(set(payers)) == len(payers), (item, written)
            assert sum(entry['amount'] for entry in written) == item['amount'], (item, written)
    assert by_tag == {}
    assert claimed == {item['transaction_id'] for item, status in feedback
                       if status == 'ok' and 'transaction_id' in item}
    # The payer API's spends: their entries are exactly the breakdowns answered;
    # besides them only the opening grants have no receipt.
    for (member, points), status, body in spends:
        if status == 200:
            assert sum(part['points'] for part in body) == -points, body
    drawn = Counter((member, part['payer'], part['points']) for (member, _), status, body
                    in spends if status == 200 for part in body)
    untagged = [entry for entry in entries if entry['receipt_id'] is None]
    assert Counter((entry['member_id'], entry['payer'], entry['amount']) for entry in untagged
                   if entry['event_type'] == 'use') == drawn
    assert Counter(entry['event_type'] for entry in untagged if entry['event_type'] != 'use') == {
        'issue': len(BATCH_MEMBERS) * len(PAYERS) * (GRANTS_PER_PAYER // 2)}
    assert points_report.ok, points_report.problems
    assert money_report.ok, money_report.problems

    # What each member holds is what was granted less what the answers say was taken.
    for member in BATCH_MEMBERS:
        changed = sum(item['amount'] for item, status in feedback
                      if status == 'ok' and int(item['identifier']) == member)
        changed -= sum(points for (spender, points), status, _ in spends
                       if status == 200 and spender == member)
        held = http.get(base + '/v3/default/transactions/points/by_member_id/%d'
                        % member).json()
        assert held == {'default': opening + changed}, member
        assert held['default'] >= 0

    _end_other_backends(db, database_name)
    assert _deadlocks(db, database_name) == deadlocks_before
    db.close_all()


# -- one transaction id claimed for two members at once -------------------

# Pairs of batches sent at once. A pair need not meet in the database (both
# may reach one worker, or one may finish first), so there are many.
CROSSING_PAIRS = 16
CLAIMS_PER_BATCH = 10


def _claim(server, member, transaction_ids, start, answers):
    items = [{'identifier_type': 'id', 'identifier': str(member), 'event_type': 'purchase',
              'amount': 5, 'transaction_id': transaction_id}
             for transaction_id in transaction_ids]
    session = server.session()
    start.wait()
    response = session.post(server.url + '/v3/default/transactions/points', json=items,
                            timeout=60)
    answers.append((member, response.status_code, response.json()))


# Two batches of different members claiming the same transaction ids in
# crossing orders: claimed item by item, each would wait for the other's
# claims (a deadlock, answered 503); the ids are locked in one order first.
@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_batches_of_two_members_claiming_the_same_ids_in_crossing_order(server, database_url):
    http = server.session()
    for member in range(1, 2 * CROSSING_PAIRS + 1):
        http.post(server.url + '/user', data={'uid': member}).raise_for_status()
    answers = []
    for pair in range(CROSSING_PAIRS):
        ids = ['pair-%d-receipt-%d' % (pair, number) for number in range(CLAIMS_PER_BATCH)]
        start = threading.Barrier(2)
        threads = [threading.Thread(target=_claim, args=(server, 2 * pair + 1, ids, start,
                                                         answers)),
                   threading.Thread(target=_claim, args=(server, 2 * pair + 2, ids[::-1],
                                                         start, answers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(status != 200 for _, status, _ in answers):
            break  # one failed pair settles it, and each costs a deadlock timeout (1 s)

    statuses = Counter(status for _, status, _ in answers)
    assert statuses == {200: 2 * CROSSING_PAIRS}, (statuses, answers)
    assert 'deadlock' not in server.log_text().lower()
    # Whichever batch claimed an id first applied it; the other was told it is a duplicate.
    by_member = {member: [answer['status'] for answer in body] for member, _, body in answers}
    for pair in range(CROSSING_PAIRS):
        # Item n of the first batch and item n from the end of the second name one id.
        outcomes = zip(by_member[2 * pair + 1], reversed(by_member[2 * pair + 2]))
        assert all(sorted(outcome) == ['Duplicate transaction', 'ok'] for outcome in outcomes)
