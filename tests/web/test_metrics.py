"""GET /metrics in-process: what moves after which request, and who may read it.

Counters live as long as the process, so every test compares a scrape
before and one after.
"""
import decimal

import falcon.testing
import peewee
import pytest

from balance_api import create_app
from balance_api.auth import permits
from balance_api.config import Settings
from balance_api.money.ledger import Ledger
from balance_api.storage.db import database
from balance_api.web import idempotency, metrics
from gunicorn_server import bearer, create_key_in
from helpers import add, assert_error, assert_ok, sub, transfer
from metrics_samples import parse, total, value

V3 = '/v3/default/transactions/points'


@pytest.fixture
def counts_from_zero(monkeypatch):
    """Each test counts from zero in a registry of its own: the suite's other
    tests move sums (up to 10^19) whose float totals no longer change by a cent."""
    metrics.publish()
    monkeypatch.setattr(metrics, '_built', None)


def scrape(client):
    result = client.simulate_get('/metrics')
    assert result.status_code == 200, result.text
    assert result.headers['content-type'].startswith('text/plain; version=')
    return parse(result.text)


def moved(samples, operation):
    return decimal.Decimal(repr(value(samples, 'balance_api_money_moved_total',
                                      operation=operation))).quantize(decimal.Decimal('0.01'))


def test_committed_changes_count_their_money_and_journal_entries(counts_from_zero, client,
                                                                  make_user):
    make_user(1, '100.00')
    make_user(2)
    before = scrape(client)
    assert_ok(add(client, 1, '10.10'))
    assert_ok(sub(client, 1, '0.30'))
    assert_ok(transfer(client, 1, 2, '25.05'))
    assert_ok(transfer(client, 2, 1, '0.05'))
    after = scrape(client)

    for operation, amount in (('deposit', '10.10'), ('withdrawal', '0.30'),
                              ('transfer', '25.10')):
        assert moved(after, operation) - moved(before, operation) == decimal.Decimal(amount)
    for operation, entries in (('balance_add', 1), ('balance_sub', 1), ('balance_transfer', 2)):
        name = 'balance_api_journal_entries_total'
        assert (value(after, name, operation=operation)
                - value(before, name, operation=operation)) == entries


def test_users_created_and_deleted_are_journal_entries(client, make_user):
    before = scrape(client)
    make_user(7)
    assert_ok(client.simulate_delete('/balance_delete_user/7'))
    after = scrape(client)
    name = 'balance_api_journal_entries_total'
    for operation in ('user_add', 'user_delete'):
        assert value(after, name, operation=operation) - value(before, name,
                                                               operation=operation) == 1


def test_a_refused_change_counts_nothing(client, make_user):
    make_user(1, '5.00')
    make_user(2)
    before = scrape(client)
    assert_error(transfer(client, 1, 2, '6.00'), 505)
    assert_error(sub(client, 1, '9.00'), 505)
    after = scrape(client)
    assert moved(after, 'transfer') == moved(before, 'transfer')
    assert moved(after, 'withdrawal') == moved(before, 'withdrawal')
    assert (total(after, 'balance_api_journal_entries_total')
            == total(before, 'balance_api_journal_entries_total'))
    requests = 'balance_api_requests_total'
    assert value(after, requests, route='/transfer', method='PUT', status='409') - value(
        before, requests, route='/transfer', method='PUT', status='409') == 1


def test_a_change_rolled_back_with_its_idempotency_key_is_not_counted(
        client, make_user, monkeypatch):
    make_user(1, '50.00')
    make_user(2)
    before = scrape(client)

    def lost(*args, **kwargs):
        raise peewee.OperationalError('database is locked')

    # The transfer is done; storing its answer under the key fails: both roll back.
    monkeypatch.setattr(idempotency.IdempotencyRecord, 'update', lost)
    assert_error(transfer(client, 1, 2, '20.00', headers={'Idempotency-Key': 'lost-1'}), 531)
    monkeypatch.undo()
    after = scrape(client)

    assert moved(after, 'transfer') == moved(before, 'transfer')
    assert (total(after, 'balance_api_journal_entries_total')
            == total(before, 'balance_api_journal_entries_total'))
    errors = 'balance_api_database_errors_total'
    assert value(after, errors, kind='unavailable') - value(before, errors,
                                                             kind='unavailable') == 1
    assert assert_ok(client.simulate_get('/balance/1'))['balance'] == '50.00'


