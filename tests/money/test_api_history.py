"""GET /history/{query} and GET /history?query: the audit journal, filtered and paged."""
import datetime
import types
from urllib.parse import quote

import pytest

from balance_api.web import server, streaming
from helpers import (AMOUNT_FORMAT, DATE_FORMAT, HISTORY_KEYS, add, assert_error, assert_ok,
                     history, send_form, set_entry_time, sub, transfer)

T = datetime.datetime
D = datetime.date


def by_path(client, query):
    return client.simulate_get('/history/' + query if query else '/history')


def by_query_string(client, query):
    return client.simulate_get('/history', query_string=query)


class Journal:
    """Rows made through the API, each moved to a chosen UTC moment."""

    def __init__(self, client):
        self.client = client
        self.entries = []  # (id, moment, users involved)

    def record(self, result, moment, *users):
        assert result.status_code in (200, 201), result.text
        entry_id = history(self.client)[-1]['id']
        set_entry_time(entry_id, moment)
        self.entries.append((entry_id, moment, set(users)))

    def expected_ids(self, uid=None, start=None, end=None):
        return [entry_id for entry_id, moment, users in self.entries
                if (uid is None or uid in users)
                and (start is None or moment.date() >= start)
                and (end is None or moment.date() <= end)]


@pytest.fixture
def journal(client):
    j = Journal(client)

    def post(uid):
        return send_form(client, 'POST', '/user', {'uid': uid})

    j.record(post(12), T(2016, 3, 19, 23, 59, 59), 12)
    j.record(post(13), T(2016, 3, 20, 0, 0, 0), 13)
    j.record(add(client, 12, '100', trans_desc='salary'), T(2016, 3, 20, 12, 0, 0), 12)
    j.record(transfer(client, 12, 13, '10', trans_desc='rent'), T(2016, 3, 21, 8, 30, 0), 12, 13)
    j.record(sub(client, 13, '1'), T(2016, 3, 22, 23, 59, 59, 999999), 13)
    j.record(add(client, 12, '5'), T(2016, 3, 23, 0, 0, 0), 12)
    j.record(post(14), T(2016, 3, 22, 10, 0, 0), 14)
    j.record(transfer(client, 13, 14, '2'), T(2016, 3, 24, 0, 0, 1), 13, 14)
    return j


# Filters as (query, uid, date-start, date-end).
FILTERS = [
    ('uid=12&date-start=2016-03-20&date-end=2016-03-22', 12, D(2016, 3, 20), D(2016, 3, 22)),
    ('date-start=2016-03-20&date-end=2016-03-22', None, D(2016, 3, 20), D(2016, 3, 22)),
    ('uid=12&date-start=2016-03-20', 12, D(2016, 3, 20), None),
    ('date-start=2016-03-21', None, D(2016, 3, 21), None),
    ('uid=12', 12, None, None),
    ('', None, None, None),
    ('uid=13&date-start=2016-03-20&date-end=2016-03-22', 13, D(2016, 3, 20), D(2016, 3, 22)),
    ('uid=13&date-end=2016-03-21', 13, None, D(2016, 3, 21)),
    ('date-end=2016-03-20', None, None, D(2016, 3, 20)),
    ('date-start=2016-03-22&date-end=2016-03-22', None, D(2016, 3, 22), D(2016, 3, 22)),
    ('uid=14', 14, None, None),
    ('uid=14&date-start=2016-03-24', 14, D(2016, 3, 24), None),
    ('date-end=2016-03-22&uid=13&date-start=2016-03-22', 13, D(2016, 3, 22), D(2016, 3, 22)),
    ('date-start=2016-03-25', None, D(2016, 3, 25), None),
    ('date-end=2016-03-19', None, None, D(2016, 3, 19)),
    ('uid=99', 99, None, None),
]


def test_filters_select_the_right_rows_in_both_forms(client, journal):
    for query, uid, start, end in FILTERS:
        rows = assert_ok(by_path(client, query))
        assert [row['id'] for row in rows] == journal.expected_ids(uid, start, end), query
        assert assert_ok(by_query_string(client, query)) == rows, query
    # The table would prove little if most answers were empty.
    answers = [journal.expected_ids(uid, start, end) for _, uid, start, end in FILTERS]
    assert sum(1 for ids in answers if ids) >= 12


def test_rows_have_the_documented_form(client, journal):
    rows = history(client)
    assert [row['id'] for row in rows] == sorted(row['id'] for row in rows)
    assert len({row['id'] for row in rows}) == len(rows) == 8
    for row in rows:
        assert set(row) == HISTORY_KEYS
        assert DATE_FORMAT.fullmatch(row['date'])
        assert AMOUNT_FORMAT.fullmatch(row['sum'])
        assert all(isinstance(row[k], int) for k in ('id', 'sender_id', 'receiver_id'))
    by_id = {row['id']: row for row in rows}
    transfer_id = journal.entries[3][0]
    assert by_id[transfer_id] == {
        'id': transfer_id, 'date': '2016-03-21 08:30:00', 'receiver_id': 13, 'sum': '10.00',
        'operation': 'balance_transfer', 'transaction_description': 'rent', 'sender_id': 12}
    add_id = journal.entries[2][0]
    assert by_id[add_id] == {
        'id': add_id, 'date': '2016-03-20 12:00:00', 'receiver_id': 12, 'sum': '100.00',
        'operation': 'balance_add', 'transaction_description': 'salary', 'sender_id': 0}
    sub_row = by_id[journal.entries[4][0]]
    assert (sub_row['date'], sub_row['operation'], sub_row['sender_id'], sub_row['receiver_id'],
            sub_row['sum']) == ('2016-03-22 23:59:59', 'balance_sub', 0, 13, '1.00')