def test_a_failed_statement_is_a_database_error(client, make_user, monkeypatch):
    make_user(1)
    before = scrape(client)

    def broken(self, user_id):
        raise peewee.ProgrammingError('relation "account" does not exist')

    monkeypatch.setattr(Ledger, 'balance', broken)
    assert_error(client.simulate_get('/balance/1'), 532)
    monkeypatch.undo()
    after = scrape(client)
    errors = 'balance_api_database_errors_total'
    assert value(after, errors, kind='failed') - value(before, errors, kind='failed') == 1
    assert value(after, errors, kind='unavailable') == value(before, errors, kind='unavailable')


def test_points_granted_and_spent_are_counted_once_committed(client, make_user):
    make_user(1)
    before = scrape(client)
    assert_ok(client.simulate_post('/points/1/add', json={'payer': 'DANNON', 'points': 300}),
              201)
    assert_ok(client.simulate_post('/points/1/add', json={'payer': 'DANNON', 'points': -20}),
              201)
    assert_ok(client.simulate_post('/points/1/spend', json={'points': 80}))
    # Refused: more than the wallet holds.
    assert client.simulate_post('/points/1/spend', json={'points': 10 ** 6}).status_code == 409
    # A batch: one item applied, one refused (no such member).
    assert_ok(client.simulate_post(V3, json=[
        {'identifier_type': 'id', 'identifier': '1', 'event_type': 'purchase', 'amount': 7},
        {'identifier_type': 'id', 'identifier': '999', 'event_type': 'purchase', 'amount': 5},
    ]))
    after = scrape(client)

    def delta(name, event_type):
        return (value(after, name, event_type=event_type)
                - value(before, name, event_type=event_type))

    assert delta('balance_api_points_granted_total', 'issue') == 300
    assert delta('balance_api_points_granted_total', 'purchase') == 7
    assert delta('balance_api_points_spent_total', 'revoke') == 20
    assert delta('balance_api_points_spent_total', 'use') == 80


def test_idempotent_replays_are_counted_by_route(counts_from_zero, client, make_user):
    make_user(1, '10.00')
    make_user(2)
    before = scrape(client)
    key = {'Idempotency-Key': 'replayed-1'}
    assert_ok(transfer(client, 1, 2, '1.00', headers=key))
    for _ in range(2):
        again = transfer(client, 1, 2, '1.00', headers=key)
        assert again.headers['Idempotent-Replayed'] == 'true'
    after = scrape(client)
    replays = 'balance_api_idempotent_replays_total'
    assert value(after, replays, route='/transfer') - value(before, replays,
                                                            route='/transfer') == 2
    # The money moved once.
    assert moved(after, 'transfer') - moved(before, 'transfer') == decimal.Decimal('1.00')


def test_auth_refusals_are_counted_by_reason(client, anonymous):
    db = database.obj
    narrow = create_key_in(db, 'metrics-narrow', [permits.BALANCE_GET])
    bound = create_key_in(db, 'metrics-bound', [permits.ADMIN], uid=1)
    before = scrape(client)
    anonymous.simulate_get('/balance/1')
    anonymous.simulate_get('/balance/1', headers={'Authorization': 'Basic dXNlcjpwYXNz'})
    anonymous.simulate_get('/balance/1', headers=bearer('A' * 43))
    anonymous.simulate_get('/history', headers=bearer(narrow))
    anonymous.simulate_get('/balance/2', headers=bearer(bound))
    after = scrape(client)
    refusals = 'balance_api_auth_refusals_total'
    for reason in ('missing_credentials', 'malformed_credentials', 'unknown_key',
                   'missing_permit', 'other_users_data'):
        assert value(after, refusals, reason=reason) - value(before, refusals,
                                                             reason=reason) == 1, reason


def test_requests_are_counted_by_route_template_never_by_path(client, make_user):
    make_user(424242)
    before = scrape(client)
    assert_ok(client.simulate_get('/balance/424242'))
    client.simulate_get(V3 + '/by_email/secret.person@example.com')
    client.simulate_get('/history/uid=424242')
    assert_error(client.simulate_get('/no/such/route-with-a-token-abc123'), 529)
    page = client.simulate_get('/metrics').text
    after = parse(page)

    for secret in ('424242', 'secret.person', 'abc123', 'uid='):
        assert secret not in page, secret
    requests = 'balance_api_requests_total'

    def delta(**labels):
        return value(after, requests, **labels) - value(before, requests, **labels)

    assert delta(route='/balance/{user_id}', method='GET', status='200') == 1
    by_email = '/v3/{club}/transactions/points/by_email/{email}'
    assert (total(after, requests, route=by_email)
            - total(before, requests, route=by_email)) == 1
    assert delta(route='/history/{query}', method='GET', status='200') == 1
    assert delta(route='(none)', method='GET', status='404') == 1
    durations = 'balance_api_request_duration_seconds_count'
    assert (value(after, durations, route='/balance/{user_id}', method='GET')
            - value(before, durations, route='/balance/{user_id}', method='GET')) == 1


def test_latency_is_a_histogram_by_route_and_method(client):
    for _ in range(3):
        assert_ok(client.simulate_get('/health'))
    page = client.simulate_get('/metrics').text
    assert '# TYPE balance_api_request_duration_seconds histogram' in page
    samples = parse(page)
    labels = {'route': '/health', 'method': 'GET'}
    name = 'balance_api_request_duration_seconds'
    buckets = sorted((float(dict(items)['le']), found) for (sample, items), found
                     in samples.items() if sample == name + '_bucket'
                     and set(labels.items()) <= items)
    counts = [found for _, found in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float('inf')
    assert counts[-1] == value(samples, name + '_count', **labels) >= 3
    # A /health answer takes well under a second, in total too.
    assert 0 < value(samples, name + '_sum', **labels) < counts[-1]
    assert dict(buckets)[1.0] == counts[-1]


@pytest.mark.filterwarnings('ignore:Unknown REQUEST_METHOD')
def test_unknown_methods_share_one_label(client):
    before = scrape(client)
    client.simulate_request('BREW', '/health')
    after = scrape(client)
    requests = 'balance_api_requests_total'
    assert total(after, requests, method='other') - total(before, requests, method='other') == 1
    assert not [labels for name, labels in after if name == requests
                and ('method', 'BREW') in labels]


def test_the_page_needs_its_permit(app, anonymous):
    db = database.obj
    assert_error(anonymous.simulate_get('/metrics'), 701)
    other = create_key_in(db, 'not-metrics', [permits.BALANCE_LIST])
    assert_error(anonymous.simulate_get('/metrics', headers=bearer(other)), 706)
    scraper = create_key_in(db, 'scraper', [permits.METRICS_GET])
    result = anonymous.simulate_get('/metrics', headers=bearer(scraper))
    assert result.status_code == 200
    assert 'balance_api_requests_total' in result.text
    assert anonymous.simulate_head('/metrics', headers=bearer(scraper)).status_code == 200


def test_metrics_public_opens_the_page_without_a_key(database_url, signing_key_file):
    app = create_app(Settings(database_url=database_url, signing_key_file=signing_key_file,
                              metrics_public=True))
    result = falcon.testing.TestClient(app).simulate_get('/metrics')
    assert result.status_code == 200
    assert '# TYPE balance_api_requests_total counter' in result.text
    # Everything else still needs a key.
    assert_error(falcon.testing.TestClient(app).simulate_get('/balance'), 701)


@pytest.mark.parametrize('text, public', [(None, False), ('', False), ('0', False),
                                          ('off', False), ('1', True), ('true', True),
                                          (' ON ', True)])
def test_metrics_public_setting(text, public):
    environ = {} if text is None else {'METRICS_PUBLIC': text}
    assert Settings.from_env(environ).metrics_public is public


def test_metrics_public_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match='METRICS_PUBLIC'):
        Settings.from_env({'METRICS_PUBLIC': 'yes please'})