def test_history_of_an_empty_ledger_is_empty(client):
    assert assert_ok(client.simulate_get('/history')) == []
    assert assert_ok(client.simulate_get('/history/uid=1')) == []


def test_uid_that_never_existed_has_empty_history(client, journal):
    for query in ['uid=7', 'uid=7&date-start=2016-03-20&date-end=2016-03-22',
                  'uid=9223372036854775807']:
        assert assert_ok(by_path(client, query)) == [], query
        assert assert_ok(by_query_string(client, query)) == [], query


# -- paging ----------------------------------------------------------------

PAGED_QUERIES = ['', 'uid=13', 'date-start=2016-03-20&date-end=2016-03-22',
                 'uid=12&date-start=2016-03-20']


def read_in_pages(client, query, limit):
    pages, after_id = [], 0
    while True:
        paging = 'limit=%d&after_id=%d' % (limit, after_id)
        full_query = '&'.join(filter(None, [query, paging]))
        page = assert_ok(by_query_string(client, full_query))
        assert assert_ok(by_path(client, full_query)) == page
        assert len(page) <= limit
        if not page:
            return pages
        pages.append(page)
        after_id = page[-1]['id']


def test_pages_concatenate_to_the_full_list(client, journal):
    for query in PAGED_QUERIES:
        full = assert_ok(by_query_string(client, query))
        assert len(full) >= 3, query
        for limit in (1, 2, 3, 100):
            pages = read_in_pages(client, query, limit)
            assert [row for page in pages for row in page] == full, (query, limit)
            assert all(len(page) == limit for page in pages[:-1]), (query, limit)


def test_after_id_alone_skips_older_rows(client, journal):
    ids = [row['id'] for row in history(client)]
    assert [r['id'] for r in assert_ok(by_path(client, 'after_id=%d' % ids[2]))] == ids[3:]
    assert [r['id'] for r in assert_ok(by_path(client, 'after_id=0'))] == ids
    assert assert_ok(by_path(client, 'after_id=%d' % ids[-1])) == []


def test_limit_alone_takes_the_oldest_rows(client, journal):
    ids = [row['id'] for row in history(client)]
    assert [r['id'] for r in assert_ok(by_query_string(client, 'limit=3'))] == ids[:3]


def test_extreme_but_valid_filters(client, journal):
    everything = history(client)
    for query in ['date-start=0001-01-01&date-end=9999-12-31', 'date-end=9999-12-31',
                  'limit=9223372036854775807', 'after_id=0&limit=1000']:
        assert assert_ok(by_path(client, query)) == everything, query
    assert assert_ok(by_path(client, 'after_id=9223372036854775807')) == []
    assert assert_ok(by_path(client, 'date-start=9999-12-31')) == []


# -- refusals --------------------------------------------------------------

BAD_DATES = ['2016-02-30', '2016-3-1', 'garbage', '', '2016-13-01', '20160301', '2016/03/01',
             '2016-03-01T00:00:00', ' 2016-03-01', '\uff12\uff10\uff11\uff16-03-01']


@pytest.mark.parametrize('value', BAD_DATES)
def test_malformed_date_is_514(client, value):
    for key in ('date-start', 'date-end'):
        query = '%s=%s' % (key, quote(value, safe=''))
        assert_error(by_query_string(client, query), 514)
        if '/' not in value:
            assert_error(by_path(client, query), 514)
            assert_error(by_path(client, 'uid=12&' + query), 514)


@pytest.mark.parametrize('query', [
    'foo=1', 'UID=12', 'date_start=2016-03-20', 'uid=12&sort=id', 'uid=12&uid=12',
    'uid=12&uid=13', 'date-start=2016-03-20&date-start=2016-03-20', 'limit=1&limit=1', 'garbage',
])
def test_unknown_or_repeated_key_is_515(client, query):
    assert_error(by_path(client, query), 515)
    assert_error(by_query_string(client, query), 515)


def test_key_repeated_across_path_and_query_string_is_515(client):
    assert_error(client.simulate_get('/history/uid=12', query_string='uid=12'), 515)
    assert_error(client.simulate_get('/history/date-start=2016-03-20',
                                     query_string='date-start=2016-03-20'), 515)


def test_start_after_end_is_516(client):
    for query in ['date-start=2016-03-22&date-end=2016-03-21',
                  'uid=12&date-start=2016-03-22&date-end=2016-03-20',
                  'date-start=2017-01-01&date-end=2016-12-31']:
        assert_error(by_path(client, query), 516)
        assert_error(by_query_string(client, query), 516)


@pytest.mark.parametrize('query', [
    'limit=0', 'limit=-1', 'limit=abc', 'limit=', 'limit=1.5', 'limit=99999999999999999999',
    'after_id=-1', 'after_id=abc', 'after_id=',
])
def test_bad_paging_is_517(client, query):
    assert_error(by_path(client, query), 517)
    assert_error(by_query_string(client, query), 517)


def test_a_long_answer_streams_in_chunks_and_keeps_the_worker_beating(client, journal,
                                                                     monkeypatch):
    whole = client.simulate_get('/history').json
    assert len(whole) == 8
    beats = []
    worker = types.SimpleNamespace(notify=lambda: beats.append(len(beats)))
    # 8 rows, 3 per fetch: a streamed answer of three chunks.
    monkeypatch.setattr(streaming, 'FETCH_ROWS', 3)
    server.worker_started(worker)
    try:
        result = client.simulate_get('/history')
    finally:
        streaming.report_progress_to(None)
    assert result.status_code == 200
    assert result.json == whole
    assert len(beats) == 3
